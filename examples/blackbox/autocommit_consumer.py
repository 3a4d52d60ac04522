"""A Python consumer on confluent-kafka with auto-commit left at its default.

It meets ruckus's black-box contract (RUCKUS_* variables; one output record
`<partition>:<offset>` per record it finishes). It is written the way many
are: consume a batch, work through it, stop on SIGTERM. With auto-commit on,
librdkafka commits the offsets of every record `consume()` handed out (they
are stored when handed out, not when processed), in the background and
again on close(): a stop or a crash in the middle of a batch commits records
that were never processed. ruckus catches it losing them.
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
        producer.poll(0)
    producer.flush()

producer.flush()
consumer.close()
