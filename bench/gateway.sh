#!/usr/bin/env bash
# What does the gateway add? One run measures, on loopback:
#
#   direct    wrk → upstream (nginx answering a fixed 200 JSON)
#   keygate   wrk → Keygate's reverse proxy (`[[proxy]]`, a key with no limits, usage recording
#             on as by default) → the same upstream
#   nginx     wrk → nginx `proxy_pass` (keepalive upstream) → the same upstream
#
# and reports (medians of RUNS repetitions; the machine is shared):
#   - added latency: p50 (and p99) with one connection, through the proxy minus direct;
#   - peak throughput with CONNECTIONS connections, Keygate versus nginx proxy_pass.
# The proxy under test (Keygate or nginx) runs alone on SERVER_CPU; the upstream and wrk share
# LOAD_CPU, the same for both. Settings: RUNS (3), DURATION (10 s), CONNECTIONS (64).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORK=$(mktemp -d)
PIDS=()

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building the release binary"
cargo build --release --quiet -p keygate
BIN=$ROOT/target/release/keygate

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listens on port $1"
  return 1
}

start_nginx() { # name port location-body cpu
  local dir=$WORK/$1
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream origin { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / { $3 }
  }
}
CONF
  taskset -c "$4" "$NGINX" -c "$dir/nginx.conf" -p "$dir" 2>"$dir/stderr" &
  PIDS+=($!)
  wait_port "$2"
}

# wrk with latency: prints "rps p50_us p99_us".
load() { # connections url [header]
  local out
  if [ $# -ge 3 ]; then
    out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) wrk -t1 -c"$1" -d"${DURATION}s" --latency -H "$3" "$2")
  else
    out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) wrk -t1 -c"$1" -d"${DURATION}s" --latency "$2")
  fi
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1e3, "s": 1e6}[u]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"non-2xx answers: {errors.group(1)}\n{text}")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = us(re.search(r"\n\s+50%\s+(\S+)", text).group(1))
p99 = us(re.search(r"\n\s+99%\s+(\S+)", text).group(1))
print(f"{rps:.0f} {p50:.1f} {p99:.1f}")
PY
}

UPSTREAM_PORT=$(free_port)
start_nginx upstream "$UPSTREAM_PORT" \
  "default_type application/json; return 200 '{\"id\":\"resp_1\",\"object\":\"thing\",\"ok\":true}';" "$LOAD_CPU"

NGINX_PORT=$(free_port)
start_nginx proxy "$NGINX_PORT" \
  "proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\";" "$SERVER_CPU"

KG_PORT=$(free_port)
cat >"$WORK/keygate.toml" <<CONF
[[proxy]]
prefix = "/proxy/up"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
timeout = "10s"
# The workspace is created when Keygate starts on the empty database, after this file is
# written, so the route is opened to every workspace explicitly.
workspaces = "*"
CONF
RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN" serve --listen "127.0.0.1:$KG_PORT" \
  --database-url "sqlite://$WORK/keygate.db" --config "$WORK/keygate.toml" >"$WORK/keygate.out" 2>&1 &
PIDS+=($!)
wait_port "$KG_PORT"
TOKEN=$(awk '/^ +kgm_/ {print $1; exit}' "$WORK/keygate.out")
KEY=$(curl -sf -X POST "http://127.0.0.1:$KG_PORT/v1/keys" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"name":"bench"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
AUTH="Authorization: Bearer $KEY"

DIRECT=http://127.0.0.1:$UPSTREAM_PORT/thing
VIA_KG=http://127.0.0.1:$KG_PORT/proxy/up/thing
VIA_NGINX=http://127.0.0.1:$NGINX_PORT/thing

results=$WORK/results.txt
for run in $(seq "$RUNS"); do
  log "run $run: one connection (latency)"
  d=$(load 1 "$DIRECT")
  k=$(load 1 "$VIA_KG" "$AUTH")
  n=$(load 1 "$VIA_NGINX")
  log "run $run: $CONNECTIONS connections (throughput)"
  kt=$(load "$CONNECTIONS" "$VIA_KG" "$AUTH")
  nt=$(load "$CONNECTIONS" "$VIA_NGINX")
  echo "$run $d $k $n $kt $nt" | tee -a "$results" >&2
done

python3 - "$results" "$(nproc)" "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" <<'PY'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
med = lambda i: statistics.median(r[i] for r in rows)
d50, d99 = med(1), med(2)
k50, k99 = med(4), med(5)
n50, n99 = med(7), med(8)
kt, nt = med(9), med(12)
print(f"Gateway (reverse proxy): {len(rows)} runs, medians; {sys.argv[2]} cores, {sys.argv[3]}")
print("| figure | Keygate | nginx proxy_pass | direct |")
print("|---|---|---|---|")
print(f"| p50 latency, 1 connection (µs) | {k50:.0f} | {n50:.0f} | {d50:.0f} |")
print(f"| p99 latency, 1 connection (µs) | {k99:.0f} | {n99:.0f} | {d99:.0f} |")
print(f"| added p50 latency vs direct (µs) | {k50 - d50:.0f} | {n50 - d50:.0f} | - |")
print(f"| peak throughput (req/s) | {kt:.0f} | {nt:.0f} | - |")
print(f"| throughput ratio Keygate / nginx | {kt / nt:.2f} | 1.00 | - |")
PY
