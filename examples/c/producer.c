/*
 * kafkasender from C: configuration from the environment, an asynchronous send with a callback,
 * a synchronous send, and error handling. Uses KAFKA_BROKERS when set, otherwise an embedded mock
 * cluster.
 *
 *   cc producer.c $(pkg-config --cflags --libs kafkasender) -o producer && ./producer
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkasender.h>

static void on_delivery(const ks_delivery_report *report, void *user_data) {
  int *delivered = user_data; /* runs on the producer's delivery thread, exactly once per send */
  if (report->outcome == KS_OUTCOME_DELIVERED) {
    (*delivered)++;
    printf("delivered to %s [%d] at offset %lld\n", report->topic, report->partition, (long long)report->offset);
  } else {
    printf("failed (%s): %s\n", ks_status_str(report->status), report->error);
  }
}

int main(void) {
  ks_mock_cluster *mock = NULL;
  ks_config *config = ks_config_from_env(); /* KAFKA_BROKERS, KAFKA_PRODUCER_*, KAFKA_RDKAFKA_* */
  if (getenv("KAFKA_BROKERS") == NULL) {
    if (ks_mock_cluster_new(1, &mock) != KS_STATUS_OK) {
      fprintf(stderr, "mock cluster: %s\n", ks_last_error());
      return 1;
    }
    ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(mock));
  }
  ks_config_set(config, "linger.ms", "10ms");

  ks_producer *producer = NULL;
  if (ks_producer_new(config, &producer) != KS_STATUS_OK) {
    fprintf(stderr, "configuration: %s\n", ks_last_error()); /* lists every problem at once */
    return 1;
  }
  ks_config_free(config);

  ks_header headers[] = {{"source", (const uint8_t *)"example-c", 9}};
  ks_message message = {0};
  message.topic = "kafkasender-example-c";
  message.key = (const uint8_t *)"customer-7";
  message.key_len = strlen("customer-7");
  message.value = (const uint8_t *)"{\"total\": 12}";
  message.value_len = strlen("{\"total\": 12}");
  message.headers = headers;
  message.headers_len = 1;

  int delivered = 0;
  for (int i = 0; i < 3; i++) {
    ks_status status = ks_producer_send(producer, &message, on_delivery, &delivered, NULL);
    if (status != KS_STATUS_OK) fprintf(stderr, "not sent (%s): %s\n", ks_status_str(status), ks_last_error());
  }

  int32_t partition;
  int64_t offset;
  ks_status status = ks_producer_send_sync(producer, &message, 30000, &partition, &offset);
  if (status == KS_STATUS_OK) printf("sync send delivered to [%d] at offset %lld\n", partition, (long long)offset);

  message.topic = "not a valid topic"; /* errors are typed and explained */
  status = ks_producer_send(producer, &message, on_delivery, &delivered, NULL);
  printf("invalid topic: %s (%s)\n", ks_status_str(status), ks_last_error());

  uint64_t purged = 0;
  ks_producer_close(producer, 10000, &purged); /* every callback has run when this returns */
  ks_producer_free(producer);
  ks_mock_cluster_free(mock);
  printf("%d delivered asynchronously, %llu purged at close\n", delivered, (unsigned long long)purged);
  return delivered == 3 ? 0 : 1;
}
