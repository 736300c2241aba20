#!/usr/bin/env bash
# Cross-language benchmark: raw librdkafka (the ceiling) and kafkasender from Rust, C and Go, all
# against one 3-broker mock cluster served by another process, runs alternating, medians reported.
# Usage: scripts/bench-faces.sh  (COUNT, SIZE, RUNS from the environment; make bench-faces builds first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
COUNT=${COUNT:-300000}
SIZE=${SIZE:-100}
RUNS=${RUNS:-5}
bin=target/x86_64-unknown-linux-gnu/release/kafkasender
topic=kafkasender-bench

coproc MOCK { exec "$bin" mock-cluster --brokers 3 --topic "$topic:6"; }
mock_pid=$MOCK_PID
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r bootstrap <&"${MOCK[0]}"
results=$(mktemp)
echo "$COUNT messages of $SIZE bytes, $RUNS runs each, mock cluster at $bootstrap" >&2
for run in $(seq 1 "$RUNS"); do
  KAFKA_BROKERS=$bootstrap "$bin" bench --count "$COUNT" --size "$SIZE" --runs 1 --tsv 2>/dev/null | grep '^result' >>"$results"
  target/c/bench_ffi "$bootstrap" "$topic" "$COUNT" "$SIZE" >>"$results"
  target/go/kafkasender-bench "$bootstrap" "$topic" "$COUNT" "$SIZE" >>"$results"
  echo "run $run done" >&2
done
python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, name, rate, p50, p99 = line.split("\t")
    runs.setdefault(name, []).append((float(rate), float(p50), float(p99)))
median = {name: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for name, rs in runs.items()}
labels = {"librdkafka": "raw librdkafka (rdkafka BaseProducer)", "kafkasender": "kafkasender from Rust (send + callback)",
          "c": "kafkasender from C (ks_producer_send + callback)", "go": "kafkasender from Go (SendAsync)"}
rust, raw = median["kafkasender"][0], median["librdkafka"][0]
print("| contender | msg/s (median) | p50 ms | p99 ms | vs Rust send | vs librdkafka |")
print("|---|---:|---:|---:|---:|---:|")
for name in ["librdkafka", "kafkasender", "c", "go"]:
    rate, p50, p99 = median[name]
    print(f"| {labels[name]} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {rate / rust:.2f} | {rate / raw:.2f} |")
PY
