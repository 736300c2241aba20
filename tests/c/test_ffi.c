/*
 * The C API against an in-process mock cluster. Every delivery claim is checked by reading the
 * topic back. Built with -Wall -Wextra -Werror, and run plain, under valgrind and with ASan/UBSan.
 * KS_TEST_SCALE (default 1.0) shrinks message counts for the slow valgrind run.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, nanosleep */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafkasender.h"

static int passed, failed;

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (cond) {                                                           \
      passed++;                                                           \
    } else {                                                              \
      failed++;                                                           \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                       \
      fprintf(stderr, " (last error: %s)\n", ks_last_error());            \
    }                                                                     \
  } while (0)

#define CHECK_STATUS(call, expected)                                                              \
  do {                                                                                            \
    ks_status got_ = (call);                                                                      \
    CHECK(got_ == (expected), "%s returned %s, expected %s", #call, ks_status_str((int32_t)got_), \
          ks_status_str((int32_t)(expected)));                                                    \
  } while (0)

static double scale(void) {
  const char *s = getenv("KS_TEST_SCALE");
  return s ? atof(s) : 1.0;
}

static int scaled(int n) {
  int m = (int)(n * scale());
  return m < 10 ? 10 : m;
}

/* Counts callbacks; thread-safe because callbacks run on the delivery thread while tests read. */
typedef struct counter {
  pthread_mutex_t lock;
  int calls, delivered, closed;
  int *per_message; /* callbacks per message index, to prove "exactly once" */
  int aborted;      /* reported KS_STATUS_TRANSACTION: their transaction was aborted */
  int recovered;    /* sent again through a new client after a fatal error */
} counter;

typedef struct tagged {
  counter *counter;
  int index;
} tagged;

static void count_report(const ks_delivery_report *report, void *user_data) {
  tagged *tag = user_data;
  counter *c = tag->counter;
  pthread_mutex_lock(&c->lock);
  c->calls++;
  if (report->outcome == KS_OUTCOME_DELIVERED && report->status == KS_STATUS_OK && report->offset >= 0) c->delivered++;
  if (report->status == KS_STATUS_CLOSED) c->closed++;
  if (report->status == KS_STATUS_TRANSACTION && report->retriable) c->aborted++;
  if (report->recovered) c->recovered++;
  if (c->per_message) c->per_message[tag->index]++;
  pthread_mutex_unlock(&c->lock);
}

/* One metric by its core name (see tests/parity/metrics.txt). */
static double metric(ks_producer *producer, const char *name) {
  double value = -1;
  CHECK_STATUS(ks_producer_metric(producer, name, &value), KS_STATUS_OK);
  return value;
}

static ks_status send_counted(ks_producer *p, const ks_message *m, counter *c, int index) {
  tagged *tag = malloc(sizeof *tag);
  tag->counter = c;
  tag->index = index;
  return ks_producer_send(p, m, count_report, tag, free); /* free: whatever happens, once */
}

/* Collects what a topic holds. */
typedef struct topic_contents {
  int count, empty_keys, null_values, nul_values, with_headers;
  char last_value[64];
} topic_contents;

static void collect(const ks_consumed_record *r, void *user_data) {
  topic_contents *t = user_data;
  t->count++;
  if (r->key != NULL && r->key_len == 0) t->empty_keys++;
  if (r->value == NULL) t->null_values++;
  if (r->value != NULL && r->value_len == 5 && memcmp(r->value, "a\0b\0c", 5) == 0) t->nul_values++;
  if (r->headers_len == 2 && strcmp(r->headers[0].key, "h1") == 0 && r->headers[1].value == NULL) t->with_headers++;
  if (r->value != NULL && r->value_len < sizeof t->last_value) {
    memcpy(t->last_value, r->value, r->value_len);
    t->last_value[r->value_len] = '\0';
  }
}

static topic_contents read_back(ks_mock_cluster *cluster, const char *topic) {
  topic_contents t;
  uint64_t count = 0;
  memset(&t, 0, sizeof t);
  CHECK_STATUS(ks_mock_cluster_read_topic(cluster, topic, 60000, collect, &t, &count), KS_STATUS_OK);
  CHECK((uint64_t)t.count == count, "callback count %d vs count_out %llu", t.count, (unsigned long long)count);
  return t;
}

static ks_producer *producer_for(ks_mock_cluster *cluster, const char *extra_key, const char *extra_value) {
  ks_config *config = ks_config_new();
  ks_producer *producer = NULL;
  CHECK_STATUS(ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster)), KS_STATUS_OK);
  if (extra_key) CHECK_STATUS(ks_config_set(config, extra_key, extra_value), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_new(config, &producer), KS_STATUS_OK);
  ks_config_free(config); /* the producer does not need it any more */
  return producer;
}

static ks_message message(const char *topic, const char *value) {
  ks_message m;
  memset(&m, 0, sizeof m);
  m.topic = topic;
  m.value = (const uint8_t *)value;
  m.value_len = value ? strlen(value) : 0;
  return m;
}

static void test_names_and_version(void) {
  CHECK(strlen(ks_version()) > 0, "empty version");
  CHECK(strcmp(ks_status_str(KS_STATUS_QUEUE_FULL), "queue_full") == 0, "%s", ks_status_str(KS_STATUS_QUEUE_FULL));
  CHECK(strcmp(ks_status_str(12345), "unknown") == 0, "unknown status name");
}

static void test_null_arguments_are_errors_with_a_message(ks_mock_cluster *cluster) {
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  ks_config *config = ks_config_new();
  ks_message m = message("t", "v");
  ks_producer *out = NULL;
  ks_mock_cluster *cluster_out = NULL;

  CHECK_STATUS(ks_config_set(NULL, "k", "v"), KS_STATUS_NULL_ARGUMENT);
  CHECK(strstr(ks_last_error(), "config") != NULL, "last error names the argument");
  CHECK_STATUS(ks_config_set(config, NULL, "v"), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_config_set(config, "k", NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_config_validate(NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_new(NULL, &out), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_new(config, NULL), KS_STATUS_CONFIG); /* validated first: no brokers */
  CHECK_STATUS(ks_producer_send(NULL, &m, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_send(producer, NULL, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  m.topic = NULL;
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  m = message("t", "v");
  m.headers_len = 1; /* headers NULL */
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_send_sync(NULL, &m, 10, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_send_sync(producer, NULL, 10, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_flush(NULL, 10), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_close(NULL, 10, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK(ks_producer_in_flight(NULL) == 0, "in flight of NULL");
  CHECK_STATUS(ks_mock_cluster_new(1, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_new(0, &cluster_out), KS_STATUS_INVALID_RECORD);
  CHECK(ks_mock_cluster_bootstrap_servers(NULL) == NULL, "bootstrap of NULL");
  CHECK_STATUS(ks_mock_cluster_create_topic(NULL, "t", 1, 1), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, NULL, 1, 1), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_broker_down(NULL, 1), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_broker_up(NULL, 1), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_push_request_errors(NULL, "produce", NULL, 0), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_push_request_errors(cluster, "produce", NULL, 1), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_push_request_errors(cluster, "nothing", NULL, 0), KS_STATUS_INVALID_RECORD);
  CHECK(strstr(ks_last_error(), "init_producer_id") != NULL, "the choices are named: %s", ks_last_error());
  CHECK_STATUS(ks_mock_cluster_read_topic(NULL, "t", 10, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_mock_cluster_read_topic(cluster, NULL, 10, NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  ks_config_free(NULL);
  ks_producer_free(NULL);
  ks_mock_cluster_free(NULL);

  ks_config_free(config);
  ks_producer_free(producer);
}

static void test_invalid_configuration_lists_every_problem(void) {
  ks_config *config = ks_config_new();
  ks_producer *producer = NULL;
  CHECK_STATUS(ks_config_set(config, "linger.ms", "soon"), KS_STATUS_OK);
  CHECK_STATUS(ks_config_set(config, "no.such.key", "1"), KS_STATUS_OK);
  CHECK_STATUS(ks_config_set(config, "sasl.password", "hunter2-secret"), KS_STATUS_OK);
  CHECK_STATUS(ks_config_set(config, "sasl.password", ""), KS_STATUS_OK);
  CHECK_STATUS(ks_config_validate(config), KS_STATUS_CONFIG);
  CHECK_STATUS(ks_producer_new(config, &producer), KS_STATUS_CONFIG);
  CHECK(producer == NULL, "nothing written on failure");
  const char *why = ks_last_error();
  CHECK(strstr(why, "linger.ms") && strstr(why, "no.such.key") && strstr(why, "bootstrap.servers") &&
            strstr(why, "sasl.password"),
        "every problem named: %s", why);
  CHECK(strstr(why, "hunter2") == NULL, "no secret in errors");
  ks_producer_free((ks_producer *)(void *)config); /* the wrong _free: refused, config untouched */
  CHECK(strstr(ks_last_error(), "wrong function") != NULL, "wrong free reported: %s", ks_last_error());
  CHECK_STATUS(ks_config_set(config, "linger.ms", "5"), KS_STATUS_OK);
  ks_config_free(config);
}

static void test_invalid_messages_are_rejected_and_nothing_is_sent(ks_mock_cluster *cluster) {
  ks_producer *producer = producer_for(cluster, "message.max.bytes", "1000");
  const char bad_utf8[] = {'t', (char)0xff, 0};
  ks_message m = message(bad_utf8, "v");
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_INVALID_UTF8);
  m = message("has space", "v");
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_INVALID_RECORD);
  m = message("rejects", "v");
  m.has_partition = true;
  m.partition = -2;
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_INVALID_RECORD);
  m.has_partition = false; /* a partition without the flag is refused, never ignored */
  m.partition = 3;
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_INVALID_RECORD);
  CHECK(strstr(ks_last_error(), "has_partition") != NULL, "%s", ks_last_error());
  char big[1200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  m = message("rejects", big);
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_MESSAGE_TOO_LARGE);
  m = message("rejects", "fits");
  int32_t partition = -5;
  int64_t offset = -5;
  CHECK_STATUS(ks_producer_send_sync(producer, &m, 30000, &partition, &offset), KS_STATUS_OK);
  CHECK(partition >= 0 && offset == 0, "partition %d offset %lld", partition, (long long)offset);
  ks_producer_free(producer);

  ks_config *limited = ks_config_new();
  ks_config_set(limited, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster));
  ks_config_set(limited, "ratelimit.messages.per.second", "1");
  ks_config_set(limited, "ratelimit.burst", "1");
  ks_config_set(limited, "enqueue.timeout.ms", "50ms");
  CHECK_STATUS(ks_producer_new(limited, &producer), KS_STATUS_OK);
  ks_config_free(limited);
  m = message("rejects", "fits");
  /* Back to back: the second send finds the bucket empty (a sync send could take longer than the
   * one second a new token takes, while the topic is being created). */
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_RATE_LIMITED);
  CHECK_STATUS(ks_producer_flush(producer, 30000), KS_STATUS_OK);
  CHECK(strstr(ks_last_error(), "rate") != NULL, "rate limit named: %s", ks_last_error());
  ks_producer_free(producer);
  topic_contents t = read_back(cluster, "rejects");
  CHECK(t.count == 2 && strcmp(t.last_value, "fits") == 0, "only the valid messages landed: %d", t.count);
}

static void test_deliveries_match_what_is_read_back(ks_mock_cluster *cluster) {
  const int n = scaled(2000) / 4 * 4; /* four variants, equally many of each */
  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, 0, 0};
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  const uint8_t nul_value[5] = {'a', 0, 'b', 0, 'c'};
  const uint8_t empty[1] = {0};
  ks_header headers[2] = {{"h1", (const uint8_t *)"one", 3}, {"h2", NULL, 0}};
  for (int i = 0; i < n; i++) {
    ks_message m = message("delivered", "plain");
    if (i % 4 == 1) { m.key = empty; m.key_len = 0; }                 /* empty, present key */
    if (i % 4 == 2) { m.value = nul_value; m.value_len = 5; }         /* NUL bytes inside */
    if (i % 4 == 3) { m.value = NULL; m.value_len = 0; m.headers = headers; m.headers_len = 2; }
    CHECK_STATUS(send_counted(producer, &m, &c, i), KS_STATUS_OK);
  }
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(c.calls == n && c.delivered == n, "calls %d delivered %d of %d", c.calls, c.delivered, n);
  ks_producer_free(producer);

  topic_contents t = read_back(cluster, "delivered");
  CHECK(t.count == n, "read back %d of %d", t.count, n);
  CHECK(t.empty_keys == n / 4, "empty keys %d", t.empty_keys);
  CHECK(t.nul_values == n / 4, "NUL-containing values %d", t.nul_values);
  CHECK(t.null_values == n / 4 && t.with_headers == n / 4, "null values %d, headers %d", t.null_values, t.with_headers);
}

/* One send's user_data: how often its callback and its finalizer ran, and in which order. */
typedef struct released {
  int calls, finalized, calls_before_finalizer;
} released;

static pthread_mutex_t released_lock = PTHREAD_MUTEX_INITIALIZER;

static void released_callback(const ks_delivery_report *report, void *user_data) {
  (void)report;
  pthread_mutex_lock(&released_lock);
  ((released *)user_data)->calls++;
  pthread_mutex_unlock(&released_lock);
}

static void released_finalizer(void *user_data) {
  released *r = user_data;
  pthread_mutex_lock(&released_lock);
  r->finalized++;
  r->calls_before_finalizer = r->calls;
  pthread_mutex_unlock(&released_lock);
}

static void test_the_finalizer_releases_user_data_once_whatever_happens(ks_mock_cluster *cluster) {
  enum { N = 50 };
  released accepted[N], finalizer_only, refused, null_producer, closed;
  memset(accepted, 0, sizeof accepted);
  memset(&finalizer_only, 0, sizeof finalizer_only);
  memset(&refused, 0, sizeof refused);
  memset(&null_producer, 0, sizeof null_producer);
  memset(&closed, 0, sizeof closed);
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  ks_message m = message("finalized", "v");
  for (int i = 0; i < N; i++) {
    CHECK_STATUS(ks_producer_send(producer, &m, released_callback, &accepted[i], released_finalizer), KS_STATUS_OK);
  }
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, &finalizer_only, released_finalizer), KS_STATUS_OK);
  ks_message bad = message("bad topic!", "v");
  CHECK_STATUS(ks_producer_send(producer, &bad, released_callback, &refused, released_finalizer), KS_STATUS_INVALID_RECORD);
  CHECK(refused.finalized == 1 && refused.calls == 0, "refused: finalized %d, calls %d", refused.finalized, refused.calls);
  CHECK_STATUS(ks_producer_send(NULL, &m, released_callback, &null_producer, released_finalizer), KS_STATUS_NULL_ARGUMENT);
  CHECK(null_producer.finalized == 1 && null_producer.calls == 0, "NULL producer: finalized %d", null_producer.finalized);
  CHECK_STATUS(ks_producer_flush(producer, 30000), KS_STATUS_OK);
  pthread_mutex_lock(&released_lock);
  int once = 0;
  for (int i = 0; i < N; i++) once += accepted[i].calls == 1 && accepted[i].finalized == 1 && accepted[i].calls_before_finalizer == 1;
  CHECK(once == N, "%d of %d called back, then finalized, once each", once, N);
  CHECK(finalizer_only.finalized == 1, "finalizer without a callback: %d", finalizer_only.finalized);
  pthread_mutex_unlock(&released_lock);
  CHECK_STATUS(ks_producer_close(producer, 10000, NULL), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_send(producer, &m, released_callback, &closed, released_finalizer), KS_STATUS_CLOSED);
  CHECK(closed.finalized == 1 && closed.calls == 0, "after close: finalized %d", closed.finalized);
  ks_producer_free(producer);
}

/* ks_last_error(): never NULL, "" before any failure, the failure's text after one, unchanged by
   a later success (like errno). Runs on a thread of its own, which has had no failure yet. */
static void *last_error_on_a_fresh_thread(void *arg) {
  ks_producer *producer = arg;
  const char *none = ks_last_error();
  CHECK(none != NULL && none[0] == '\0', "a fresh thread's last error: %s", none ? none : "(NULL)");
  ks_message bad = message("bad topic!", "v");
  CHECK_STATUS(ks_producer_send(producer, &bad, NULL, NULL, NULL), KS_STATUS_INVALID_RECORD);
  CHECK(strstr(ks_last_error(), "bad topic!") != NULL, "after a failure: %s", ks_last_error());
  ks_message good = message("finalized", "v");
  CHECK_STATUS(ks_producer_send_sync(producer, &good, 30000, NULL, NULL), KS_STATUS_OK);
  CHECK(strstr(ks_last_error(), "bad topic!") != NULL, "after a later success: %s", ks_last_error());
  return NULL;
}

static void test_last_error_is_per_thread_and_never_null(ks_mock_cluster *cluster) {
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  pthread_t thread;
  pthread_create(&thread, NULL, last_error_on_a_fresh_thread, producer);
  pthread_join(thread, NULL);
  ks_producer_free(producer);
}

/* A zeroed ks_message is the default: the partitioner spreads keys; has_partition picks one. */
static void test_a_zeroed_message_lets_the_partitioner_choose(ks_mock_cluster *cluster) {
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, "spread", 4, 1), KS_STATUS_OK);
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  int used[4] = {0, 0, 0, 0};
  for (int i = 0; i < 64; i++) {
    char key[16];
    snprintf(key, sizeof key, "key-%d", i);
    ks_message m = {0};
    m.topic = "spread";
    m.key = (const uint8_t *)key;
    m.key_len = strlen(key);
    int32_t partition = -1;
    CHECK_STATUS(ks_producer_send_sync(producer, &m, 30000, &partition, NULL), KS_STATUS_OK);
    CHECK(partition >= 0 && partition < 4, "partition %d", partition);
    if (partition >= 0 && partition < 4) used[partition]++;
  }
  CHECK(used[0] && used[1] && used[2] && used[3], "keys went to %d/%d/%d/%d", used[0], used[1], used[2], used[3]);
  ks_message chosen = {0};
  chosen.topic = "spread";
  chosen.has_partition = true;
  chosen.partition = 2;
  int32_t partition = -1;
  CHECK_STATUS(ks_producer_send_sync(producer, &chosen, 30000, &partition, NULL), KS_STATUS_OK);
  CHECK(partition == 2, "partition %d", partition);
  chosen.partition = 0; /* 0 with the flag is partition 0, not "the partitioner" */
  CHECK_STATUS(ks_producer_send_sync(producer, &chosen, 30000, &partition, NULL), KS_STATUS_OK);
  CHECK(partition == 0, "partition %d", partition);
  ks_producer_free(producer);
}

static void test_transactions_report_at_their_end_and_calls_out_of_turn_are_typed(ks_mock_cluster *cluster) {
  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, 0, 0};
  ks_producer *plain = producer_for(cluster, NULL, NULL);
  CHECK_STATUS(ks_producer_begin_transaction(plain), KS_STATUS_TRANSACTION);
  ks_producer_free(plain);
  ks_producer *producer = producer_for(cluster, "transactional.id", "c-face");
  ks_message m = message("transactions", "v");
  CHECK_STATUS(send_counted(producer, &m, &c, 0), KS_STATUS_TRANSACTION); /* outside a transaction */
  CHECK_STATUS(ks_producer_commit_transaction(producer, 30000), KS_STATUS_TRANSACTION);
  CHECK_STATUS(ks_producer_abort_transaction(producer, 30000), KS_STATUS_TRANSACTION);
  CHECK_STATUS(ks_producer_begin_transaction(NULL), KS_STATUS_NULL_ARGUMENT);

  const int n = scaled(200);
  CHECK_STATUS(ks_producer_begin_transaction(producer), KS_STATUS_OK);
  for (int i = 0; i < n; i++) CHECK_STATUS(send_counted(producer, &m, &c, i), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(c.calls == 0, "%d callbacks before the commit", c.calls);
  CHECK_STATUS(ks_producer_commit_transaction(producer, 30000), KS_STATUS_OK);
  CHECK(c.calls == n && c.delivered == n, "after commit: calls %d delivered %d of %d", c.calls, c.delivered, n);

  CHECK_STATUS(ks_producer_begin_transaction(producer), KS_STATUS_OK);
  for (int i = 0; i < n; i++) CHECK_STATUS(send_counted(producer, &m, &c, i), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_abort_transaction(producer, 30000), KS_STATUS_OK);
  CHECK(c.calls == 2 * n && c.aborted == n, "after abort: calls %d aborted %d of %d", c.calls, c.aborted, n);
  ks_producer_free(producer);
}

static void test_a_fatal_error_is_recovered_from_and_shows_in_reports(ks_mock_cluster *cluster) {
  const int n = scaled(2000);
  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, 0, 0};
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  char key[16];
  for (int i = 0; i < 2 * n; i++) {
    ks_message m = message("healing", "v");
    snprintf(key, sizeof key, "k%d", i % 10);
    m.key = (const uint8_t *)key;
    m.key_len = strlen(key);
    CHECK_STATUS(send_counted(producer, &m, &c, i), KS_STATUS_OK);
    if (i == n) CHECK_STATUS(ks_test_inject_fatal_error(producer, 59 /* UNKNOWN_PRODUCER_ID */), KS_STATUS_OK);
  }
  CHECK_STATUS(ks_test_inject_fatal_error(NULL, 59), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(c.calls == 2 * n && c.delivered == 2 * n, "calls %d delivered %d of %d", c.calls, c.delivered, 2 * n);
  CHECK(metric(producer, "recoveries") == 1, "recoveries %g", metric(producer, "recoveries"));
  printf("c: %d of %d messages re-sent through the new client\n", c.recovered, 2 * n);
  ks_producer_free(producer);
}

typedef struct thread_job {
  ks_producer *producer;
  counter *counter;
  int sends, failures;
} thread_job;

static void *send_from_thread(void *arg) {
  thread_job *job = arg;
  for (int i = 0; i < job->sends; i++) {
    ks_message m = message("threads", "from a thread");
    if (send_counted(job->producer, &m, job->counter, 0) != KS_STATUS_OK) job->failures++;
  }
  return NULL;
}

static void test_eight_threads_share_one_producer(ks_mock_cluster *cluster) {
  enum { THREADS = 8 };
  const int each = scaled(500);
  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, 0, 0};
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  pthread_t threads[THREADS];
  thread_job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (thread_job){producer, &c, each, 0};
    pthread_create(&threads[i], NULL, send_from_thread, &jobs[i]);
  }
  int failures = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    failures += jobs[i].failures;
  }
  CHECK(failures == 0, "%d sends failed", failures);
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(c.delivered == THREADS * each, "delivered %d", c.delivered);
  ks_producer_free(producer);
  topic_contents t = read_back(cluster, "threads");
  CHECK(t.count == THREADS * each, "read back %d of %d", t.count, THREADS * each);
}

static void test_close_in_flight_calls_back_once_each_and_use_after_close_fails(void) {
  ks_mock_cluster *cluster = NULL;
  CHECK_STATUS(ks_mock_cluster_new(1, &cluster), KS_STATUS_OK);
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  ks_message m = message("closing", "warm-up");
  CHECK_STATUS(ks_producer_send_sync(producer, &m, 30000, NULL, NULL), KS_STATUS_OK);
  CHECK_STATUS(ks_mock_cluster_broker_down(cluster, 1), KS_STATUS_OK);

  const int n = scaled(300);
  int *per_message = calloc((size_t)n, sizeof *per_message);
  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, per_message, 0, 0};
  for (int i = 0; i < n; i++) {
    m = message("closing", "in flight");
    CHECK_STATUS(send_counted(producer, &m, &c, i), KS_STATUS_OK);
  }
  uint64_t purged = 0;
  CHECK_STATUS(ks_producer_close(producer, 200, &purged), KS_STATUS_OK);
  CHECK(c.calls == n, "every callback ran before close returned: %d of %d", c.calls, n);
  int exactly_once = 1;
  for (int i = 0; i < n; i++) exactly_once &= per_message[i] == 1;
  CHECK(exactly_once, "each message reported exactly once");
  CHECK((int)purged == c.closed && c.closed + c.delivered == n, "purged %llu closed %d delivered %d",
        (unsigned long long)purged, c.closed, c.delivered);

  m = message("closing", "late");
  CHECK_STATUS(ks_producer_send(producer, &m, NULL, NULL, NULL), KS_STATUS_CLOSED);
  CHECK_STATUS(ks_producer_close(producer, 0, NULL), KS_STATUS_OK);
  ks_producer_free(producer);
  ks_producer_free(producer); /* double free: detected, reported, no crash */
  CHECK(strstr(ks_last_error(), "twice") != NULL, "double free reported: %s", ks_last_error());
  ks_mock_cluster_free(cluster);
  free(per_message);
}

typedef struct polled_counter {
  pthread_t poller;
  int calls, on_poller;
} polled_counter;

static void count_on_thread(const ks_delivery_report *report, void *user_data) {
  polled_counter *c = user_data; /* no lock needed: in poll mode only the polling thread runs this */
  (void)report;
  c->calls++;
  if (pthread_equal(pthread_self(), c->poller)) c->on_poller++;
}

static void test_poll_mode_runs_callbacks_on_the_polling_thread(ks_mock_cluster *cluster) {
  ks_config *config = ks_config_new();
  ks_producer *producer = NULL;
  ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster));
  CHECK_STATUS(ks_producer_new_polled(config, &producer), KS_STATUS_OK);
  ks_config_free(config);
  const int n = scaled(200);
  polled_counter c = {pthread_self(), 0, 0};
  for (int i = 0; i < n; i++) {
    ks_message m = message("polled", "v");
    CHECK_STATUS(ks_producer_send(producer, &m, count_on_thread, &c, NULL), KS_STATUS_OK);
  }
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(c.calls == 0, "no callback before polling: %d", c.calls);
  uint64_t served = 0, total = 0;
  for (int round = 0; round < 100 && total < (uint64_t)n; round++) {
    CHECK_STATUS(ks_producer_poll(producer, 100, &served), KS_STATUS_OK);
    total += served;
  }
  CHECK(c.calls == n && c.on_poller == n, "calls %d, on the polling thread %d, of %d", c.calls, c.on_poller, n);

  for (int i = 0; i < 10; i++) {
    ks_message m = message("polled", "never polled");
    CHECK_STATUS(ks_producer_send(producer, &m, count_on_thread, &c, NULL), KS_STATUS_OK);
  }
  ks_producer_free(producer); /* runs the callbacks nobody polled for */
  CHECK(c.calls == n + 10, "free ran the remaining callbacks: %d", c.calls);

  ks_producer *threaded = producer_for(cluster, NULL, NULL);
  CHECK_STATUS(ks_producer_poll(threaded, 0, NULL), KS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(ks_producer_poll(NULL, 0, NULL), KS_STATUS_NULL_ARGUMENT);
  ks_producer_free(threaded);
  topic_contents t = read_back(cluster, "polled");
  CHECK(t.count == n + 10, "read back %d of %d", t.count, n + 10);
}

static void test_metrics_and_health_describe_the_producer(ks_mock_cluster *cluster) {
  ks_producer *producer = producer_for(cluster, NULL, NULL);
  ks_message m = message("observed", "0123456789");
  for (int i = 0; i < 10; i++) CHECK_STATUS(ks_producer_send_sync(producer, &m, 30000, NULL, NULL), KS_STATUS_OK);
  /* A sync send returns as its callback runs; the message leaves "in flight" when it returns. */
  CHECK_STATUS(ks_producer_flush(producer, 30000), KS_STATUS_OK);
  CHECK(metric(producer, "sent") == 10 && metric(producer, "delivered") == 10 && metric(producer, "failed") == 0 &&
            metric(producer, "bytes_sent") == 100 && metric(producer, "in_flight") == 0,
        "sent %g delivered %g failed %g bytes %g", metric(producer, "sent"), metric(producer, "delivered"),
        metric(producer, "failed"), metric(producer, "bytes_sent"));
  double p50 = metric(producer, "latency_p50_seconds");
  CHECK(p50 > 0 && metric(producer, "latency_p99_seconds") >= p50, "latency p50 %g s", p50);

  /* The list is the core's, every name once, the same as tests/parity/metrics.txt. */
  ks_metric list[128];
  size_t count = 0;
  CHECK_STATUS(ks_producer_metrics(producer, list, 128, &count), KS_STATUS_OK);
  FILE *expected = fopen("tests/parity/metrics.txt", "r");
  CHECK(expected != NULL, "tests/parity/metrics.txt (run from the repository root)");
  size_t listed = 0;
  char line[128];
  while (expected && fgets(line, sizeof line, expected)) {
    line[strcspn(line, "\n")] = 0;
    CHECK(listed < count && strcmp(list[listed].name, line) == 0, "metric %zu is %s, expected %s", listed,
          listed < count ? list[listed].name : "(none)", line);
    CHECK(listed >= count || (list[listed].help != NULL && list[listed].help[0] != 0), "help of %s", line);
    listed++;
  }
  if (expected) fclose(expected);
  CHECK(listed == count, "%zu metrics listed, %zu expected", count, listed);
  size_t few = 0;
  CHECK_STATUS(ks_producer_metrics(producer, list, 2, &few), KS_STATUS_OK);
  CHECK(few == count, "a short array still learns the count: %zu", few);
  CHECK_STATUS(ks_producer_metrics(producer, NULL, 0, &few), KS_STATUS_OK);
  double value = -1;
  CHECK_STATUS(ks_producer_metric(producer, "no_such_metric", &value), KS_STATUS_INVALID_ARGUMENT);
  CHECK(value == -1, "unknown metric leaves the output alone");

  char *text = ks_producer_metrics_prometheus(producer);
  CHECK(text != NULL && strstr(text, "kafkasender_messages_delivered_total{client_id=\"kafkasender\"} 10\n") != NULL,
        "prometheus text: %s", text ? text : "(null)");
  ks_string_free(text);
  ks_string_free(text); /* double free: detected, reported, no crash */
  CHECK(strstr(ks_last_error(), "twice") != NULL, "double string free reported: %s", ks_last_error());

  ks_health health = KS_HEALTH_UNHEALTHY;
  char *reasons = NULL;
  CHECK_STATUS(ks_producer_health(producer, &health, &reasons), KS_STATUS_OK);
  CHECK(health == KS_HEALTH_HEALTHY && reasons != NULL && reasons[0] == 0, "health %d: %s", (int)health, reasons);
  ks_string_free(reasons);
  CHECK_STATUS(ks_producer_close(producer, 1000, NULL), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_health(producer, &health, &reasons), KS_STATUS_OK);
  CHECK(health == KS_HEALTH_UNHEALTHY && strstr(reasons, "closed") != NULL, "after close %d: %s", (int)health, reasons);
  ks_string_free(reasons);

  CHECK_STATUS(ks_producer_metrics(NULL, list, 128, &count), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_metrics(producer, NULL, 128, &count), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_metrics(producer, list, 128, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_metric(producer, NULL, &value), KS_STATUS_NULL_ARGUMENT);
  CHECK(ks_producer_metrics_prometheus(NULL) == NULL, "prometheus of NULL");
  CHECK_STATUS(ks_producer_health(NULL, &health, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_health(producer, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  ks_string_free(NULL);
  ks_producer_free(producer);
  topic_contents t = read_back(cluster, "observed");
  CHECK(t.count == 10, "read back %d of 10", t.count);
}

typedef struct outcomes {
  pthread_mutex_t lock;
  int delivered, spooled, spooled_with_reason, other;
} outcomes;

static void count_outcome(const ks_delivery_report *report, void *user_data) {
  outcomes *o = user_data;
  pthread_mutex_lock(&o->lock);
  if (report->outcome == KS_OUTCOME_DELIVERED) {
    o->delivered++;
  } else if (report->outcome == KS_OUTCOME_SPOOLED) {
    o->spooled++;
    if (report->destination != NULL && report->status != KS_STATUS_OK && report->error != NULL) o->spooled_with_reason++;
  } else {
    o->other++;
  }
  pthread_mutex_unlock(&o->lock);
}


static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Polls health every 50 ms until it is `wanted` or `limit_ms` pass; returns the last reasons. */
static ks_health wait_for_health(ks_producer *producer, ks_health wanted, long limit_ms, char **reasons) {
  ks_health health = KS_HEALTH_HEALTHY;
  for (long waited = 0;; waited += 50) {
    ks_string_free(*reasons);
    *reasons = NULL;
    CHECK_STATUS(ks_producer_health(producer, &health, reasons), KS_STATUS_OK);
    if (health == wanted || waited >= limit_ms) return health;
    sleep_ms(50);
  }
}

static void test_an_idle_producer_turns_unhealthy_when_every_broker_goes_and_back(void) {
  ks_mock_cluster *cluster = NULL;
  CHECK_STATUS(ks_mock_cluster_new(3, &cluster), KS_STATUS_OK);
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, "idle-health", 3, 3), KS_STATUS_OK);
  ks_config *config = ks_config_new();
  CHECK_STATUS(ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster)), KS_STATUS_OK);
  CHECK_STATUS(ks_config_set(config, "health.check.interval.ms", "300"), KS_STATUS_OK);
  CHECK_STATUS(ks_config_set(config, "statistics.interval.ms", "100"), KS_STATUS_OK);
  ks_producer *producer = NULL;
  CHECK_STATUS(ks_producer_new(config, &producer), KS_STATUS_OK);
  ks_config_free(config);
  outcomes o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
  ks_message m = message("idle-health", "before");
  CHECK_STATUS(ks_producer_send(producer, &m, count_outcome, &o, NULL), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_flush(producer, 30000), KS_STATUS_OK);

  char *reasons = NULL;
  CHECK(wait_for_health(producer, KS_HEALTH_HEALTHY, 10000, &reasons) == KS_HEALTH_HEALTHY, "before: %s", reasons);
  for (int32_t id = 1; id <= 3; id++) CHECK_STATUS(ks_mock_cluster_broker_down(cluster, id), KS_STATUS_OK);
  const int32_t dropped[] = {-195, -195, -195};
  CHECK_STATUS(ks_mock_cluster_push_request_errors(cluster, "metadata", dropped, 3), KS_STATUS_OK);
  ks_health health = wait_for_health(producer, KS_HEALTH_UNHEALTHY, 10000, &reasons);
  /* The reason names the brokers: some bootstrap address, as "host:port/". */
  char addresses[256] = {0};
  snprintf(addresses, sizeof addresses, "%s", ks_mock_cluster_bootstrap_servers(cluster));
  bool named = false;
  for (char *address = strtok(addresses, ","); address != NULL; address = strtok(NULL, ",")) {
    char with_slash[80];
    snprintf(with_slash, sizeof with_slash, "%s/", address);
    named = named || strstr(reasons, with_slash) != NULL;
  }
  CHECK(health == KS_HEALTH_UNHEALTHY && strstr(reasons, "no broker reachable") != NULL && named,
        "all brokers down, idle: %d %s", (int)health, reasons);
  for (int32_t id = 1; id <= 3; id++) CHECK_STATUS(ks_mock_cluster_broker_up(cluster, id), KS_STATUS_OK);
  CHECK(wait_for_health(producer, KS_HEALTH_HEALTHY, 15000, &reasons) == KS_HEALTH_HEALTHY, "after: %s", reasons);
  ks_string_free(reasons);
  ks_producer_free(producer);
  ks_mock_cluster_free(cluster);
}

static void test_an_outage_spools_and_the_breaker_closing_replays_the_spool(void) {
  ks_mock_cluster *cluster = NULL;
  CHECK_STATUS(ks_mock_cluster_new(1, &cluster), KS_STATUS_OK);
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, "spooled", 2, 1), KS_STATUS_OK);
  CHECK_STATUS(ks_mock_cluster_broker_down(cluster, 1), KS_STATUS_OK);
  char dir[] = "/tmp/ks-c-spool-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "temporary directory");
  const char *settings[][2] = {
      {"bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster)},
      {"message.timeout.ms", "300"},
      {"retry.max", "0"},
      {"breaker.enabled", "true"},
      {"breaker.consecutive.failures", "1"},
      {"breaker.timeout.ms", "300ms"},
      {"spool.dir", dir},
  };
  ks_config *config = ks_config_new();
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
    CHECK_STATUS(ks_config_set(config, settings[i][0], settings[i][1]), KS_STATUS_OK);
  }
  ks_producer *producer = NULL;
  CHECK_STATUS(ks_producer_new(config, &producer), KS_STATUS_OK);
  ks_config_free(config);

  outcomes o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
  const int n = 20;
  for (int i = 0; i < n; i++) {
    ks_message m = message("spooled", "during the outage");
    CHECK_STATUS(ks_producer_send(producer, &m, count_outcome, &o, NULL), KS_STATUS_OK);
  }
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(o.spooled == n && o.spooled_with_reason == n, "spooled %d (%d with reason and path) of %d", o.spooled,
        o.spooled_with_reason, n);
  /* At least n, and open or probing: once the open timeout passes, the rescue worker's replay
   * probes with a spooled message, which the broker (still down) fails, so it is spooled again. */
  CHECK(metric(producer, "spooled") >= n && metric(producer, "breaker_trips") >= 1 &&
            metric(producer, "breaker_state") != 0 && metric(producer, "spool_bytes") > 0,
        "spooled %g trips %g state %g", metric(producer, "spooled"), metric(producer, "breaker_trips"),
        metric(producer, "breaker_state"));

  /* The broker comes back; sends after the open timeout probe it, and the breaker closes. */
  CHECK_STATUS(ks_mock_cluster_broker_up(cluster, 1), KS_STATUS_OK);
  int probes = 0;
  for (int tries = 0; tries < 300 && metric(producer, "breaker_state") != 0; tries++) {
    ks_message probe = message("spooled", "probe");
    CHECK_STATUS(ks_producer_send(producer, &probe, count_outcome, &o, NULL), KS_STATUS_OK);
    probes++;
    sleep_ms(100);
  }
  CHECK(metric(producer, "breaker_state") == 0, "the breaker closed after %d probes", probes);
  for (int tries = 0; tries < 600; tries++) {
    if (metric(producer, "replayed") == metric(producer, "spooled") && metric(producer, "in_flight") == 0) break;
    sleep_ms(100);
  }
  CHECK_STATUS(ks_producer_flush(producer, 60000), KS_STATUS_OK);
  CHECK(metric(producer, "replayed") == metric(producer, "spooled") && metric(producer, "failed") == 0 &&
            metric(producer, "spool_bytes") == 0,
        "replayed %g of %g, failed %g", metric(producer, "replayed"), metric(producer, "spooled"),
        metric(producer, "failed"));
  topic_contents t = read_back(cluster, "spooled");
  CHECK(t.count == n + probes, "read back %d of %d", t.count, n + probes);

  uint64_t records = 99, torn = 99;
  CHECK_STATUS(ks_producer_replay_spool(producer, &records, &torn), KS_STATUS_OK);
  CHECK(records == 0 && torn == 0, "nothing left to replay: %llu %llu", (unsigned long long)records,
        (unsigned long long)torn);
  CHECK_STATUS(ks_producer_replay_spool(NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  ks_producer_free(producer);

  ks_producer *plain = producer_for(cluster, NULL, NULL);
  CHECK_STATUS(ks_producer_replay_spool(plain, NULL, NULL), KS_STATUS_CONFIG);
  ks_producer_free(plain);
  ks_mock_cluster_free(cluster);
  char lock_file[64];
  snprintf(lock_file, sizeof lock_file, "%s/.lock", dir);
  CHECK(remove(lock_file) == 0 && rmdir(dir) == 0, "the spool directory holds nothing else");
}

/* Records whose headers include ce_type "user.registered" and whose key is the correlation id. */
static void collect_event(const ks_consumed_record *r, void *user_data) {
  int *events = user_data;
  int typed = 0;
  for (size_t i = 0; i < r->headers_len; i++)
    if (strcmp(r->headers[i].key, "ce_type") == 0 && r->headers[i].value_len == strlen("user.registered") &&
        memcmp(r->headers[i].value, "user.registered", r->headers[i].value_len) == 0)
      typed = 1;
  if (typed && r->key_len == 5 && memcmp(r->key, "req-9", 5) == 0 && r->value_len > 0 && r->value[0] == '{') ++*events;
}

static void test_events_are_published_where_their_type_maps(ks_mock_cluster *cluster) {
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, "c-users", 2, 3), KS_STATUS_OK);
  ks_producer *p = producer_for(cluster, "event.topic.map", "user.*=c-users");
  ks_event_fields fields;
  memset(&fields, 0, sizeof fields);
  char *envelope = NULL;
  CHECK_STATUS(ks_event_new(&fields, &envelope), KS_STATUS_NULL_ARGUMENT);
  fields.event_type = "user.registered";
  fields.source = "c-test";
  fields.data_json = "{not json";
  CHECK_STATUS(ks_event_new(&fields, &envelope), KS_STATUS_INVALID_RECORD);
  fields.data_json = "{\"user\": 9}";
  fields.correlation_id = "req-9";
  CHECK_STATUS(ks_event_new(&fields, &envelope), KS_STATUS_OK);
  CHECK(envelope && strstr(envelope, "\"specversion\":\"1.0\"") && strstr(envelope, "\"correlationid\":\"req-9\""), "%s",
        envelope ? envelope : "(null)");

  counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, 0, 0};
  tagged *tag = malloc(sizeof *tag);
  tag->counter = &c;
  tag->index = 0;
  CHECK_STATUS(ks_producer_publish_event(p, envelope, count_report, tag, free), KS_STATUS_OK);
  /* The record itself, sent like any message. */
  ks_event_record *record = NULL;
  CHECK_STATUS(ks_producer_event_record(p, envelope, &record), KS_STATUS_OK);
  const ks_message *m = ks_event_record_message(record);
  CHECK(m && strcmp(m->topic, "c-users") == 0 && m->headers_len == 6, "topic %s", m ? m->topic : "(null)");
  CHECK_STATUS(send_counted(p, m, &c, 0), KS_STATUS_OK);
  ks_event_record_free(record);
  CHECK(ks_event_record_message(NULL) == NULL, "NULL record");
  CHECK_STATUS(ks_producer_publish_event(p, "not an envelope", NULL, NULL, NULL), KS_STATUS_INVALID_RECORD);
  CHECK_STATUS(ks_producer_map_event_topic(p, "a*b", "x"), KS_STATUS_CONFIG);
  CHECK_STATUS(ks_producer_map_event_topic(p, NULL, "x"), KS_STATUS_NULL_ARGUMENT);
  ks_string_free(envelope);
  CHECK_STATUS(ks_producer_flush(p, 30000), KS_STATUS_OK);
  CHECK(c.delivered == 2, "delivered %d of 2", c.delivered);
  ks_producer_free(p);
  int events = 0;
  CHECK_STATUS(ks_mock_cluster_read_topic(cluster, "c-users", 60000, collect_event, &events, NULL), KS_STATUS_OK);
  CHECK(events == 2, "read back %d events of 2", events);
}

static void test_named_producers_come_from_one_file(ks_mock_cluster *cluster) {
  char dir[] = "/tmp/ks-named-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char path[64];
  snprintf(path, sizeof path, "%s/producers.toml", dir);
  FILE *file = fopen(path, "w");
  fprintf(file, "[defaults]\nbootstrap.servers = \"%s\"\n[producers.fast]\nacks = \"1\"\nenable.idempotence = false\n",
          ks_mock_cluster_bootstrap_servers(cluster));
  fclose(file);
  CHECK_STATUS(ks_config_from_file(path, NULL, NULL), KS_STATUS_OK);
  ks_config *config = NULL;
  CHECK_STATUS(ks_config_from_file(path, "slow", &config), KS_STATUS_CONFIG);
  CHECK(strstr(ks_last_error(), "fast") != NULL, "names the producers the file has");
  CHECK_STATUS(ks_config_from_file(path, "fast", &config), KS_STATUS_OK);
  ks_producer *p = NULL;
  CHECK_STATUS(ks_producer_new(config, &p), KS_STATUS_OK);
  ks_config_free(config);
  ks_message m = message("c-named", "from a named producer");
  CHECK_STATUS(ks_producer_send_sync(p, &m, 30000, NULL, NULL), KS_STATUS_OK);
  ks_producer_free(p);
  file = fopen(path, "w");
  fprintf(file, "colour = 1\n[producers.a]\nacks = \"sometimes\"\n");
  fclose(file);
  CHECK_STATUS(ks_config_from_file(path, NULL, NULL), KS_STATUS_CONFIG);
  CHECK(strstr(ks_last_error(), "colour") && strstr(ks_last_error(), "[producers.a] acks"), "every problem");
  CHECK_STATUS(ks_config_from_file(NULL, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  remove(path);
  rmdir(dir);
}

typedef struct log_lines {
  pthread_mutex_t lock;
  int librdkafka, naming_the_broker;
} log_lines;

static void count_log_line(const ks_log_record *record, void *user_data) {
  log_lines *lines = user_data;
  pthread_mutex_lock(&lines->lock);
  if (strcmp(record->target, "librdkafka") == 0 && record->level >= KS_LOG_LEVEL_ERROR &&
      record->level <= KS_LOG_LEVEL_TRACE) {
    lines->librdkafka++;
    if (strstr(record->message, "127.0.0.1:1") != NULL) lines->naming_the_broker++;
  }
  pthread_mutex_unlock(&lines->lock);
}

static void test_log_lines_go_to_the_callback(void) {
  log_lines lines = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
  ks_set_log_callback(count_log_line, &lines);
  ks_config *config = ks_config_new();
  ks_producer *p = NULL;
  CHECK_STATUS(ks_config_set(config, "bootstrap.servers", "127.0.0.1:1"), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_new(config, &p), KS_STATUS_OK);
  ks_config_free(config);
  ks_message m = message("logged", "x");
  CHECK_STATUS(ks_producer_send(p, &m, NULL, NULL, NULL), KS_STATUS_OK);
  for (int i = 0; i < 200; i++) {
    pthread_mutex_lock(&lines.lock);
    int seen = lines.naming_the_broker;
    pthread_mutex_unlock(&lines.lock);
    if (seen > 0) break;
    sleep_ms(50);
  }
  ks_producer_close(p, 0, NULL);
  ks_set_log_callback(NULL, NULL); /* before `lines` goes out of scope */
  ks_producer_free(p);
  CHECK(lines.naming_the_broker > 0, "%d librdkafka lines, none naming the broker", lines.librdkafka);
}

/* Partition = key length modulo the count; "nowhere" gets an impossible one, "refuse" -1. */
static int32_t by_key_length(const ks_partition_request *request, void *user_data) {
  int *calls = user_data;
  ++*calls;
  if (request->key_len == 7 && memcmp(request->key, "nowhere", 7) == 0) return request->partition_count + 5;
  if (request->key_len == 6 && memcmp(request->key, "refuse", 6) == 0) return -1;
  return (int32_t)(request->key_len % (size_t)request->partition_count);
}

static void test_a_partitioner_function_places_records(ks_mock_cluster *cluster) {
  CHECK_STATUS(ks_mock_cluster_create_topic(cluster, "c-custom", 4, 3), KS_STATUS_OK);
  ks_producer *p = producer_for(cluster, NULL, NULL);
  int calls = 0;
  CHECK_STATUS(ks_producer_set_partitioner(p, NULL, NULL), KS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(ks_producer_set_partitioner(p, by_key_length, &calls), KS_STATUS_OK);
  CHECK_STATUS(ks_producer_set_partitioner(p, by_key_length, &calls), KS_STATUS_CONFIG);
  ks_message m = message("c-custom", "v");
  int32_t partition = -1;
  m.key = (const uint8_t *)"abc";
  m.key_len = 3;
  CHECK_STATUS(ks_producer_send_sync(p, &m, 30000, &partition, NULL), KS_STATUS_OK);
  CHECK(partition == 3, "partition %d, expected 3", partition);
  m.key = (const uint8_t *)"nowhere";
  m.key_len = 7;
  CHECK_STATUS(ks_producer_send_sync(p, &m, 30000, NULL, NULL), KS_STATUS_INVALID_RECORD);
  CHECK(strstr(ks_last_error(), "returned 9") != NULL, "names the partition");
  m.key = (const uint8_t *)"refuse";
  m.key_len = 6;
  CHECK_STATUS(ks_producer_send_sync(p, &m, 30000, NULL, NULL), KS_STATUS_INVALID_RECORD);
  m.has_partition = true;
  m.partition = 1;
  CHECK_STATUS(ks_producer_send_sync(p, &m, 30000, &partition, NULL), KS_STATUS_OK);
  CHECK(partition == 1 && calls == 3, "explicit partition %d kept, %d calls", partition, calls);
  ks_producer_free(p);
}

int main(void) {
  ks_mock_cluster *cluster = NULL;
  if (ks_mock_cluster_new(3, &cluster) != KS_STATUS_OK) {
    fprintf(stderr, "cannot start the mock cluster: %s\n", ks_last_error());
    return 2;
  }
  test_names_and_version();
  test_null_arguments_are_errors_with_a_message(cluster);
  test_invalid_configuration_lists_every_problem();
  test_invalid_messages_are_rejected_and_nothing_is_sent(cluster);
  test_deliveries_match_what_is_read_back(cluster);
  test_a_zeroed_message_lets_the_partitioner_choose(cluster);
  test_the_finalizer_releases_user_data_once_whatever_happens(cluster);
  test_last_error_is_per_thread_and_never_null(cluster);
  test_eight_threads_share_one_producer(cluster);
  test_transactions_report_at_their_end_and_calls_out_of_turn_are_typed(cluster);
  test_a_fatal_error_is_recovered_from_and_shows_in_reports(cluster);
  test_poll_mode_runs_callbacks_on_the_polling_thread(cluster);
  test_metrics_and_health_describe_the_producer(cluster);
  test_events_are_published_where_their_type_maps(cluster);
  test_named_producers_come_from_one_file(cluster);
  test_log_lines_go_to_the_callback();
  test_a_partitioner_function_places_records(cluster);
  test_close_in_flight_calls_back_once_each_and_use_after_close_fails();
  test_an_outage_spools_and_the_breaker_closing_replays_the_spool();
  test_an_idle_producer_turns_unhealthy_when_every_broker_goes_and_back();
  ks_mock_cluster_free(cluster);

  printf("c: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
