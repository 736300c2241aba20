#include "shim.h"
#include "_cgo_export.h"

/* The handle travels as the pointer value; Go never sees a C-kept Go pointer. */
static void delivery_trampoline(const ks_delivery_report *report, void *user_data) {
  goDelivery((ks_delivery_report *)report, (uintptr_t)user_data);
}

static void consumed_trampoline(const ks_consumed_record *record, void *user_data) {
  goConsumed((ks_consumed_record *)record, (uintptr_t)user_data);
}

enum ks_status ks_go_send(const ks_producer *producer, const ks_message *message, uintptr_t handle) {
  return ks_producer_send(producer, message, delivery_trampoline, (void *)handle);
}

enum ks_status ks_go_read_topic(const ks_mock_cluster *cluster, const char *topic, uint32_t timeout_ms, uintptr_t handle,
                           uint64_t *count_out) {
  return ks_mock_cluster_read_topic(cluster, topic, timeout_ms, consumed_trampoline, (void *)handle, count_out);
}
