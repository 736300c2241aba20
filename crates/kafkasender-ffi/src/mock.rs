//! `ks_mock_cluster`: librdkafka's in-process mock brokers, for tests of C and Go code, and
//! `ks_test_inject_fatal_error` to see a producer recover.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use core::testing::{inject_fatal_error, read_topic, MockApi, MockCluster};

use crate::boundary::{
    arg_ref, arg_str, boundary, c_bytes, c_text, free_handle, registry, write_optional_out,
    write_out, Failure,
};
use crate::ks_status;
use crate::producer::{ks_header, ks_producer};

/// An in-process Kafka cluster of mock brokers on 127.0.0.1 (real Kafka protocol). Opaque.
/// Topics are auto-created with 4 partitions. Safe to use from many threads.
pub struct ks_mock_cluster {
    cluster: MockCluster,
    bootstrap_servers: CString,
}

/// Starts `brokers` mock brokers (ids 1 to `brokers`).
///
/// Ownership: on success `*cluster_out` is the caller's, to free with ks_mock_cluster_free().
/// Does not block beyond start-up.
#[no_mangle]
pub extern "C" fn ks_mock_cluster_new(
    brokers: u16,
    cluster_out: *mut *mut ks_mock_cluster,
) -> ks_status {
    boundary(|| {
        if cluster_out.is_null() {
            return Err(Failure::new(ks_status::NullArgument, "cluster_out is NULL"));
        }
        let cluster = MockCluster::new(brokers)?;
        let bootstrap_servers = CString::new(cluster.bootstrap_servers()).unwrap_or_default();
        let handle = registry::add(Box::into_raw(Box::new(ks_mock_cluster {
            cluster,
            bootstrap_servers,
        })));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(cluster_out, handle, "cluster_out") }?;
        Ok(ks_status::Ok)
    })
}

/// The `bootstrap.servers` string of the cluster, or NULL if `cluster` is NULL.
///
/// Ownership: owned by the cluster; valid until ks_mock_cluster_free(). Do not free it.
#[no_mangle]
pub extern "C" fn ks_mock_cluster_bootstrap_servers(
    cluster: *const ks_mock_cluster,
) -> *const c_char {
    boundary(|| {
        // SAFETY: C passes a live cluster or NULL.
        Ok(unsafe { arg_ref(cluster, "cluster") }?
            .bootstrap_servers
            .as_ptr())
    })
}

/// Creates a topic with `partitions` partitions, replicated `replication_factor` times (capped at
/// the broker count).
#[no_mangle]
pub extern "C" fn ks_mock_cluster_create_topic(
    cluster: *const ks_mock_cluster,
    topic: *const c_char,
    partitions: i32,
    replication_factor: i32,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live cluster or NULL, and a NUL-terminated string or NULL.
        let (cluster, topic) = unsafe { (arg_ref(cluster, "cluster")?, arg_str(topic, "topic")?) };
        if partitions < 1 || replication_factor < 1 {
            return Err(Failure::new(
                ks_status::InvalidArgument,
                "partitions and replication_factor must be at least 1",
            ));
        }
        cluster
            .cluster
            .create_topic(topic, partitions, replication_factor)?;
        Ok(ks_status::Ok)
    })
}

/// Makes broker `broker_id` refuse connections (partitions it leads stall; nothing moves).
#[no_mangle]
pub extern "C" fn ks_mock_cluster_broker_down(
    cluster: *const ks_mock_cluster,
    broker_id: i32,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live cluster or NULL.
        unsafe { arg_ref(cluster, "cluster") }?
            .cluster
            .broker_down(broker_id)?;
        Ok(ks_status::Ok)
    })
}

/// Makes the next `count` requests of `api` ("produce", "metadata", "init_producer_id",
/// "find_coordinator", "add_partitions_to_txn", "end_txn", "fetch") fail with `codes`, one each,
/// in order (librdkafka's error codes: Kafka protocol codes, or -195 to drop the connection).
/// `codes` may be NULL when `count` is 0. Does not block.
#[no_mangle]
pub extern "C" fn ks_mock_cluster_push_request_errors(
    cluster: *const ks_mock_cluster,
    api: *const c_char,
    codes: *const i32,
    count: usize,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live cluster and a NUL-terminated string, or NULL.
        let (cluster, api) = unsafe { (arg_ref(cluster, "cluster")?, arg_str(api, "api")?) };
        let codes = if count == 0 {
            &[][..]
        } else if codes.is_null() {
            return Err(Failure::new(
                ks_status::NullArgument,
                "codes is NULL but count is not 0",
            ));
        } else {
            // SAFETY: non-NULL, with `count` elements per the contract.
            unsafe { std::slice::from_raw_parts(codes, count) }
        };
        cluster
            .cluster
            .push_request_errors(MockApi::from_name(api)?, codes)?;
        Ok(ks_status::Ok)
    })
}

/// Makes broker `broker_id` accept connections again.
#[no_mangle]
pub extern "C" fn ks_mock_cluster_broker_up(
    cluster: *const ks_mock_cluster,
    broker_id: i32,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live cluster or NULL.
        unsafe { arg_ref(cluster, "cluster") }?
            .cluster
            .broker_up(broker_id)?;
        Ok(ks_status::Ok)
    })
}

/// One record read back from a topic. Valid only during the callback that receives it.
#[repr(C)]
pub struct ks_consumed_record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes, or NULL for no key.
    pub key: *const u8,
    /// Length of `key`.
    pub key_len: usize,
    /// Value bytes, or NULL for a null value.
    pub value: *const u8,
    /// Length of `value`.
    pub value_len: usize,
    /// Headers, in order (NULL when there are none).
    pub headers: *const ks_header,
    /// Number of headers.
    pub headers_len: usize,
}

/// Receives one record read back by ks_mock_cluster_read_topic(), on the calling thread.
pub type ks_consumed_cb =
    Option<unsafe extern "C" fn(record: *const ks_consumed_record, user_data: *mut c_void)>;

/// Reads `topic` from the beginning to the current end of every partition with an independent
/// consumer, calling `callback` once per record in partition and offset order, and writes the
/// count to `*count_out` (may be NULL). For checking in tests what actually landed.
///
/// Blocking: yes, up to `timeout_ms` (KS_STATUS_TIMEOUT if the end is not reached).
#[no_mangle]
pub extern "C" fn ks_mock_cluster_read_topic(
    cluster: *const ks_mock_cluster,
    topic: *const c_char,
    timeout_ms: u32,
    callback: ks_consumed_cb,
    user_data: *mut c_void,
    count_out: *mut u64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live cluster or NULL, and a NUL-terminated string or NULL.
        let (cluster, topic) = unsafe { (arg_ref(cluster, "cluster")?, arg_str(topic, "topic")?) };
        let records = read_topic(
            cluster.cluster.bootstrap_servers(),
            topic,
            Duration::from_millis(u64::from(timeout_ms)),
        )?;
        for record in &records {
            let Some(callback) = callback else { break };
            // Keys are kept alive by `header_keys` for the duration of the call.
            let header_keys: Vec<CString> = record.headers.iter().map(|(k, _)| c_text(k)).collect();
            let headers: Vec<ks_header> = record
                .headers
                .iter()
                .zip(&header_keys)
                .map(|((_, value), key)| {
                    let (value, value_len) = c_bytes(value.as_deref());
                    ks_header {
                        key: key.as_ptr(),
                        value,
                        value_len,
                    }
                })
                .collect();
            let (key, key_len) = c_bytes(record.key.as_deref());
            let (value, value_len) = c_bytes(record.value.as_deref());
            let c_record = ks_consumed_record {
                partition: record.partition,
                offset: record.offset,
                key,
                key_len,
                value,
                value_len,
                headers: if headers.is_empty() {
                    std::ptr::null()
                } else {
                    headers.as_ptr()
                },
                headers_len: headers.len(),
            };
            // SAFETY: the C caller vouches for its callback and data; the record outlives the call.
            unsafe { callback(&c_record, user_data) };
        }
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_optional_out(count_out, || records.len() as u64) };
        Ok(ks_status::Ok)
    })
}

/// Stops the cluster. Producers still connected to it will fail their messages. NULL does
/// nothing; a second free is detected and reported in ks_last_error().
#[no_mangle]
pub extern "C" fn ks_mock_cluster_free(cluster: *mut ks_mock_cluster) {
    free_handle(cluster, "ks_mock_cluster");
}

/// Makes the producer's librdkafka client fail fatally, as if a broker had answered with `code`
/// (for example 59, UNKNOWN_PRODUCER_ID). The producer then replaces the client and re-sends what
/// it held (their reports have `recovered` set), or, past `recovery.max`, stays failed with
/// KS_STATUS_FATAL. For tests.
///
/// Blocking: no. Thread safety: any thread.
#[no_mangle]
pub extern "C" fn ks_test_inject_fatal_error(producer: *const ks_producer, code: i32) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        inject_fatal_error(
            producer.inner(),
            code,
            "injected by ks_test_inject_fatal_error",
        )?;
        Ok(ks_status::Ok)
    })
}
