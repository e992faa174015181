#!/usr/bin/env bash
# One benchmark run: starts a fresh release chat-server (embedded SQLite, or
# PostgreSQL + Redis) and a fresh bare fan-out baseline, runs chat-loadgen against both
# (same scenario, same run), prints its report and JSON line, and stops both servers.
#
#   scripts/bench.sh sqlite|postgres idle|groups|burst|history|direct [chat-loadgen options…]
#   scripts/bench.sh sqlite groups  --connections 1000 --group-size 10 --rate 2
#   scripts/bench.sh sqlite burst   --connections 1000 --senders 10 --burst 20
#   scripts/bench.sh sqlite history --connections 64 --messages 1000
#   scripts/bench.sh sqlite direct  --connections 1000 --rate 2
#   scripts/bench.sh sqlite idle    --connections 19000 --processes 2 --sources 127.0.0.2,127.0.0.3
#
# BENCH_METRICS_OUT=FILE: after the run, the server's /metrics is written to FILE and
# the disks' /proc/diskstats before and after to FILE.diskstats (scripts/stages.py
# turns them into the per-stage account of docs/benchmarks.md), and the server's log
# (warnings and errors) to FILE.log.
#
# BENCH_INSTANCES=K (postgres only): K server instances of one deployment (ports
# 18080, 18081, …); the load generator spreads sockets over them (`--spread chat`, the
# default, keeps a chat's members on one instance; pass `--spread member` to mix them)
# and each instance's bus messages received and needed are printed after the run.
#
# BENCH_REDIS_CLUSTER=1 (postgres only): the instances use a three-master Redis Cluster
# started for the run (redis-server on ports 17000-17002) instead of CHAT_TEST_REDIS_URL;
# after the run each shard's published messages (SPUBLISH, PUBLISH) and CPU seconds are
# printed.
#
# Build first: cargo build --release -p chat-server -p chat-loadgen
set -euo pipefail
mode=${1:?sqlite or postgres}; shift
scenario=${1:?idle, groups, burst, history or direct}; shift
case $scenario in
  idle|groups|burst|history|direct) ;;
  *) echo "unknown scenario $scenario (idle, groups, burst, history or direct)" >&2; exit 2 ;;
esac
bin=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release
work=$(mktemp -d /tmp/chat-bench.XXXXXX)
server_port=${BENCH_SERVER_PORT:-18080}
bare_port=${BENCH_BARE_PORT:-19090}
pg_admin=${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

env=(CHAT_BIND=127.0.0.1:$server_port CHAT_RATE_LIMITS=off CHAT_BCRYPT_COST=4 CHAT_LOG=warn
     CHAT_DATABASE_URL=sqlite://$work/chat.db)
cluster_ports=(17000 17001 17002) cluster_pids=()
redis_url=${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379}
if [ -n "${BENCH_REDIS_CLUSTER:-}" ]; then
  [ "$mode" = postgres ] || { echo "BENCH_REDIS_CLUSTER needs postgres" >&2; exit 2; }
  for p in "${cluster_ports[@]}"; do
    redis-server --port "$p" --cluster-port $((p + 100)) --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "nodes-$p.conf" --dir "$work" --save "" --appendonly no \
      >"$work/redis-$p.log" 2>&1 & cluster_pids+=($!)
  done
  for p in "${cluster_ports[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli -p 17000 cluster addslotsrange 0 5460 >/dev/null
  redis-cli -p 17001 cluster addslotsrange 5461 10922 >/dev/null
  redis-cli -p 17002 cluster addslotsrange 10923 16383 >/dev/null
  redis-cli -p 17000 cluster meet 127.0.0.1 17001 17101 >/dev/null
  redis-cli -p 17000 cluster meet 127.0.0.1 17002 17102 >/dev/null
  for _ in $(seq 1 100); do
    ok=0
    for p in "${cluster_ports[@]}"; do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = 3 ] && break
    sleep 0.2
  done
  redis_url=redis://127.0.0.1:17000,redis://127.0.0.1:17001,redis://127.0.0.1:17002
fi
if [ "$mode" = postgres ]; then
  db=chat_bench_$$
  psql "$pg_admin" -qc "CREATE DATABASE $db" >/dev/null
  env+=(CHAT_DATABASE_URL=${pg_admin%/*}/$db CHAT_REDIS_URL=$redis_url CHAT_REDIS_PREFIX=bench$$)
fi
peers=() peer_pids=()
cleanup() {
  kill "${server_pid:-}" "${bare_pid:-}" "${peer_pids[@]}" "${cluster_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$mode" = postgres ]; then
    psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    redis-cli -u "${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern "bench$$:*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

ulimit -n 20000 2>/dev/null || true
instances=${BENCH_INSTANCES:-1}
case $instances in ''|*[!0-9]*|0) echo "BENCH_INSTANCES must be a positive number" >&2; exit 2 ;; esac
if [ "$instances" -gt 1 ] && [ "$mode" != postgres ]; then
  echo "BENCH_INSTANCES needs postgres (instances share PostgreSQL and Redis)" >&2; exit 2
fi
env "${env[@]}" "$bin/chat-server" serve >"$work/server.log" 2>&1 & server_pid=$!
for i in $(seq 1 $((instances - 1))); do
  # Migrations are the first instance's; the others start once it is ready.
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$server_port/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "the first instance exited: $work/server.log" >&2; cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
  port=$((server_port + i))
  env "${env[@]}" CHAT_BIND=127.0.0.1:$port "$bin/chat-server" serve >"$work/server$i.log" 2>&1 &
  peer_pids+=($!) peers+=("127.0.0.1:$port")
done
"$bin/chat-bare-broadcast" "127.0.0.1:$bare_port" >"$work/bare.log" 2>&1 & bare_pid=$!
for addr in "127.0.0.1:$server_port" "${peers[@]}"; do
  for _ in $(seq 1 50); do
    curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
instance_args=()
if [ ${#peers[@]} -gt 0 ]; then
  instance_args=(--instances "$(IFS=,; echo "${peers[*]}")")
fi
[ -n "${BENCH_METRICS_OUT:-}" ] && cat /proc/diskstats >"$BENCH_METRICS_OUT.diskstats"
"$bin/chat-loadgen" "$scenario" --server "127.0.0.1:$server_port" --server-pid "$server_pid" \
  --baseline "127.0.0.1:$bare_port" --baseline-pid "$bare_pid" "${instance_args[@]}" "$@"
if [ -n "${BENCH_INSTANCES:-}" ] && [ "$mode" = postgres ]; then
  echo "bus messages per instance (received / needed by its sockets):"
  for addr in "127.0.0.1:$server_port" "${peers[@]}"; do
    { curl -fs "http://$addr/metrics" || true; } | awk -v addr="$addr" '
      $1 == "chat_bus_messages_received_total" { r = $2 }
      $1 == "chat_bus_messages_needed_total" { n = $2 }
      $1 == "chat_ws_opened_total" { c = $2 }
      END { printf "  %s: %d sockets, received %d, needed %d (%.2f)\n", addr, c, r, n, (n > 0 ? r / n : 0) }'
  done
fi
if [ -n "${BENCH_REDIS_CLUSTER:-}" ]; then
  echo "redis cluster shards (published with SPUBLISH / PUBLISH, CPU seconds):"
  for p in "${cluster_ports[@]}"; do
    redis-cli -p "$p" info all | tr -d '\r' | awk -F'[:=,]' -v port="$p" '
      $1 == "cmdstat_spublish" { sp = $3 }
      $1 == "cmdstat_publish" { pp = $3 }
      $1 == "used_cpu_sys" { sys = $2 }
      $1 == "used_cpu_user" { user = $2 }
      END { printf "  :%s: %d / %d published, CPU %.1f s\n", port, sp, pp, sys + user }'
  done
fi
if [ -n "${BENCH_METRICS_OUT:-}" ]; then
  { echo "--- after"; cat /proc/diskstats; } >>"$BENCH_METRICS_OUT.diskstats"
  curl -fs "http://127.0.0.1:$server_port/metrics" >"$BENCH_METRICS_OUT"
  cp "$work/server.log" "$BENCH_METRICS_OUT.log"
fi
