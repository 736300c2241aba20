/*
 * The C face's contender for `kafkasender bench --external c-send=target/c/bench_ffi` (the rules
 * are at the top of crates/kafkasender-cli/src/bench.rs): ks_producer_send() with a callback,
 * distinct 16-byte keys, one warm-up message before the clock starts.
 * Usage: bench_ffi BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
 * Prints: result<TAB>c-send<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep under -std=c99 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kafkasender.h"

typedef struct recorder {
  pthread_mutex_t lock;
  uint64_t delivered, failed, expected;
  double finished;
  uint64_t *latency_us;
} recorder;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(const ks_delivery_report *report, void *user_data) {
  recorder *r = user_data;
  pthread_mutex_lock(&r->lock);
  if (report->outcome != KS_OUTCOME_DELIVERED) {
    r->failed++;
  } else {
    r->latency_us[r->delivered++] = report->latency_us;
    if (r->delivered == r->expected) r->finished = now_seconds();
  }
  pthread_mutex_unlock(&r->lock);
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static int send_one(ks_producer *producer, ks_message *m, uint64_t i, recorder *r) {
  uint8_t key[16] = "........ks-bench";
  for (int b = 0; b < 8; b++) key[b] = (uint8_t)(i >> (56 - 8 * b));
  m->key = key;
  m->key_len = sizeof key;
  if (ks_producer_send(producer, m, on_delivery, r, NULL) != KS_STATUS_OK) {
    fprintf(stderr, "send: %s\n", ks_last_error());
    return 1;
  }
  return 0;
}

static void sleep_until(double due) {
  double wait = due - now_seconds();
  if (wait <= 0) return;
  struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s BOOTSTRAP TOPIC COUNT SIZE RATE\n", argv[0]);
    return 2;
  }
  const uint64_t count = strtoull(argv[3], NULL, 10);
  const size_t size = strtoul(argv[4], NULL, 10);
  const double rate = strtod(argv[5], NULL);
  uint8_t *payload = malloc(size);
  memset(payload, 'x', size);
  recorder r = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 1, 0, calloc(count + 1, sizeof(uint64_t))};

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
  /* Warm up: connections, metadata and the producer id before the clock starts. */
  if (send_one(producer, &m, UINT64_MAX, &r) || ks_producer_flush(producer, 30000) != KS_STATUS_OK) return 1;
  pthread_mutex_lock(&r.lock);
  r.delivered = 0;
  r.expected = count;
  pthread_mutex_unlock(&r.lock);

  double started = now_seconds();
  for (uint64_t i = 0; i < count; i++) {
    if (rate > 0) sleep_until(started + (double)i / rate);
    if (send_one(producer, &m, i, &r)) return 1;
  }
  if (ks_producer_flush(producer, 300000) != KS_STATUS_OK) {
    fprintf(stderr, "flush: %s\n", ks_last_error());
    return 1;
  }
  ks_producer_free(producer);
  if (r.delivered != count || r.failed != 0) {
    fprintf(stderr, "%llu of %llu delivered, %llu failed\n", (unsigned long long)r.delivered,
            (unsigned long long)count, (unsigned long long)r.failed);
    return 1;
  }
  /* CPU time is read before sorting the latencies, which is the harness's work, not the face's
     (the Rust contenders keep theirs in a histogram). */
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  qsort(r.latency_us, count, sizeof(uint64_t), by_value);
  double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
               (double)usage.ru_stime.tv_usec / 1e6;
  printf("result\tc-send\t%.0f\t%.3f\t%.3f\t%ld\t%.3f\n", (double)count / (r.finished - started),
         (double)r.latency_us[count / 2] / 1e3, (double)r.latency_us[count * 99 / 100] / 1e3, usage.ru_maxrss, cpu);
  free(r.latency_us);
  free(payload);
  return 0;
}
