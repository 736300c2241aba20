#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "_cgo_export.h"

static ks_go_result result_of(enum ks_status status) {
  ks_go_result result = {(int32_t)status, NULL};
  if (status != KS_STATUS_OK) result.error = strdup(ks_last_error());
  return result;
}

ks_go_result ks_go_send_flat(const ks_producer *producer, const char *topic, const uint8_t *key, size_t key_len,
                             int key_null, const uint8_t *value, size_t value_len, int value_null, bool has_partition, int32_t partition,
                             int64_t timestamp_ms, uint64_t token) {
  static const uint8_t empty[1] = {0};
  ks_message message;
  memset(&message, 0, sizeof message);
  message.topic = topic;
  /* An empty Go slice may have no backing array; an empty, present key or value needs a pointer. */
  message.key = key_null ? NULL : (key_len ? key : empty);
  message.key_len = key_len;
  message.value = value_null ? NULL : (value_len ? value : empty);
  message.value_len = value_len;
  message.has_partition = has_partition;
  message.partition = partition;
  message.timestamp_ms = timestamp_ms;
  return result_of(ks_producer_send_tokened(producer, &message, token));
}

ks_go_result ks_go_send_message(const ks_producer *producer, const ks_message *message, uint64_t token) {
  return result_of(ks_producer_send_tokened(producer, message, token));
}

/* The handle travels as the pointer value; Go never sees a C-kept Go pointer. */
static void consumed_trampoline(const ks_consumed_record *record, void *user_data) {
  goConsumed((ks_consumed_record *)record, (uintptr_t)user_data);
}

enum ks_status ks_go_read_topic(const ks_mock_cluster *cluster, const char *topic, uint32_t timeout_ms, uintptr_t handle,
                                uint64_t *count_out) {
  return ks_mock_cluster_read_topic(cluster, topic, timeout_ms, consumed_trampoline, (void *)handle, count_out);
}

static void log_trampoline(const ks_log_record *record, void *user_data) {
  (void)user_data;
  goLog((int)record->level, (char *)record->target, (char *)record->message);
}

void ks_go_set_log_callback(int on) { ks_set_log_callback(on ? log_trampoline : NULL, NULL); }

static int32_t partitioner_trampoline(const ks_partition_request *request, void *user_data) {
  return goPartition((char *)request->topic, (uint8_t *)request->key, request->key_len, request->partition_count,
                     (uintptr_t)user_data);
}

enum ks_status ks_go_set_partitioner(const ks_producer *producer, uintptr_t handle) {
  return ks_producer_set_partitioner(producer, partitioner_trampoline, (void *)handle);
}
