#!/usr/bin/env bash
# tq against raw Redis commands, one server, one run, printed as ratios.
#   enqueue: redis-benchmark RPUSH vs TQ.ENQUEUE (50 clients), unpipelined and -P 16
#   Lua:     EVALSHA doing node-resque's enqueue (SADD + RPUSH) vs TQ.ENQUEUE
#   take:    LPOP, and node-resque's per-job commands (Lua pop + MULTI stats +
#            DEL), vs TQ.POP+TQ.ACK (scripts/bench_cycle.rs, 8 connections)
# Then the enqueue pair again with a replica attached (both sides pay
# replication). Timing figures live here, never in tests.
# Env: N (requests per enqueue run, default 300000), JOBS (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-300000}
JOBS=${JOBS:-200000}
MODULE=$PWD/target/release/libtq.so
[ -f "$MODULE" ] || cargo build --release
cargo build --release --example bench-cycle -q
CYCLE=$PWD/target/release/examples/bench-cycle

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

start() { # port dir [args...]
  local port=$1 dir=$2; shift 2; mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --logfile "$dir/log" "$@" &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server on $port did not start" >&2; exit 1
}

P=$(free_port)
start "$P" "$DIR/primary" --loadmodule "$MODULE"
PAYLOAD='{"class":"add","queue":"bench","args":[1,2]}'

rps() { # port pipeline cmd...
  local port=$1 pipe=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$N" -P "$pipe" -q "$@" | tr '\r' '\n' | grep 'requests per second' | tail -1 \
    | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
row() { printf '| %-34s | %12.0f | %12.0f | %5sx |\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }

echo "redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/'), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| run                                | baseline/s   | tq/s         | tq/base |"
echo "|------------------------------------|--------------|--------------|---------|"
for pipe in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$(rps "$P" $pipe RPUSH resque:queue:bench "$PAYLOAD")
  b=$(rps "$P" $pipe TQ.ENQUEUE resque bench add '[1,2]')
  row "RPUSH vs TQ.ENQUEUE, -P $pipe" "$a" "$b"
done
SHA=$(redis-cli -p "$P" SCRIPT LOAD "redis.call('SADD', KEYS[1], ARGV[1]); return redis.call('RPUSH', KEYS[2], ARGV[2])")
for pipe in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$(rps "$P" $pipe EVALSHA "$SHA" 2 resque:queues resque:queue:bench bench "$PAYLOAD")
  b=$(rps "$P" $pipe TQ.ENQUEUE resque bench add '[1,2]')
  row "Lua SADD+RPUSH vs TQ.ENQUEUE, -P $pipe" "$a" "$b"
done
for depth in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$("$CYCLE" "$P" lpop "$JOBS" "$depth" 8)
  b=$("$CYCLE" "$P" popack "$JOBS" "$depth" 8)
  c=$("$CYCLE" "$P" noderesque "$JOBS" "$depth" 8)
  row "LPOP vs TQ.POP+TQ.ACK jobs/s, -P $depth" "$a" "$b"
  row "node-resque cmds vs POP+ACK, -P $depth" "$c" "$b"
done

R=$(free_port)
start "$R" "$DIR/replica" --replicaof 127.0.0.1 "$P"
for _ in $(seq 200); do
  redis-cli -p "$R" info replication | grep -q 'master_link_status:up' && break; sleep 0.05
done
redis-cli -p "$P" flushall >/dev/null
a=$(rps "$P" 16 RPUSH resque:queue:bench "$PAYLOAD")
b=$(rps "$P" 16 TQ.ENQUEUE resque bench add '[1,2]')
row "with a replica: RPUSH vs ENQUEUE -P 16" "$a" "$b"
