//! The few librdkafka calls rdkafka does not wrap that the transport needs.
//! Every `unsafe` block of the crate is here.
#![allow(unsafe_code)]

use std::ffi::CStr;

use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::ClientContext;

/// The consumer's current group generation and member id, read from its
/// group metadata (`None` before it joined).
pub(crate) fn group_generation<C: ClientContext>(client: &Client<C>) -> Option<(i32, String)> {
    // SAFETY: `native_ptr` is a live handle for as long as `client` is
    // borrowed. `rd_kafka_consumer_group_metadata` returns a new object (or
    // null for a non-consumer) that we own and destroy below; the member id
    // string it hands out lives as long as that object and is copied before
    // the destroy.
    unsafe {
        let md = rdsys::rd_kafka_consumer_group_metadata(client.native_ptr());
        if md.is_null() {
            return None;
        }
        let generation = rdsys::rd_kafka_consumer_group_metadata_generation_id(md);
        let member = rdsys::rd_kafka_consumer_group_metadata_member_id(md);
        let member = if member.is_null() {
            String::new()
        } else {
            CStr::from_ptr(member).to_string_lossy().into_owned()
        };
        rdsys::rd_kafka_consumer_group_metadata_destroy(md);
        Some((generation, member))
    }
}

/// One partition's own fetch queue, taken out of the consumer queue
/// (`rd_kafka_queue_get_partition` + `rd_kafka_queue_forward(q, NULL)`), so
/// its messages can be taken many at a time
/// (`rd_kafka_consume_batch_queue`) instead of one event per poll.
///
/// Only fetched messages (and that partition's errors) arrive here; group
/// callbacks stay on the consumer queue. Once taken out, a partition's
/// messages stay on this queue for the client's lifetime (librdkafka keeps
/// an application's forwarding across fetch restarts), so the queue must be
/// kept, and drained, for as long as the client lives, and dropped before
/// the client is.
pub(crate) struct FetchQueue {
    queue: std::ptr::NonNull<rdsys::rd_kafka_queue_t>,
    /// Rung by librdkafka when the queue turns non-empty; kept alive here
    /// for as long as the callback may run.
    bell: std::sync::Arc<Bell>,
    /// Room for one batch of message pointers.
    scratch: Vec<*mut rdsys::rd_kafka_message_t>,
}

// SAFETY: librdkafka queues are thread-safe (every queue operation takes
// the queue's lock); `scratch` holds no pointer between calls of `drain`.
unsafe impl Send for FetchQueue {}

/// Called by librdkafka (on its own thread, with the queue's lock held)
/// when the queue goes from empty to non-empty.
unsafe extern "C" fn wake_fetch_queue(_rk: *mut rdsys::rd_kafka_t, opaque: *mut std::ffi::c_void) {
    // SAFETY: `opaque` is the `Bell` the `FetchQueue` keeps alive until it
    // turned this callback off (see `Drop`).
    let bell = unsafe { &*(opaque as *const Bell) };
    bell.ring();
}

/// Wakes a thread waiting for work: rung by librdkafka's queue callbacks
/// (with a queue's lock held, so ringing takes no lock of librdkafka's) and
/// by whoever else has work for it. A ring before the wait is not lost.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    rung: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Bell {
    pub(crate) fn ring(&self) {
        let mut rung = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*rung {
            *rung = true;
            self.cv.notify_one();
        }
    }

    /// Waits until rung (at once if rung since the last wait) or
    /// `timeout` passed.
    pub(crate) fn wait(&self, timeout: std::time::Duration) {
        let rung = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut rung, _) = self
            .cv
            .wait_timeout_while(rung, timeout, |r| !*r)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *rung = false;
    }
}

/// A message taken from a [`FetchQueue`], valid during the closure it is
/// handed to.
pub(crate) struct Fetched<'a> {
    msg: &'a rdsys::rd_kafka_message_t,
}

impl Fetched<'_> {
    pub(crate) fn offset(&self) -> i64 {
        self.msg.offset
    }

    /// `len` bytes at `ptr` (None for a null pointer), borrowed from the
    /// message.
    fn bytes(&self, ptr: *mut std::ffi::c_void, len: usize) -> Option<&[u8]> {
        // SAFETY: librdkafka's key and payload pointers are valid for their
        // lengths while the message lives, which outlasts this borrow.
        (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
    }

    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.bytes(self.msg.key, self.msg.key_len)
    }

    pub(crate) fn value(&self) -> Option<&[u8]> {
        self.bytes(self.msg.payload, self.msg.len)
    }

    /// Create or log-append time in milliseconds, if the message has one.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message; `kind` is a valid out pointer.
        let ts = unsafe { rdsys::rd_kafka_message_timestamp(self.msg, &mut kind) };
        (kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE).then_some(ts)
    }

    /// Calls `f` with each header (name, value), in order.
    pub(crate) fn for_each_header(&self, mut f: impl FnMut(&str, Option<&[u8]>)) {
        let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: a live message; the headers it returns belong to it.
        let err = unsafe { rdsys::rd_kafka_message_headers(self.msg, &mut hdrs) };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
            return;
        }
        for idx in 0.. {
            let mut name: *const std::ffi::c_char = std::ptr::null();
            let mut value: *const std::ffi::c_void = std::ptr::null();
            let mut size = 0usize;
            // SAFETY: `hdrs` belongs to the live message; out pointers are
            // valid. The name is a NUL-terminated string and the value
            // `size` bytes (or null), both owned by the headers.
            let err = unsafe {
                rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size)
            };
            if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return;
            }
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
            let value = (!value.is_null())
                // SAFETY: as above.
                .then(|| unsafe { std::slice::from_raw_parts(value as *const u8, size) });
            f(&name, value);
        }
    }
}

impl FetchQueue {
    /// Takes `topic`/`partition`'s messages out of the consumer queue;
    /// `bell` is rung whenever the queue turns non-empty. Call it before
    /// the partition is assigned, so that none of its messages went to the
    /// consumer queue first.
    pub(crate) fn split<C: ClientContext>(
        client: &Client<C>,
        topic: &str,
        partition: i32,
        bell: std::sync::Arc<Bell>,
        capacity: usize,
    ) -> Option<Self> {
        let topic = std::ffi::CString::new(topic).ok()?;
        // SAFETY: `native_ptr` is live while `client` is borrowed; the call
        // returns a new queue handle we own (null if there is none).
        let queue = unsafe {
            rdsys::rd_kafka_queue_get_partition(client.native_ptr(), topic.as_ptr(), partition)
        };
        let queue = std::ptr::NonNull::new(queue)?;
        // SAFETY: `queue` is ours. Forwarding to null keeps the partition's
        // messages on its own queue. The callback's opaque pointer is the
        // `Bell` this struct keeps alive until it turns the callback
        // off in `Drop`.
        unsafe {
            rdsys::rd_kafka_queue_forward(queue.as_ptr(), std::ptr::null_mut());
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake_fetch_queue),
                std::sync::Arc::as_ptr(&bell) as *mut std::ffi::c_void,
            );
        }
        Some(Self {
            queue,
            bell,
            scratch: Vec::with_capacity(capacity),
        })
    }

    /// Takes up to `max` messages without waiting and hands each to `f`;
    /// messages with an error (librdkafka's to recover from) are skipped.
    pub(crate) fn drain(
        &mut self,
        max: usize,
        reaper: Option<&mut Reaper>,
        mut f: impl FnMut(&Fetched<'_>),
    ) {
        let max = max.min(self.scratch.capacity());
        if max == 0 {
            return;
        }
        self.scratch.clear();
        // SAFETY: `queue` is ours and live; `scratch` has room for `max`
        // pointers, which librdkafka fills with messages we then own.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                self.scratch.as_mut_ptr(),
                max,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka wrote `n` message pointers.
        unsafe { self.scratch.set_len(n) };
        for &msg in &self.scratch {
            // SAFETY: each pointer is a live message we own until it is
            // destroyed below; `f` only borrows it.
            unsafe {
                if (*msg).err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    f(&Fetched { msg: &*msg });
                }
            }
        }
        match reaper {
            Some(r) => r.destroy(&mut self.scratch),
            None => destroy_messages(&mut self.scratch),
        }
    }
}

/// Messages taken from a queue and done with, to be destroyed.
struct Dead(Vec<*mut rdsys::rd_kafka_message_t>);

// SAFETY: a message may be destroyed on any thread (librdkafka's
// reference counts are atomic); nothing else holds these pointers.
unsafe impl Send for Dead {}

impl Dead {
    fn destroy(mut self) {
        destroy_messages(&mut self.0);
    }
}

/// Destroys the messages in `msgs`, leaving it empty (its capacity kept).
/// Each must be owned by `msgs` alone.
fn destroy_messages(msgs: &mut Vec<*mut rdsys::rd_kafka_message_t>) {
    for msg in msgs.drain(..) {
        // SAFETY: each message is owned by this list alone and destroyed
        // once (drained out of it).
        unsafe { rdsys::rd_kafka_message_destroy(msg) };
    }
}

/// Destroys messages on a thread of its own.
///
/// Destroying a message frees memory librdkafka's broker thread allocated;
/// from the thread that took the message, those frees contend with the
/// broker thread's allocations for the same allocator arena. Handed here,
/// that thread goes on to the next records. Dropping the reaper
/// destroys everything handed to it before it returns, so a client is never
/// destroyed with messages of its still alive.
pub(crate) struct Reaper {
    tx: Option<std::sync::mpsc::SyncSender<Dead>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Handed over in lots of `LOT` (each hand-over wakes the thread).
    pending: Dead,
}

impl Reaper {
    /// Lots the reaper may lag behind before the caller destroys messages
    /// itself (it never blocks).
    const BACKLOG: usize = 4;
    /// Messages per hand-over.
    const LOT: usize = 4096;

    pub(crate) fn start() -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Dead>(Self::BACKLOG);
        let thread = std::thread::Builder::new()
            .name("ruckus-reaper".into())
            .spawn(move || {
                for dead in rx {
                    dead.destroy();
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            pending: Dead(Vec::new()),
        })
    }

    /// Takes the messages in `dead` (leaving it empty) to destroy; they are
    /// handed to the thread once a lot is full.
    fn destroy(&mut self, dead: &mut Vec<*mut rdsys::rd_kafka_message_t>) {
        self.pending.0.append(dead);
        if self.pending.0.len() >= Self::LOT {
            self.flush();
        }
    }

    /// Hands what is pending to the thread (call before going idle, so no
    /// message, nor the fetch buffer it keeps alive, waits for the next lot).
    pub(crate) fn flush(&mut self) {
        if self.pending.0.is_empty() {
            return;
        }
        let dead = std::mem::replace(&mut self.pending, Dead(Vec::with_capacity(Self::LOT)));
        let Some(tx) = &self.tx else {
            return dead.destroy();
        };
        if let Err(e) = tx.try_send(dead) {
            match e {
                std::sync::mpsc::TrySendError::Full(d)
                | std::sync::mpsc::TrySendError::Disconnected(d) => d.destroy(),
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.flush();
        // Closing the channel ends the thread once it destroyed what it
        // was handed.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: `queue` is ours. Turning the callback off takes the
        // queue's lock, under which librdkafka runs the callback, so no call
        // is running or will run once it returns; then the handle is given
        // back. `bell` is dropped after this.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
        let _ = &self.bell;
    }
}
