#!/usr/bin/env bash
# Reads a topic from the beginning with Apache Kafka's own Java console consumer (an independent
# client, not librdkafka) and prints one line per record: partition<TAB>offset<TAB>headers<TAB>key<TAB>value.
# Usage: consume.sh BOOTSTRAP TOPIC MAX_MESSAGES [TIMEOUT_MS] [read_uncommitted|read_committed]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
libs="$(cd "$here/../.." && pwd)/.cache/kafka/libs"
"$here/fetch.sh"
exec java -Xmx512m -Dlog4j.configuration="file:$here/log4j-quiet.properties" -cp "$libs/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "$1" --topic "$2" --from-beginning --max-messages "$3" --timeout-ms "${4:-60000}" \
  --isolation-level "${5:-read_uncommitted}" \
  --property print.partition=true --property print.offset=true --property print.headers=true \
  --property print.key=true --property print.value=true --property key.separator=$'\t' \
  --property headers.separator=, --property headers.key.separator=: --property null.literal=NULL
