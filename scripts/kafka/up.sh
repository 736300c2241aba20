#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker in KRaft mode on 127.0.0.1 (free ports, data under
# .cache/kafka/run) and waits until it acknowledges a produce request. Prints the bootstrap address,
# which is also written to .cache/kafka/run/bootstrap. Stop it with scripts/kafka/down.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs="$root/.cache/kafka/libs"
run="$root/.cache/kafka/run"

"$here/fetch.sh"

if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; then
  cat "$run/bootstrap"
  exit 0
fi
rm -rf "$run"
mkdir -p "$run/data" "$run/logs"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port)
controller_port=$(free_port)
while [ "$controller_port" = "$port" ]; do controller_port=$(free_port); done

cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
cat > "$run/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$run/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS

java_cmd=(java -Xms256m -Xmx1g -Dlog4j.configuration="file:$run/log4j.properties" -cp "$libs/*")
cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)
"${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server.properties" >"$run/logs/format.log" 2>&1

nohup "${java_cmd[@]}" kafka.Kafka "$run/server.properties" >"$run/logs/stdout.log" 2>&1 &
echo $! > "$run/pid"
echo "127.0.0.1:$port" > "$run/bootstrap"

# Ready means a produce request with acks=all is acknowledged, not merely that the port is open.
deadline=$((SECONDS + 90))
until "${java_cmd[@]}" org.apache.kafka.tools.ProducerPerformance --topic __kafkasender_ready \
        --num-records 1 --record-size 8 --throughput -1 \
        --producer-props bootstrap.servers="127.0.0.1:$port" acks=all max.block.ms=5000 \
        delivery.timeout.ms=5000 request.timeout.ms=4000 linger.ms=0 >"$run/logs/ready.log" 2>&1 \
      && grep -q "1 records sent" "$run/logs/ready.log"; do
  if ! kill -0 "$(cat "$run/pid")" 2>/dev/null; then
    echo "up.sh: the Kafka broker exited; see $run/logs" >&2
    tail -n 30 "$run/logs/stdout.log" "$run/logs/server.log" >&2 || true
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "up.sh: the Kafka broker did not accept a produce request within 90 s; see $run/logs" >&2
    "$here/down.sh" >&2 || true
    exit 1
  fi
  sleep 1
done
cat "$run/bootstrap"
