#!/usr/bin/env bash
# What usage recording costs verification: peak verify throughput (wrk, closed loop) with
# recording on and with `--usage-recording off`, alternating, on the same SQLite store and the
# same hot keys (all valid, so every request records a usage event and a request-log row).
# Prints each run and the ratio of the medians, on / off (target: >= 0.95).
#
# Settings (environment): RUNS (3), DURATION seconds (10), KEYS (1000), CONNECTIONS (32),
# SERVER_CPU (0), LOAD_CPU (1). Uses target/release/keygate (build it first) and wrk.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
KEYS=${KEYS:-1000}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BIN=target/release/keygate
command -v wrk >/dev/null || { echo "wrk is needed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release -p keygate" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# start <on|off>: serves the store in $WORK, sets PID and BASE (and TOKEN on the first start).
start() {
  local out="$WORK/serve.out"
  : >"$out"
  taskset -c "$SERVER_CPU" "$BIN" serve --listen 127.0.0.1:0 \
    --database-url "sqlite://$WORK/k.db" --usage-recording "$1" >"$out" 2>/dev/null &
  PID=$!
  for _ in $(seq 1 100); do
    grep -q '^Use ' "$out" 2>/dev/null && break
    sleep 0.1
  done
  BASE=$(sed -n 's/^Keygate is listening on //p' "$out")
  local t
  t=$(sed -n 's/^ *\(kgm_[^ ]*\)$/\1/p' "$out")
  [ -n "$t" ] && TOKEN=$t
  return 0
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start on
# Keys with a rate limit far above what one core serves, so every request passes.
: >"$WORK/keys.txt"
for n in $(seq 1 "$KEYS"); do
  curl -sf -X POST "$BASE/v1/keys" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' \
    -d "{\"name\":\"bench-$n\",\"limits\":{\"rate_limits\":[{\"limit\":100000000,\"window\":\"1m\"}]}}" \
    | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' >>"$WORK/keys.txt"
  echo >>"$WORK/keys.txt" # curl's answer has no final newline
done
stop

run() {
  start "$1"
  # Warm the key cache, then measure.
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -s bench/verify.lua "$BASE" -- \
    "$WORK/keys.txt" "$TOKEN" >/dev/null
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/verify.lua "$BASE" -- \
    "$WORK/keys.txt" "$TOKEN" | sed -n 's/^RESULT //p'
  stop
}

ON=(); OFF=()
for r in $(seq 1 "$RUNS"); do
  on=$(run on); off=$(run off)
  echo "run $r  on:  $on"
  echo "run $r  off: $off"
  ON+=("$(echo "$on" | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p')")
  OFF+=("$(echo "$off" | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_on=$(median "${ON[@]}"); m_off=$(median "${OFF[@]}")
rows=$(sqlite3 "$WORK/k.db" "SELECT outcome || ' ' || SUM(requests) FROM usage_rollups GROUP BY outcome" 2>/dev/null | tr "\n" " " || echo "?")
logged=$(sqlite3 "$WORK/k.db" "SELECT COALESCE(SUM(entries), 0) || ' in ' || COUNT(*) || ' segments' FROM request_log_segments" 2>/dev/null || echo "?")
echo "median rps: on $m_on, off $m_off; ratio on/off $(awk "BEGIN {printf \"%.3f\", $m_on / $m_off}")"
echo "requests by outcome (all runs with recording on): $rows"
echo "request-log entries: $logged"
