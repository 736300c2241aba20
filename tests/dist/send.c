/*
 * A program built from the C tarball alone (make test-dist-c): sends to an embedded mock cluster
 * and reads back what landed. Exit status 0 when all 10 messages are there.
 */
#include <stdio.h>
#include <string.h>

#include "kafkasender.h"

static void count(const ks_consumed_record *record, void *user_data) {
  (void)record;
  ++*(int *)user_data;
}

int main(void) {
  ks_mock_cluster *cluster = NULL;
  ks_producer *producer = NULL;
  ks_config *config = ks_config_new();
  if (ks_mock_cluster_new(1, &cluster) || ks_mock_cluster_create_topic(cluster, "dist", 2, 1) ||
      ks_config_set(config, "bootstrap.servers", ks_mock_cluster_bootstrap_servers(cluster)) ||
      ks_config_set(config, "log.level", "off") || ks_producer_new(config, &producer)) {
    fprintf(stderr, "setup: %s\n", ks_last_error());
    return 1;
  }
  ks_config_free(config);
  for (int i = 0; i < 10; i++) {
    ks_message m = {0};
    m.topic = "dist";
    m.value = (const uint8_t *)"from the tarball";
    m.value_len = strlen("from the tarball");
    if (ks_producer_send_sync(producer, &m, 30000, NULL, NULL)) {
      fprintf(stderr, "send: %s\n", ks_last_error());
      return 1;
    }
  }
  ks_producer_free(producer);
  int read = 0;
  if (ks_mock_cluster_read_topic(cluster, "dist", 30000, count, &read, NULL) || read != 10) {
    fprintf(stderr, "read back %d of 10: %s\n", read, ks_last_error());
    return 1;
  }
  ks_mock_cluster_free(cluster);
  printf("%s: 10 of 10 read back\n", ks_version());
  return 0;
}
