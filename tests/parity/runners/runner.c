/*
 * The C face's runner of tests/parity scenarios: steps on stdin, one outcome line per send on
 * stdout (the protocol is described in tests/parity/run.py).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafkasender.h"

#define MAX_FIELDS 8
#define MAX_SENDS 1024
#define MAX_HEADERS 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char outcomes[MAX_SENDS][96];
static int sends;

static void on_delivery(const ks_delivery_report *report, void *user_data) {
  intptr_t index = (intptr_t)user_data;
  pthread_mutex_lock(&lock);
  snprintf(outcomes[index], sizeof outcomes[index], "%s\t%s\t%d", ks_outcome_str(report->outcome),
           report->status == KS_STATUS_OK ? "-" : ks_status_str(report->status), report->partition);
  pthread_mutex_unlock(&lock);
}

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, ks_last_error());
  return 1;
}

int main(void) {
  ks_mock_cluster *cluster = NULL;
  ks_producer *producer = NULL;
  ks_config *config = ks_config_new();
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    char *field[MAX_FIELDS] = {0};
    int n = 0;
    for (char *f = strtok(line, "\t"); f && n < MAX_FIELDS; f = strtok(NULL, "\t")) field[n++] = f;
    if (n == 0) continue;
    const char *step = field[0];
    if (strcmp(step, "brokers") == 0) {
      if (atoi(field[1]) > 0 && ks_mock_cluster_new((uint16_t)atoi(field[1]), &cluster)) return fail("brokers");
    } else if (strcmp(step, "topic") == 0) {
      if (ks_mock_cluster_create_topic(cluster, field[1], atoi(field[2]), 1)) return fail("topic");
    } else if (strcmp(step, "config") == 0) {
      if (ks_config_set(config, field[1], field[2])) return fail("config");
    } else if (strcmp(step, "start") == 0) {
      if (cluster) ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster));
      if (ks_producer_new(config, &producer)) return fail("start");
    } else if (strcmp(step, "send") == 0) {
      if (sends == MAX_SENDS) return fail("too many sends");
      ks_message m = {0}; /* zero: no key, no headers, the partitioner chooses */
      m.topic = field[1];
      if (strcmp(field[2], "-") != 0) {
        m.key = (const uint8_t *)field[2];
        m.key_len = strlen(field[2]);
      }
      size_t size = (size_t)atol(field[4]);
      char *big = size > 0 ? malloc(size) : NULL;
      if (big) {
        memset(big, 'x', size);
        m.value = (const uint8_t *)big;
        m.value_len = size;
      } else if (strcmp(field[3], "-") != 0) {
        m.value = (const uint8_t *)field[3];
        m.value_len = strlen(field[3]);
      }
      if (strcmp(field[5], "-") != 0) {
        m.has_partition = true;
        m.partition = atoi(field[5]);
      }
      ks_header headers[MAX_HEADERS];
      if (strcmp(field[6], "-") != 0) {
        for (char *h = strtok(field[6], ","); h && m.headers_len < MAX_HEADERS; h = strtok(NULL, ",")) {
          char *eq = strchr(h, '=');
          if (!eq) continue;
          *eq = 0;
          headers[m.headers_len++] = (ks_header){h, (const uint8_t *)(eq + 1), strlen(eq + 1)};
        }
        m.headers = headers;
      }
      pthread_mutex_lock(&lock);
      intptr_t index = sends++;
      snprintf(outcomes[index], sizeof outcomes[index], "unreported\t-\t-1");
      pthread_mutex_unlock(&lock);
      ks_status status = ks_producer_send(producer, &m, on_delivery, (void *)index, NULL);
      free(big);
      if (status != KS_STATUS_OK) {
        pthread_mutex_lock(&lock);
        snprintf(outcomes[index], sizeof outcomes[index], "refused\t%s\t-1", ks_status_str(status));
        pthread_mutex_unlock(&lock);
      }
    } else if (strcmp(step, "flush") == 0) {
      ks_producer_flush(producer, (uint32_t)atol(field[1]));
    } else if (strcmp(step, "close") == 0) {
      ks_producer_close(producer, (uint32_t)atol(field[1]), NULL);
    } else if (strcmp(step, "down") == 0) {
      if (ks_mock_cluster_broker_down(cluster, atoi(field[1]))) return fail("down");
    } else if (strcmp(step, "up") == 0) {
      if (ks_mock_cluster_broker_up(cluster, atoi(field[1]))) return fail("up");
    } else if (strcmp(step, "errors") == 0) {
      int32_t codes[64];
      size_t count = 0;
      for (char *c = strtok(field[2], ","); c && count < 64; c = strtok(NULL, ",")) codes[count++] = atoi(c);
      if (ks_mock_cluster_push_request_errors(cluster, field[1], codes, count)) return fail("errors");
    } else if (strcmp(step, "sleep") == 0) {
      long ms = atol(field[1]);
      struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
      nanosleep(&t, NULL);
    } else {
      fprintf(stderr, "unknown step %s\n", step);
      return 1;
    }
  }
  if (producer) {
    ks_producer_close(producer, 10000, NULL); /* every callback has run once this returns */
    ks_producer_free(producer);
  }
  ks_config_free(config);
  ks_mock_cluster_free(cluster);
  for (int i = 0; i < sends; i++) printf("%d\t%s\n", i, outcomes[i]);
  return 0;
}
