"""The same Python consumer with auto-commit off and a synchronous commit of
each record after its output write is acknowledged: nothing is committed
that was not finished. ruckus finds nothing lost.
"""
import os
import signal
import time

from confluent_kafka import Consumer, Producer

running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)

member = os.environ["RUCKUS_MEMBER"]
output = os.environ["RUCKUS_OUTPUT_TOPIC"]
consumer = Consumer(
    {
        "bootstrap.servers": os.environ["RUCKUS_BOOTSTRAP"],
        "group.id": os.environ["RUCKUS_GROUP"],
        "client.id": member,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "enable.auto.commit": False,
    }
)
producer = Producer({"bootstrap.servers": os.environ["RUCKUS_BOOTSTRAP"], "acks": "all"})
consumer.subscribe([os.environ["RUCKUS_TOPIC"]])

while running:
    batch = consumer.consume(num_messages=200, timeout=0.5)
    for msg in batch:
        if not running:
            break
        if msg.error():
            continue
        time.sleep(0.01)  # the work
        producer.produce(output, key=member, value=f"{msg.partition()}:{msg.offset()}")
        producer.flush()  # the output is durable first
        try:
            consumer.commit(message=msg, asynchronous=False)
        except Exception:  # a revoked partition's commit fails: its next owner redoes it
            pass

consumer.close()
