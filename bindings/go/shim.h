/* C side of the Go package: sends that take Go memory without copying it into C first, and
 * callbacks into Go that carry a cgo.Handle as user_data. */
#ifndef KAFKASENDER_GO_SHIM_H
#define KAFKASENDER_GO_SHIM_H
#include <stdint.h>
#include "kafkasender.h"

/* A status and, on failure, the last error's text (malloc'd: the caller frees it). Returned by
 * value, so Go reads the text without pinning its goroutine to the thread that failed. */
typedef struct ks_go_result {
  int32_t status;
  char *error;
} ks_go_result;

/* ks_producer_send_tokened() of a message without headers, its fields passed one by one: the
 * key and value may point into Go memory (they hold no Go pointers), so nothing is copied here. */
ks_go_result ks_go_send_flat(const ks_producer *producer, const char *topic, const uint8_t *key, size_t key_len,
                             int key_null, const uint8_t *value, size_t value_len, int value_null, bool has_partition, int32_t partition,
                             int64_t timestamp_ms, uint64_t token);
/* ks_producer_send_tokened() of a message built in C memory (one with headers). */
ks_go_result ks_go_send_message(const ks_producer *producer, const ks_message *message, uint64_t token);
enum ks_status ks_go_read_topic(const ks_mock_cluster *cluster, const char *topic, uint32_t timeout_ms, uintptr_t handle,
                                uint64_t *count_out);
/* Log lines to the Go logger of SetLogger (on), or to stderr again (off). */
void ks_go_set_log_callback(int on);
/* ks_producer_set_partitioner() with the Go function behind cgo handle `handle`. */
enum ks_status ks_go_set_partitioner(const ks_producer *producer, uintptr_t handle);
#endif
