#!/usr/bin/env bash
# Stops the broker started by up.sh (SIGTERM, then SIGKILL after 30 s) and removes its data.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run="$(cd "$here/../.." && pwd)/.cache/kafka/run"
if [ -f "$run/pid" ]; then
  pid=$(cat "$run/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
fi
rm -rf "$run"
