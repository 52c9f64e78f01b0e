#!/usr/bin/env bash
# tq against raw Redis commands, one server, one run, printed as ratios.
#   enqueue: redis-benchmark RPUSH vs TQ.ENQUEUE (50 clients), unpipelined and -P 16
#   Lua:     EVALSHA doing node-resque's enqueue (SADD + RPUSH) vs TQ.ENQUEUE
#   floor:   TQ.PROMOTE on an empty namespace (a module command that writes
#            nothing) vs RPUSH; and scripts/floor_module.c, the least any
#            module command can do for RPUSH's work (push through the key
#            API and replicate as RPUSH, with and without the ACL check of
#            its key), vs RPUSH: the ceiling of TQ.ENQUEUE / RPUSH; and its
#            FLOOR.ENQUEUE, TQ.ENQUEUE's ACL checks (both keys, both plain
#            commands) and writes (SADD, RPUSH) without encoding a payload,
#            and FLOOR.ENQUEUEJOB, the same from TQ.ENQUEUE's own arguments
#            (key names and payload built)
#   take:    LPOP, and node-resque's per-job commands (Lua pop + MULTI stats +
#            DEL), vs TQ.POP+TQ.ACK and vs TQ.POP ... ACK (one command a job)
#            (scripts/bench_cycle.rs, 8 connections); server time per job
#            against the same writes as plain commands and as one command of
#            the C yardstick module (FLOOR.TAKEACK), with and without tq's
#            own writes
# Then the enqueue pair again with a replica attached (both sides pay
# replication). Timing figures live here, never in tests.
# Env: N (requests per enqueue run, default 300000), JOBS (default 200000),
#      KV (a file to append the figures to as key=value lines, for
#      scripts/bench_all.sh's table), TQ_MODULE (the module to measure;
#      by default the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-300000}
JOBS=${JOBS:-200000}
KV=${KV:-}
cargo build --release -p tq-module --lib --example bench-cycle -q
MODULE=${TQ_MODULE:-$PWD/target/release/libtq.so}
CYCLE=$PWD/target/release/examples/bench-cycle

DIR=$(mktemp -d)
. scripts/servers.sh

build_floor # the yardstick module

start 1 --loadmodule "$DIR/floor.so"
P=$PORT
PAYLOAD='{"class":"add","queue":"bench","args":[1,2]}'

rps() { # port pipeline cmd...
  local port=$1 pipe=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$N" -P "$pipe" -q "$@" | tr '\r' '\n' | grep 'requests per second' | tail -1 \
    | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
row() { printf '| %-34s | %12.0f | %12.0f | %5sx |\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }
kv() { [ -z "$KV" ] || echo "$1=$2" >>"$KV"; } # key value

echo "redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/'), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| run                                | baseline/s   | tq/s         | tq/base |"
echo "|------------------------------------|--------------|--------------|---------|"
for pipe in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$(rps "$P" $pipe RPUSH resque:queue:bench "$PAYLOAD")
  b=$(rps "$P" $pipe TQ.ENQUEUE resque bench add '[1,2]')
  # The floor of any module command: one that writes nothing.
  c=$(rps "$P" $pipe TQ.PROMOTE empty)
  d=$(rps "$P" $pipe FLOOR.PUSH resque:queue:floor "$PAYLOAD")
  e=$(rps "$P" $pipe FLOOR.PUSHACL resque:queue:floor "$PAYLOAD")
  f=$(rps "$P" $pipe FLOOR.ENQUEUE resque:queues resque:queue:floor floor "$PAYLOAD")
  g=$(rps "$P" $pipe FLOOR.ENQUEUEJOB resque floor add '[1,2]')
  row "RPUSH vs TQ.ENQUEUE, -P $pipe" "$a" "$b"
  row "RPUSH vs TQ.PROMOTE (no-op), -P $pipe" "$a" "$c"
  row "RPUSH vs C module push+replicate, -P $pipe" "$a" "$d"
  row "RPUSH vs C module ACL+push+replicate, -P $pipe" "$a" "$e"
  row "RPUSH vs C module enqueue's checks+writes, -P $pipe" "$a" "$f"
  row "RPUSH vs the same from TQ.ENQUEUE's args, -P $pipe" "$a" "$g"
  kv "enq.rpush.p$pipe" "$a"
  kv "enq.tq.p$pipe" "$b"
  kv "enq.floor.p$pipe" "$c"
  kv "enq.cpush.p$pipe" "$d"
  kv "enq.cpushacl.p$pipe" "$e"
  kv "enq.cenqueue.p$pipe" "$f"
  kv "enq.cenqueuejob.p$pipe" "$g"
done
SHA=$(redis-cli -p "$P" SCRIPT LOAD "redis.call('SADD', KEYS[1], ARGV[1]); return redis.call('RPUSH', KEYS[2], ARGV[2])")
for pipe in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$(rps "$P" $pipe EVALSHA "$SHA" 2 resque:queues resque:queue:bench bench "$PAYLOAD")
  b=$(rps "$P" $pipe TQ.ENQUEUE resque bench add '[1,2]')
  row "Lua SADD+RPUSH vs TQ.ENQUEUE, -P $pipe" "$a" "$b"
  kv "enq.lua.p$pipe" "$a"
  kv "enq.tq_vs_lua.p$pipe" "$b"
done
for depth in 1 16; do
  redis-cli -p "$P" flushall >/dev/null
  a=$("$CYCLE" "$P" lpop "$JOBS" "$depth" 8)
  b=$("$CYCLE" "$P" popack "$JOBS" "$depth" 8)
  c=$("$CYCLE" "$P" noderesque "$JOBS" "$depth" 8)
  d=$("$CYCLE" "$P" ackpop "$JOBS" "$depth" 8)
  row "LPOP vs TQ.POP+TQ.ACK jobs/s, -P $depth" "$a" "$b"
  row "node-resque cmds vs POP+ACK, -P $depth" "$c" "$b"
  row "node-resque cmds vs POP ... ACK, -P $depth" "$c" "$d"
  kv "take.ackpop.p$depth" "$d"
  kv "take.lpop.p$depth" "$a"
  kv "take.tq.p$depth" "$b"
  kv "take.noderesque.p$depth" "$c"
done
# Server time per job (INFO commandstats, the fill left out), 16 commands
# per round trip: tq's take + complete against the same writes as plain
# commands (the floor) and node-resque's per-job commands.
usec_of() { # commands...
  redis-cli -p "$P" info commandstats | tr -d '\r' | python3 -c '
import sys
want = set(sys.argv[1:])
total = 0
for line in sys.stdin:
    if line.startswith("cmdstat_"):
        name, rest = line[len("cmdstat_"):].split(":", 1)
        fields = dict(kv.split("=") for kv in rest.strip().split(","))
        if name in want:
            total += int(fields["usec"])
print(total)' "$@"
}
# cfloor / cfloortq: the C yardstick module making the floor's writes (and
# tq's) in one command a job (FLOOR.TAKEACK): what the module API costs;
# cfloortq_nometrics: tq's writes without the job metrics' two keys.
# server_us <mode> <tq.metrics yes|no>: one run on a flushed server, prints
# the server µs per job.
server_us() {
  local mode=$1 cmds us
  redis-cli -p "$P" flushall >/dev/null
  # One key with a TTL, as any working server holds: with none, Redis
  # skips its expiry lookup on every key access.
  redis-cli -p "$P" set bench:ttl x px 86400000 >/dev/null
  redis-cli -p "$P" config set tq.metrics "$2" >/dev/null
  redis-cli -p "$P" config resetstat >/dev/null
  "$CYCLE" "$P" "$mode" "$JOBS" 16 8 >/dev/null
  case $mode in
    popack | ackpop) cmds="tq.pop tq.ack" ;;
    floor) cmds="lpop set sadd zadd del incr zrem" ;;
    cfloor*) cmds="floor.takeack" ;;
    noderesque) cmds="evalsha multi incr exec del" ;;
  esac
  us=$(usec_of $cmds)
  python3 -c "print(f'{$us / $JOBS:.2f}')"
}
for mode in popack ackpop floor cfloor cfloortq cfloortq_nometrics noderesque; do
  per=$(server_us "$mode" yes)
  echo "| server µs per job, $mode, -P 16        | $per |"
  kv "take.us.$mode" "$per"
done
# The job metrics' share of the take + complete: one run moves by ±10% on a
# busy machine, more than the share itself, so each shape runs SHARE_ROUNDS
# times with `tq.metrics yes` and as often with `no`, alternating, and the
# medians are compared.
SHARE_ROUNDS=${SHARE_ROUNDS:-5}
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
kv take.share.rounds "$SHARE_ROUNDS"
for mode in ackpop popack; do
  yes=() no=()
  for _ in $(seq "$SHARE_ROUNDS"); do
    yes+=("$(server_us "$mode" yes)")
    no+=("$(server_us "$mode" no)")
  done
  y=$(med "${yes[@]}") n=$(med "${no[@]}")
  echo "| server µs per job, $mode, tq.metrics yes / no, medians of $SHARE_ROUNDS | $y | $n | (${yes[*]} / ${no[*]}) |"
  kv "take.share.$mode.yes" "$y"
  kv "take.share.$mode.no" "$n"
  kv "take.share.$mode.rounds" "${yes[*]} / ${no[*]}"
done
redis-cli -p "$P" config set tq.metrics yes >/dev/null

start 0 --replicaof 127.0.0.1 "$P"
R=$PORT
for _ in $(seq 200); do
  redis-cli -p "$R" info replication | grep -q 'master_link_status:up' && break; sleep 0.05
done
redis-cli -p "$P" flushall >/dev/null
a=$(rps "$P" 16 RPUSH resque:queue:bench "$PAYLOAD")
b=$(rps "$P" 16 TQ.ENQUEUE resque bench add '[1,2]')
row "with a replica: RPUSH vs ENQUEUE -P 16" "$a" "$b"
kv enq.replica.rpush.p16 "$a"
kv enq.replica.tq.p16 "$b"
