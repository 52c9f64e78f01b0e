#!/usr/bin/env bash
# Every benchmark of tq in one run on one machine, assembled into ONE markdown
# table: printed at the end and saved to target/bench/table.md (the pieces'
# own output and figures stay beside it). `make bench` runs this.
#
#   1. enqueue and take+complete vs raw Redis commands: scripts/bench.sh
#   2. full job cycle (enqueue -> pop -> no-op -> ack), the same job count for
#      each, enqueue all then drain, and with consumers working while the
#      producer sends: tq from Rust (the tq-client library without and with
#      prefetch, and a plain
#      TQ.BPOP/TQ.ACK loop), tq from Node (plain ioredis, and the tq-resque
#      package's Workers), node-resque, BullMQ
#      (scripts/bench-node/bench.js); and two floors: plain Redis (RPUSH;
#      BLPOP, no bookkeeping) and the C yardstick module making tq's writes
#      (one round trip a job)
#   3. memory per waiting job and per job in flight: tq vs node-resque vs
#      BullMQ, each from its own producer/workers (scripts/bench-node/bench.js)
#   4. pickup latency, delayed-job lateness, promotion of 1M due jobs, lease
#      expiry of 100k jobs at once, POP+ACK at depth 1k vs 10M:
#      scripts/bench_time.sh (one run, REPS=1); pickup
#      latency of tq-resque's Workers vs node-resque's (bench.js pickup)
#   5. server work per job counted under callgrind (instructions, key opens,
#      allocations, replicated commands, ACL checks): scripts/bench_counts.py,
#      its own table appended below the main one
#   6. `tq web`'s server time per page on big data (1M waiting jobs, 100k
#      failed, 10k workers; searches included): scripts/bench_web.sh, its own
#      table appended
#
# Every server is a fresh redis-server on a free loopback port (never 6379)
# with --save '' --appendonly no, started and killed by PID (here, or by the
# script called). tq runs on servers with the module loaded; node-resque and
# BullMQ on the same redis-server binary and flags without it.
# Timing figures live here, never in tests.
#
# Env: QUICK=1 (smaller sizes everywhere, a few minutes), CYCLE_JOBS, CYCLE_REPS,
#      MEM_JOBS, MEM_WORKERS (override the sizes below), PARTS="2 4" (run
#      only these parts; the table shows — for the others; parts 5 and 6
#      add their own tables).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
PARTS=${PARTS:-1 2 3 4 5 6}
part() { [[ " $PARTS " == *" $1 "* ]]; }
if [ "$QUICK" = 1 ]; then
  ENQ_N=100000 TAKE_JOBS=50000 CYCLE_JOBS=${CYCLE_JOBS:-10000} CYCLE_REPS=${CYCLE_REPS:-1} WORK_JOBS=${WORK_JOBS:-2000} MEM_JOBS=${MEM_JOBS:-20000} MEM_WORKERS=${MEM_WORKERS:-500}
else
  ENQ_N=300000 TAKE_JOBS=200000 CYCLE_JOBS=${CYCLE_JOBS:-50000} CYCLE_REPS=${CYCLE_REPS:-5} WORK_JOBS=${WORK_JOBS:-10000} MEM_JOBS=${MEM_JOBS:-100000} MEM_WORKERS=${MEM_WORKERS:-2000}
fi
CONSUMERS=8 # consumers in the full cycle (connections, slots, workers, concurrency)
PREFETCH=4  # jobs each tq-client Worker slot holds in the prefetch rows
WINDOW=50   # enqueues outstanding at once in the full cycle

OUT=target/bench
mkdir -p "$OUT"
rm -f "$OUT"/*.kv "$OUT"/*.log "$OUT"/table.md
RESULTS=$OUT/results.kv
T0=$(date +%s)
say() { echo "[bench_all] $*" >&2; }
kv() { echo "$1=$2" >>"$RESULTS"; } # key value
kv meta.load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
kv meta.quick "$QUICK"
kv meta.cycle_jobs "$CYCLE_JOBS"
kv meta.cycle_reps "$CYCLE_REPS"
kv meta.consumers "$CONSUMERS"
kv meta.prefetch "$PREFETCH"
kv meta.window "$WINDOW"
kv meta.work_jobs "$WORK_JOBS"
kv meta.mem_jobs "$MEM_JOBS"
kv meta.mem_workers "$MEM_WORKERS"

# ------------------------------------------------------------ what it needs
scripts/deps.sh --bench # redis-server, redis-cli, redis-benchmark, python3
command -v node >/dev/null || {
  echo "bench: Node.js (with npm) is needed for the node-resque and BullMQ runs" >&2
  exit 1
}
NODE_DIR=scripts/bench-node
if [ ! -f "$NODE_DIR/node_modules/.package-lock.json" ] || [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" ]; then
  say "installing node-resque and BullMQ (npm ci, pinned by $NODE_DIR/package-lock.json)"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d clients/node/node_modules/ioredis ]; then
  say "installing the Node package's pinned dependencies (clients/node)"
  (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
say "building the module and the Rust drivers"
cargo build --release -p tq-module --lib --example bench-cycle --example bench-time -q
cargo build --release -p tq-cli --bin tq -q
cargo build --release -p tq-client --example bench -q

# The module as `make dist` ships it: built with profile-guided
# optimization (scripts/pgo.sh), or the plain release build where that
# cannot be made. Copies, so that a rebuild while this runs changes nothing
# measured.
DIR=$(mktemp -d)
if SO=$(scripts/pgo.sh); then
  kv meta.build "profile-guided (scripts/pgo.sh)"
else
  SO=target/release/libtq.so
  kv meta.build "plain release (scripts/pgo.sh could not run: see above)"
fi
cp "$SO" "$DIR/libtq.so"
cp target/release/examples/bench-cycle "$DIR/"
cp target/release/examples/bench "$DIR/bench-worker"
cp target/release/tq "$DIR/tq"
MODULE=$DIR/libtq.so
. scripts/servers.sh
build_floor # the C yardstick module (parts 2 and 5)

# per_call <command>: its usec_per_call in the running server's INFO commandstats.
per_call() {
  redis-cli -p "$PORT" info commandstats | tr -d '\r' | sed -n "s/^cmdstat_$1:.*usec_per_call=\([0-9.]*\).*/\1/p"
}

# measure <prefix> <with-module 0|1|floor> command... (floor: the C yardstick
# module, scripts/floor_module.c, instead of tq) (@PORT@ in the command is the
# fresh server's): keeps every key=value the command prints, or a lone number
# as <prefix>.rate.
measure() {
  local prefix=$1 module=$2 out word
  shift 2
  if [ "$module" = floor ]; then start 0 --loadmodule "$DIR/floor.so"; else start "$module"; fi
  out=$("${@//@PORT@/$PORT}")
  # The 2a loops' own server time per command, one job per round trip
  # (INFO commandstats): what the drain's take and the producer's enqueue
  # cost the server there, next to the counted figures at 16 per trip.
  case $prefix in
    batch.tq_popack) out+=" take_us=$(per_call tq.pop) enqueue_us=$(per_call tq.enqueue)" ;;
    batch.cfloor) out+=" take_us=$(per_call floor.takeack) enqueue_us=$(per_call floor.enqueue)" ;;
  esac
  stop
  for word in $out; do
    case $word in
      *=*) kv "$prefix.${word%%=*}" "${word#*=}" ;;
      *) kv "$prefix.rate" "$word" ;;
    esac
  done
}

# ---------------------------------------------------- 1. enqueue and take
if part 1; then
kv meta.load_part1 "$(cut -d' ' -f1 /proc/loadavg)"
say "1/4 enqueue and take+complete vs raw commands (scripts/bench.sh)"
TQ_MODULE=$MODULE KV=$RESULTS N=$ENQ_N JOBS=$TAKE_JOBS scripts/bench.sh >"$OUT/bench.log"
fi

# -------------------------------------------------------- 2. full job cycle
BENCH_JS=$NODE_DIR/bench.js
kv meta.load_part2 "$(cut -d' ' -f1 /proc/loadavg)"
# tq_work <port> <jobs> <consumers>: prints jobs/s from the start of tq work to
# the last ack of jobs already waiting.
tq_work() {
  local port=$1 jobs=$2 handlers="$DIR/handlers" t0 wpid done=0
  mkdir -p "$handlers"
  ln -sf "$(type -P true)" "$handlers/add" # not the shell builtin
  redis-benchmark -p "$port" -n "$jobs" -c 50 -P 16 -q TQ.ENQUEUE resque bench add '[1,2]' >/dev/null
  t0=$(date +%s.%N)
  "$DIR/tq" work --redis "redis://127.0.0.1:$port/" --queues bench --handlers "$handlers" \
    --concurrency "$3" --quiet >"$OUT/tq-work.log" 2>&1 &
  wpid=$!
  while [ "$done" -lt "$jobs" ]; do
    sleep 0.02
    done=$(redis-cli -p "$port" GET resque:stat:processed)
    done=${done:-0}
    [ "$(redis-cli -p "$port" GET resque:stat:failed)" = "" ] || { echo "tq work failed jobs (see $OUT/tq-work.log)" >&2; exit 1; }
    kill -0 "$wpid" 2>/dev/null || { echo "tq work exited early (see $OUT/tq-work.log)" >&2; exit 1; }
  done
  awk -v n="$jobs" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.0f\n", n / (t1 - t0) }'
  kill -TERM "$wpid"
  wait "$wpid" || true
}
if part 2; then
say "2/4 full job cycle, $CYCLE_JOBS jobs, $CONSUMERS consumers, $CYCLE_REPS round(s) (the table shows medians)"
# Two shapes each round: batch (enqueue all, then drain: keys batch.*) and
# live (consumers waiting on the empty queue while the producer sends: cycle.*).
for rep in $(seq "$CYCLE_REPS"); do
  for shape in batch live; do
    prefix=$shape
    [ "$shape" = live ] && prefix=cycle
    say "    round $rep, $shape: tq-client library (prefetch 1 and $PREFETCH), Rust TQ.BPOP/TQ.ACK and TQ.POP ... ACK loops, tq from Node, tq-resque, node-resque, BullMQ, floors"
    measure $prefix.tq_worker 1 "$DIR/bench-worker" @PORT@ "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" $shape
    measure $prefix.tq_worker_pf 1 "$DIR/bench-worker" @PORT@ "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" $shape "$PREFETCH"
    measure $prefix.tq_rust 1 "$DIR/bench-cycle" @PORT@ cycle "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" $shape
    [ "$shape" = live ] || measure $prefix.tq_popack 1 "$DIR/bench-cycle" @PORT@ cycle-popack "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" batch
    measure $prefix.tq_node 1 node "$BENCH_JS" cycle tq @PORT@ "$CYCLE_JOBS" "$CONSUMERS" $shape
    measure $prefix.tq_resque 1 node "$BENCH_JS" cycle tq-resque @PORT@ "$CYCLE_JOBS" "$CONSUMERS" $shape
    measure $prefix.noderesque 0 node "$BENCH_JS" cycle node-resque @PORT@ "$CYCLE_JOBS" "$CONSUMERS" $shape
    measure $prefix.bullmq 0 node "$BENCH_JS" cycle bullmq @PORT@ "$CYCLE_JOBS" "$CONSUMERS" $shape
    # Floors: plain Redis, no bookkeeping; a C module making tq's writes.
    measure $prefix.plain 0 "$DIR/bench-cycle" @PORT@ cycle-plain "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" $shape
    [ "$shape" = live ] || measure $prefix.cfloor floor "$DIR/bench-cycle" @PORT@ cycle-cfloor "$CYCLE_JOBS" "$WINDOW" "$CONSUMERS" batch
  done
done
say "    tq work, $WORK_JOBS jobs already waiting, each run as a process (/bin/true)"
measure cycle.tq_work 1 tq_work @PORT@ "$WORK_JOBS" "$CONSUMERS"
fi

# ---------------------------------------------------------------- 3. memory
if part 3; then
kv meta.load_part3 "$(cut -d' ' -f1 /proc/loadavg)"
say "3/4 memory: $MEM_JOBS waiting jobs, $MEM_WORKERS jobs in flight"
for sys in tq node-resque bullmq; do
  module=0
  [ "$sys" = tq ] && module=1
  measure "mem_waiting.${sys//-/}" "$module" node "$BENCH_JS" mem-waiting "$sys" @PORT@ "$MEM_JOBS"
  measure "mem_inflight.${sys//-/}" "$module" node "$BENCH_JS" mem-inflight "$sys" @PORT@ "$MEM_WORKERS"
done
fi

# ------------------- 4. latency, lateness, promotion, lease expiry, depth
touch "$OUT/bench_time.kv"
if part 4; then
kv meta.load_part4 "$(cut -d' ' -f1 /proc/loadavg)"
say "4/4 pickup latency, delayed-job lateness, promotion, lease expiry, depth (scripts/bench_time.sh)"
TQ_MODULE=$MODULE KV=$OUT/bench_time.kv REPS=1 QUICK=$QUICK scripts/bench_time.sh >"$OUT/bench_time.log"
PICK_JOBS=1000
[ "$QUICK" = 1 ] && PICK_JOBS=300
say "    pickup latency from Node: tq-resque Workers waiting in TQ.BPOP vs node-resque's polling, $PICK_JOBS jobs at 100/s"
measure pickup_node.tq_resque 1 node "$BENCH_JS" pickup tq-resque @PORT@ "$PICK_JOBS" 4
measure pickup_node.noderesque 0 node "$BENCH_JS" pickup node-resque @PORT@ "$PICK_JOBS" 4
fi

# ------------------------------------------------------------------ table
kv meta.load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
kv meta.seconds $(($(date +%s) - T0))
kv meta.date "$(date -u +%Y-%m-%dT%H:%MZ)"
kv meta.rev "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git status --porcelain -- src core 2>/dev/null | grep -q . && echo ' (+uncommitted src/core)' || true)"
kv meta.redis "$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')"
kv meta.cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
kv meta.cores "$(nproc)"
kv meta.node "$(node --version)"
for pkg in node-resque bullmq ioredis; do
  kv "meta.$pkg" "$(node -p "require('./$NODE_DIR/node_modules/$pkg/package.json').version")"
done
python3 scripts/bench_table.py "$RESULTS" "$OUT/bench_time.kv" >"$OUT/table.md"
if part 5; then
  say "5/5 server work per job, counted (scripts/bench_counts.py, under valgrind)"
  cargo build --release -p tq-module --lib --example bench-cycle --example bench-time -q
  python3 scripts/bench_counts.py "$MODULE" target/release/examples/bench-cycle \
    target/release/examples/bench-time "$DIR/floor.so" "$OUT/counts.md" >"$OUT/counts.log"
  { echo; cat "$OUT/counts.md"; } >>"$OUT/table.md"
fi
if part 6; then
  say "6/6 tq web: server time per page on big data (scripts/bench_web.sh)"
  TQ_MODULE=$MODULE BUILD=release scripts/bench_web.sh >"$OUT/web.md"
  { echo; echo "tq web, server time per page (1M waiting jobs, 100k failed, 10k workers, job metrics of 200 pairs):"; echo; cat "$OUT/web.md"; } >>"$OUT/table.md"
fi
echo
cat "$OUT/table.md"
say "saved to $OUT/table.md (the pieces' own output: $OUT/*.log)"
