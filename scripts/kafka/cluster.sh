#!/usr/bin/env bash
# A real 3-node Apache Kafka cluster (KRaft, every node broker and controller) on 127.0.0.1, for
# the reliability tests: replication factor 3, min.insync.replicas=2, and three client listeners
# per node: PLAINTEXT, SASL_PLAINTEXT with SCRAM-SHA-256/512 (user alice, password in
# run/scram-password), and SSL with a certificate from a CA made here (run/tls/ca.crt).
#
# Usage: cluster.sh up              start (or reuse) the cluster; prints the PLAINTEXT bootstrap
#        cluster.sh down            stop it and remove its data
#        cluster.sh env             shell exports: KS_CLUSTER_{BOOTSTRAP,SASL,TLS,CA,USER,PASSWORD}
#        cluster.sh kill N          kill -9 node N (1..3)
#        cluster.sh start N         start node N again (after kill) and wait until it serves
#        cluster.sh leader TOPIC P  the node id leading partition P of TOPIC
#        cluster.sh create TOPIC    create TOPIC: 6 partitions, replication factor 3
# Data, logs and addresses live under .cache/kafka/cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs="$root/.cache/kafka/libs"
run="$root/.cache/kafka/cluster"
nodes=(1 2 3)

tool() { java -Xmx256m -Dlog4j.configuration="file:$here/log4j-quiet.properties" -cp "$libs/*" "$@"; }
port_of() { cat "$run/ports/$1-$2"; } # port_of NODE LISTENER

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

running() { [ -f "$run/pid-$1" ] && kill -0 "$(cat "$run/pid-$1")" 2>/dev/null; }

make_ca() {
  mkdir -p "$run/tls"
  cd "$run/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
    -subj "/CN=kafkasender test CA" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj "/CN=localhost" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
  openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out node.crt -days 30 \
    -extfile san.ext >/dev/null 2>&1
  # Kafka's PEM key store: an unencrypted PKCS#8 key followed by the certificate chain.
  openssl pkcs8 -topk8 -nocrypt -in node.key -out node.pk8
  cat node.pk8 node.crt ca.crt > node.pem
  cd - >/dev/null
}

write_config() { # write_config NODE VOTERS
  local n=$1 voters=$2
  local client sasl tls internal controller
  client=$(port_of "$n" client) sasl=$(port_of "$n" sasl) tls=$(port_of "$n" tls)
  internal=$(port_of "$n" internal) controller=$(port_of "$n" controller)
  cat > "$run/server-$n.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=CLIENT://127.0.0.1:$client,SASL://127.0.0.1:$sasl,TLS://127.0.0.1:$tls,INTERNAL://127.0.0.1:$internal,CONTROLLER://127.0.0.1:$controller
advertised.listeners=CLIENT://127.0.0.1:$client,SASL://127.0.0.1:$sasl,TLS://127.0.0.1:$tls,INTERNAL://127.0.0.1:$internal
listener.security.protocol.map=CLIENT:PLAINTEXT,SASL:SASL_PLAINTEXT,TLS:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.tls.ssl.keystore.type=PEM
listener.name.tls.ssl.keystore.location=$run/tls/node.pem
listener.name.tls.ssl.client.auth=none
log.dirs=$run/data-$n
num.partitions=6
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
unclean.leader.election.enable=false
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$run/log4j-$n.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$run/logs/server-$n.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
}

start_node() { # start_node NODE: starts it in the background
  local n=$1
  nohup java -Xms128m -Xmx512m -Dlog4j.configuration="file:$run/log4j-$n.properties" -cp "$libs/*" \
    kafka.Kafka "$run/server-$n.properties" >>"$run/logs/stdout-$n.log" 2>&1 &
  echo $! > "$run/pid-$n"
}

wait_until_listening() { # wait_until_listening NODE SECONDS
  local n=$1 deadline=$((SECONDS + $2))
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $(port_of "$n" client)), 1)" 2>/dev/null; do
    if ! running "$n"; then
      echo "cluster.sh: node $n exited; see $run/logs" >&2
      tail -n 20 "$run/logs/stdout-$n.log" "$run/logs/server-$n.log" >&2 || true
      exit 1
    fi
    [ $SECONDS -lt "$deadline" ] || { echo "cluster.sh: node $n does not listen after $2 s" >&2; exit 1; }
    sleep 0.5
  done
}

bootstrap_of() { # bootstrap_of LISTENER
  local list=() n
  for n in "${nodes[@]}"; do list+=("127.0.0.1:$(port_of "$n" "$1")"); done
  (IFS=,; echo "${list[*]}")
}

up() {
  "$here/fetch.sh"
  if [ -f "$run/bootstrap" ] && running 1 && running 2 && running 3; then
    cat "$run/bootstrap"
    return
  fi
  down_quietly
  mkdir -p "$run/logs" "$run/ports"
  local n listener voters=()
  for n in "${nodes[@]}"; do
    for listener in client sasl tls internal controller; do
      local port
      port=$(free_port)
      while grep -qx "$port" "$run"/ports/* 2>/dev/null; do port=$(free_port); done
      echo "$port" > "$run/ports/$n-$listener"
    done
    voters+=("$n@127.0.0.1:$(port_of "$n" controller)")
  done
  make_ca
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$run/scram-password"
  local password cluster_id
  password=$(cat "$run/scram-password")
  cluster_id=$(tool kafka.tools.StorageTool random-uuid)
  for n in "${nodes[@]}"; do
    write_config "$n" "$(IFS=,; echo "${voters[*]}")"
    # SCRAM credentials are written into the metadata log when the storage is formatted.
    tool kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server-$n.properties" \
      --add-scram "SCRAM-SHA-256=[name=alice,password=$password]" \
      --add-scram "SCRAM-SHA-512=[name=alice,password=$password]" >"$run/logs/format-$n.log" 2>&1
  done
  for n in "${nodes[@]}"; do start_node "$n"; done
  for n in "${nodes[@]}"; do wait_until_listening "$n" 90; done
  bootstrap_of client > "$run/bootstrap"
  bootstrap_of sasl > "$run/bootstrap-sasl"
  bootstrap_of tls > "$run/bootstrap-tls"
  # Ready means a produce with acks=all to a fresh replication-factor-3 topic is acknowledged.
  local deadline=$((SECONDS + 120))
  until tool org.apache.kafka.tools.ProducerPerformance --topic __kafkasender_ready \
          --num-records 1 --record-size 8 --throughput -1 \
          --producer-props bootstrap.servers="$(cat "$run/bootstrap")" acks=all max.block.ms=5000 \
          delivery.timeout.ms=10000 request.timeout.ms=4000 linger.ms=0 >"$run/logs/ready.log" 2>&1 \
        && grep -q "1 records sent" "$run/logs/ready.log"; do
    [ $SECONDS -lt $deadline ] || { echo "cluster.sh: no acks=all produce within 120 s; see $run/logs" >&2; exit 1; }
    sleep 1
  done
  cat "$run/bootstrap"
}

down_quietly() {
  local n pid
  for n in "${nodes[@]}"; do
    if running "$n"; then
      pid=$(cat "$run/pid-$n")
      kill "$pid" 2>/dev/null || true
    fi
  done
  for n in "${nodes[@]}"; do
    if [ -f "$run/pid-$n" ]; then
      pid=$(cat "$run/pid-$n")
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$run"
}

leader() { # leader TOPIC PARTITION
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$run/bootstrap")" --describe --topic "$1" \
    | awk -v p="$2" '{ for (i = 1; i < NF; i++) { if ($i == "Partition:") part = $(i+1); if ($i == "Leader:" && part == p) { print $(i+1); exit } } }'
}

case "${1:-}" in
  up) up ;;
  down) down_quietly ;;
  env)
    echo "export KS_CLUSTER_BOOTSTRAP=$(cat "$run/bootstrap")"
    echo "export KS_CLUSTER_SASL=$(cat "$run/bootstrap-sasl")"
    echo "export KS_CLUSTER_TLS=$(cat "$run/bootstrap-tls")"
    echo "export KS_CLUSTER_CA=$run/tls/ca.crt"
    echo "export KS_CLUSTER_USER=alice"
    echo "export KS_CLUSTER_PASSWORD=$(cat "$run/scram-password")"
    ;;
  kill) running "$2" && kill -9 "$(cat "$run/pid-$2")" ;;
  start) running "$2" || { start_node "$2"; wait_until_listening "$2" 90; } ;;
  leader) leader "$2" "$3" ;;
  create)
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$run/bootstrap")" --create \
      --topic "$2" --partitions 6 --replication-factor 3 >/dev/null ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
