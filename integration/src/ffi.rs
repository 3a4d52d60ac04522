//! The librdkafka mock-cluster calls rdkafka does not wrap. Every
//! `unsafe` block of this crate is here.
#![allow(unsafe_code)]

use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::ClientContext;

/// The mock cluster a client owns (`None` for a client without one). The
/// handle belongs to `client`: use it only while `client` is borrowed.
fn mock_cluster<C: ClientContext>(
    client: &Client<C>,
) -> Option<*mut rdsys::rd_kafka_mock_cluster_t> {
    // SAFETY: `native_ptr` is a live handle while `client` is borrowed; the
    // call only reads the client's mock cluster pointer.
    let mc = unsafe { rdsys::rd_kafka_handle_mock_cluster(client.native_ptr()) };
    (!mc.is_null()).then_some(mc)
}

/// Sets the mock cluster's group initial rebalance delay (librdkafka's
/// default makes every first rebalance wait seconds). Returns false if the
/// client has no mock cluster.
pub(crate) fn mock_initial_rebalance_delay<C: ClientContext>(
    client: &Client<C>,
    delay_ms: i32,
) -> bool {
    let Some(mc) = mock_cluster(client) else {
        return false;
    };
    // SAFETY: `mc` is the borrowed client's live mock cluster.
    unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(mc, delay_ms) };
    true
}

/// Sets the mock cluster's KIP-848 (`group.protocol=consumer`) session
/// timeout and heartbeat interval, which that protocol takes from the
/// broker. Returns false if the client has no mock cluster.
pub(crate) fn mock_consumer_group_timeouts<C: ClientContext>(
    client: &Client<C>,
    session_ms: i32,
    heartbeat_ms: i32,
) -> bool {
    let Some(mc) = mock_cluster(client) else {
        return false;
    };
    // SAFETY: `mc` is the borrowed client's live mock cluster.
    unsafe {
        rdsys::rd_kafka_mock_set_group_consumer_session_timeout_ms(mc, session_ms);
        rdsys::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(mc, heartbeat_ms);
    }
    true
}

/// Makes the next request of `api_key` that mock broker `broker_id`
/// receives fail with `err` (answered after `rtt_ms`). Returns false if the
/// client has no mock cluster or the broker is unknown.
pub(crate) fn mock_broker_request_error<C: ClientContext>(
    client: &Client<C>,
    broker_id: i32,
    api_key: i16,
    err: i32,
    rtt_ms: i32,
) -> bool {
    let Some(mc) = mock_cluster(client) else {
        return false;
    };
    // SAFETY: `mc` is the borrowed client's live mock cluster. The variadic
    // call gets exactly `cnt` = 1 (error, rtt) pair, both C ints, as the
    // function reads them.
    let r = unsafe {
        rdsys::rd_kafka_mock_broker_push_request_error_rtts(
            mc,
            broker_id,
            api_key,
            1,
            err as std::ffi::c_int,
            rtt_ms as std::ffi::c_int,
        )
    };
    r == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
}
