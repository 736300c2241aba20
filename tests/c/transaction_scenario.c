/* The transaction scenario of tests/e2e/test_transactions_real_kafka.py, from C: 20 transactions
 * of 20 messages over two topics, the even ones committed and the odd ones aborted. Checks every
 * report; the test then reads both topics back with Kafka's own consumer.
 * Usage: transaction_scenario BOOTSTRAP TOPIC_A TOPIC_B TRANSACTIONAL_ID */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkasender.h"

enum { TRANSACTIONS = 20, PER_TRANSACTION = 20 };

typedef struct tally {
  pthread_mutex_t lock;
  int delivered, aborted, other;
} tally;

static void count(const ks_delivery_report *report, void *user_data) {
  tally *t = user_data;
  pthread_mutex_lock(&t->lock);
  if (report->outcome == KS_OUTCOME_DELIVERED) t->delivered++;
  else if (report->status == KS_STATUS_TRANSACTION && report->retriable) t->aborted++;
  else t->other++;
  pthread_mutex_unlock(&t->lock);
}

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, ks_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) return fprintf(stderr, "usage: %s BOOTSTRAP TOPIC_A TOPIC_B ID\n", argv[0]), 2;
  ks_config *config = ks_config_new();
  ks_producer *producer = NULL;
  if (ks_config_set(config, "bootstrap.servers", argv[1]) || ks_config_set(config, "transactional.id", argv[4]))
    return fail("config");
  if (ks_producer_new(config, &producer)) return fail("producer");
  ks_config_free(config);
  tally t = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  for (int n = 0; n < TRANSACTIONS; n++) {
    int commit = n % 2 == 0;
    if (ks_producer_begin_transaction(producer)) return fail("begin");
    for (int i = 0; i < PER_TRANSACTION; i++) {
      char key[8], value[32];
      snprintf(key, sizeof key, "k%d", i % 4);
      snprintf(value, sizeof value, "%c-%d-%d", commit ? 'c' : 'a', n, i);
      ks_message m;
      memset(&m, 0, sizeof m);
      m.topic = argv[i % 2 == 0 ? 2 : 3];
      m.key = (const uint8_t *)key;
      m.key_len = strlen(key);
      m.value = (const uint8_t *)value;
      m.value_len = strlen(value);
      if (ks_producer_send(producer, &m, count, &t, NULL)) return fail("send");
    }
    /* An aborted transaction's messages reach the log first, so that only the abort hides them. */
    if (!commit && ks_producer_flush(producer, 60000)) return fail("flush");
    if ((commit ? ks_producer_commit_transaction : ks_producer_abort_transaction)(producer, 60000))
      return fail(commit ? "commit" : "abort");
  }
  ks_producer_free(producer);
  int half = TRANSACTIONS / 2 * PER_TRANSACTION;
  printf("c: delivered %d, aborted %d, other %d\n", t.delivered, t.aborted, t.other);
  return t.delivered == half && t.aborted == half && t.other == 0 ? 0 : 1;
}
