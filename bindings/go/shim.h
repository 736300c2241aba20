/* C side of the Go package: callbacks into Go carry a cgo.Handle as user_data. */
#ifndef KAFKASENDER_GO_SHIM_H
#define KAFKASENDER_GO_SHIM_H
#include <stdint.h>
#include "kafkasender.h"

enum ks_status ks_go_send(const ks_producer *producer, const ks_message *message, uintptr_t handle);
enum ks_status ks_go_read_topic(const ks_mock_cluster *cluster, const char *topic, uint32_t timeout_ms, uintptr_t handle,
                           uint64_t *count_out);
#endif
