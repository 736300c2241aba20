/*
 * Throughput of ks_producer_send() with a callback, for the cross-language benchmark
 * (scripts/bench-faces.sh). Usage: bench_ffi BOOTSTRAP TOPIC COUNT SIZE
 * Prints: result<TAB>c<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c99 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafkasender.h"

typedef struct totals {
  pthread_mutex_t lock;
  uint64_t delivered;
  uint64_t *latency_us;
} totals;

static void on_delivery(const ks_delivery_report *report, void *user_data) {
  totals *t = user_data;
  if (report->outcome != KS_OUTCOME_DELIVERED) return;
  pthread_mutex_lock(&t->lock);
  t->latency_us[t->delivered++] = report->latency_us;
  pthread_mutex_unlock(&t->lock);
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s BOOTSTRAP TOPIC COUNT SIZE\n", argv[0]);
    return 2;
  }
  const uint64_t count = strtoull(argv[3], NULL, 10);
  const size_t size = strtoul(argv[4], NULL, 10);
  uint8_t *payload = malloc(size);
  memset(payload, 'x', size);
  totals t = {PTHREAD_MUTEX_INITIALIZER, 0, calloc(count, sizeof(uint64_t))};

  ks_config *config = ks_config_new();
  ks_config_set(config, "bootstrap.servers", argv[1]);
  ks_producer *producer = NULL;
  if (ks_producer_new(config, &producer) != KS_STATUS_OK) {
    fprintf(stderr, "%s\n", ks_last_error());
    return 1;
  }
  ks_config_free(config);

  ks_message m = {0};
  m.topic = argv[2];
  m.value = payload;
  m.value_len = size;
  m.partition = -1;
  double started = now_seconds();
  for (uint64_t i = 0; i < count; i++) {
    if (ks_producer_send(producer, &m, on_delivery, &t) != KS_STATUS_OK) {
      fprintf(stderr, "send: %s\n", ks_last_error());
      return 1;
    }
  }
  if (ks_producer_flush(producer, 300000) != KS_STATUS_OK) {
    fprintf(stderr, "flush: %s\n", ks_last_error());
    return 1;
  }
  double elapsed = now_seconds() - started;
  ks_producer_free(producer);
  if (t.delivered != count) {
    fprintf(stderr, "%llu of %llu delivered\n", (unsigned long long)t.delivered, (unsigned long long)count);
    return 1;
  }
  qsort(t.latency_us, count, sizeof(uint64_t), by_value);
  printf("result\tc\t%.0f\t%.3f\t%.3f\n", (double)count / elapsed, (double)t.latency_us[count / 2] / 1e3,
         (double)t.latency_us[count * 99 / 100] / 1e3);
  free(t.latency_us);
  free(payload);
  return 0;
}
