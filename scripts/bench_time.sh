#!/usr/bin/env bash
# Benchmarks of tq's server-side-time features, one machine, one run, every
# measurement on its own fresh redis-server (--save '' --appendonly no, free
# ports), repeated REPS times (default 2) and printed side by side as one
# markdown table with the targets. Timing figures live here, never in tests.
#
#   1. pickup latency: open loop, 1000 jobs/s for 10 s, TQ.ENQUEUE -> TQ.BPOP
#      (4 workers) -> TQ.ACK, against the floor RPUSH -> BLPOP (plain server);
#   2. delayed-job lateness: 2000 TQ.ENQUEUEAT spread over 10 s, picked up by
#      4 TQ.BPOP workers; lateness = receive - T (the time asked for) and
#      receive - bucket*1000 ms, early counts;
#   3. promotion of 1,000,000 due jobs (1000 buckets x 1000) by the module's
#      timer (tq.timer-batch 250, the default, and 1000) and by a client looping
#      TQ.PROMOTE LIMIT 1000, and by the timer again with the exact time tq
#      keeps for each of its own delayed jobs (in <ns>:tq:at and <ns>:tq:due,
#      written by the fill); stalls from LATENCY LATEST and a 1 ms PING thread;
#      and the floor of any promoter keeping node-resque's layout: the same
#      writes as bulk plain commands from a client that knows every key, and
#      as one command a bucket of the C yardstick module (FLOOR.PROMOTE);
#   4. TQ.POP+TQ.ACK jobs/s at queue depth 1,000 vs 10,000,000 (8 connections,
#      16 commands per round trip): two servers alive side by side, one drain
#      run of 200k cycles each, then alternating steady rounds (the queue kept
#      at its depth), so machine noise hits both depths alike;
#   5. lease expiry: 100,000 jobs each held by a worker of its own (as when
#      that many workers die at once), the server held (DEBUG SLEEP) until
#      every lease has run out; the timer gives them all back (jobs/s, its
#      longest tick, a 1 ms PING thread), against the same writes as plain
#      commands from a client that knows every key (server time);
#   6. the timer with many namespaces: 100,000 namespaces with one job due in
#      a day each (idle server CPU over 10 s, then PING round trips over 10 s,
#      the timer's visits per second), and 10,000 namespaces with a job due
#      in the same second (all promoted; the timer's longest tick).
# The measuring is done by scripts/bench_time.rs (example `bench-time`).
#
# Env: QUICK=1 (shorter: 3 s pickup, 600 delayed jobs over 3 s, 200k promoted,
#      depth 1M, 100k cycles, 20,000 leases, 20,000 idle namespaces over
#      3 s, 2,000 due),
#      REPS (runs of each benchmark, default 2),
#      ONLY="pickup lateness promote expire depth namespaces" (a subset),
#      PERF=1 (perf profile of the server during the first timer promotion,
#      printed to stderr), KV (a file to write every figure to as
#      <name>.<key>,<run>=<value> lines, for scripts/bench_all.sh's table).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
REPS=${REPS:-2}
ONLY=${ONLY:-pickup lateness promote expire depth namespaces}
PERF=${PERF:-0}
RATE=1000
WORKERS=4
if [ "$QUICK" = 1 ]; then
  PICK_SECS=3 LATE_JOBS=600 LATE_SPREAD_MS=3000 PROMO_JOBS=200000 DEEP=1000000 CYCLES=100000 LEASES=20000
  NS_IDLE=20000 NS_SECS=3 NS_DUE=2000
else
  PICK_SECS=10 LATE_JOBS=2000 LATE_SPREAD_MS=10000 PROMO_JOBS=1000000 DEEP=10000000 CYCLES=200000 LEASES=100000
  NS_IDLE=100000 NS_SECS=10 NS_DUE=10000
fi
LATE_LEAD_MS=1500
PROMO_BUCKETS=$((PROMO_JOBS / 1000))
SHALLOW=1000

STEADY_ROUNDS=${STEADY_ROUNDS:-4}

# Only the module and the driver (the rest of the workspace is not needed).
# Both are copied, so a rebuild while this runs changes nothing measured.
cargo build --release -p tq-module --lib --example bench-time -q
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git status --porcelain -- src core 2>/dev/null | grep -q . && echo '+uncommitted src/core' || true)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
DIR=$(mktemp -d)
# TQ_MODULE: the module to measure (scripts/bench_all.sh passes the one it
# measures everywhere); by default the release build.
cp "${TQ_MODULE:-target/release/libtq.so}" "$DIR/libtq.so"
cp target/release/examples/bench-time "$DIR/"
MODULE=$DIR/libtq.so
BT=$DIR/bench-time
. scripts/servers.sh
build_floor # the C yardstick module (FLOOR.PROMOTE)

declare -A R # "<name>.<key>,<rep>" -> value
keep() {     # name rep "k=v k=v ..."
  local name=$1 rep=$2 kv
  for kv in $3; do R["$name.${kv%%=*},$rep"]=${kv#*=}; done
}
say() { echo "[bench_time] $*" >&2; }

# Other processes' CPU while a benchmark ran, in cores: the machine's busy
# time (/proc/stat, steal excluded) minus this script's reaped children
# (servers, drivers, perf) over the wall time. Shows how noisy a run was.
HZ=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
child_ticks() { # reaped children, plus the live servers (and perf)
  local t p
  t=$(times | awk -v hz="$HZ" 'NR==2 { t=0; for (i=1;i<=2;i++) { split($i, a, /[ms]/); t += a[1]*60 + a[2] } printf "%d", t*hz }')
  for p in "${LIVE[@]}" ${PERF_PID:-}; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$t"
}
noise_mark() { N_BUSY=$(busy_ticks) N_CHILD=$(child_ticks) N_T=$(date +%s.%N); }
noise_take() { # name rep
  local busy child t
  busy=$(busy_ticks) child=$(child_ticks) t=$(date +%s.%N)
  R["$1.others_cores,$2"]=$(awk -v b=$((busy - N_BUSY)) -v c=$((child - N_CHILD)) -v t="$t" -v t0="$N_T" -v hz="$HZ" \
    'BEGIN { o = (b - c) / hz / (t - t0); if (o < 0) o = 0; printf "%.2f", o }')
}
measure() { # name rep command...: run a driver (failing the script if it fails) and keep its figures
  local name=$1 rep=$2 out
  shift 2
  out=$("$@")
  keep "$name" "$rep" "$out"
}

perf_start() {
  PERF_DATA=$DIR/perf.data
  perf record --call-graph dwarf,16384 -F 499 -o "$PERF_DATA" -p "$1" >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 0.5
}
perf_stop() {
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  {
    echo "---- perf (server during timer promotion, batch 250): inclusive %, top entries ----"
    perf report -i "$PERF_DATA" --children --stdio -g none --percent-limit 2 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | grep -v -E '__libc_start|_start$|aeMain|main$|catch_unwind|call_once|\(inlined\)' | head -45
    echo "----"
  } >&2
}

for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" pickup "* ]]; then
    say "run $rep: pickup latency, tq"
    noise_mark
    start 1
    measure pick_tq "$rep" "$BT" pickup "$PORT" tq $RATE "$PICK_SECS" $WORKERS
    stop
    noise_take pick_tq "$rep"
    say "run $rep: pickup latency, RPUSH/BLPOP floor"
    noise_mark
    start 0
    measure pick_floor "$rep" "$BT" pickup "$PORT" plain $RATE "$PICK_SECS" $WORKERS
    stop
    noise_take pick_floor "$rep"
  fi
done
for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" lateness "* ]]; then
    say "run $rep: delayed-job lateness"
    noise_mark
    start 1
    measure late "$rep" "$BT" lateness "$PORT" "$LATE_JOBS" "$LATE_SPREAD_MS" "$LATE_LEAD_MS" $WORKERS
    stop
    noise_take late "$rep"
  fi
done
for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" promote "* ]]; then
    for variant in auto250 auto1000 exact250 manual floor cfloor cfloorx; do
      say "run $rep: promotion of $PROMO_JOBS due jobs, $variant (filling...)"
      case $variant in cfloor*) start 1 --loadmodule "$DIR/floor.so" ;; *) start 1 ;; esac
      # exact250: tq's own delayed jobs, each with the exact time it keeps.
      fill_mode=""
      [ "$variant" = exact250 ] && fill_mode=exact
      measure "fill_$variant" "$rep" "$BT" promote-fill "$PORT" "$PROMO_JOBS" "$PROMO_BUCKETS" $fill_mode
      profile=0
      [ "$PERF" = 1 ] && [ "$rep" = 1 ] && [ "$variant" = auto250 ] && profile=1
      [ "$profile" = 1 ] && perf_start "$SPID"
      noise_mark
      case $variant in
        auto250 | exact250) measure "$variant" "$rep" "$BT" promote-auto "$PORT" "$PROMO_JOBS" 250 ;;
        auto1000) measure "$variant" "$rep" "$BT" promote-auto "$PORT" "$PROMO_JOBS" 1000 ;;
        manual) measure "$variant" "$rep" "$BT" promote-manual "$PORT" "$PROMO_JOBS" 1000 ;;
        floor) measure "$variant" "$rep" "$BT" promote-floor "$PORT" "$PROMO_JOBS" ;;
        cfloor) measure "$variant" "$rep" "$BT" promote-cfloor "$PORT" "$PROMO_JOBS" ;;
        cfloorx) measure "$variant" "$rep" "$BT" promote-cfloor "$PORT" "$PROMO_JOBS" exact ;;
      esac
      noise_take "$variant" "$rep"
      [ "$profile" = 1 ] && perf_stop
      stop
    done
  fi
done
for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" expire "* ]]; then
    for variant in expire expire_floor; do
      say "run $rep: lease expiry of $LEASES jobs, $variant (filling...)"
      # DEBUG SLEEP holds the server until every lease has run out.
      start 1 --enable-debug-command yes
      measure "fill_$variant" "$rep" "$BT" expire-fill "$PORT" "$LEASES"
      noise_mark
      case $variant in
        expire) measure "$variant" "$rep" "$BT" expire-auto "$PORT" "$LEASES" ;;
        expire_floor) measure "$variant" "$rep" "$BT" expire-floor "$PORT" "$LEASES" ;;
      esac
      noise_take "$variant" "$rep"
      stop
    done
  fi
done
for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" depth "* ]]; then
    say "run $rep: TQ.POP+TQ.ACK at depth $SHALLOW and $DEEP (filling...)"
    start 1
    SH_PORT=$PORT SH_PID=$SPID
    start 1
    DE_PORT=$PORT DE_PID=$SPID
    noise_mark
    measure "depth$SHALLOW" "$rep" "$BT" depth-fill "$SH_PORT" $((SHALLOW + CYCLES))
    measure "depth$DEEP" "$rep" "$BT" depth-fill "$DE_PORT" $((DEEP + CYCLES))
    measure "depth$SHALLOW.drain" "$rep" "$BT" depth-run "$SH_PORT" "$CYCLES" 16 8 drain
    measure "depth$DEEP.drain" "$rep" "$BT" depth-run "$DE_PORT" "$CYCLES" 16 8 drain
    for round in $(seq "$STEADY_ROUNDS"); do
      measure "depth$SHALLOW.steady$round" "$rep" "$BT" depth-run "$SH_PORT" $((CYCLES / 2)) 16 8 steady
      measure "depth$DEEP.steady$round" "$rep" "$BT" depth-run "$DE_PORT" $((CYCLES / 2)) 16 8 steady
    done
    noise_take depth "$rep"
    stop "$SH_PID" "$SH_PORT"
    stop "$DE_PID" "$DE_PORT"
  fi
done

for rep in $(seq "$REPS"); do
  if [[ " $ONLY " == *" namespaces "* ]]; then
    say "run $rep: $NS_IDLE namespaces, nothing due (filling...)"
    noise_mark
    start 1
    measure ns_idle "$rep" "$BT" ns-idle "$PORT" "$NS_IDLE" "$NS_SECS"
    stop
    noise_take ns_idle "$rep"
    say "run $rep: $NS_DUE namespaces, a job due in each"
    noise_mark
    start 1
    measure ns_due "$rep" "$BT" ns-due "$PORT" "$NS_DUE"
    stop
    noise_take ns_due "$rep"
  fi
done

# ------------------------------------------------------------------ table
if [ -n "${KV:-}" ]; then
  for k in "${!R[@]}"; do echo "$k=${R[$k]}"; done | sort >"$KV"
fi
set +u
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
num() { # thousands separators for integers, else as is
  sed -E ':a;s/^([0-9]+)([0-9]{3})($|,)/\1,\2\3/;ta' <<<"$1"
}
row() { # label measure target cell-function
  local label=$1 measure=$2 target=$3 fn=$4 cells="" rep
  for rep in $(seq "$REPS"); do cells+=" $($fn "$rep") |"; done
  echo "| $label | $measure |$cells $target |"
}
v() { num "${R[$1,$2]:-}"; }            # key rep
mk() { eval "c_$1() { $2; }"; }        # define a cell function

echo
echo "redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)," \
  "tq $REV, QUICK=$QUICK," \
  "load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
echo
head="| benchmark | measure |"
sep="|---|---|"
for rep in $(seq "$REPS"); do head+=" run $rep |"; sep+="---:|"; done
echo "$head target |"
echo "$sep---|"

if [[ " $ONLY " == *" pickup "* ]]; then
  L="pickup, open loop $RATE jobs/s × ${PICK_SECS} s, $WORKERS workers"
  for k in p50 p99 max; do
    mk "pt_$k" "v pick_tq.$k \$1"
    mk "pf_$k" "v pick_floor.$k \$1"
    mk "pr_$k" "ratio \${R[pick_tq.$k,\$1]} \${R[pick_floor.$k,\$1]}"
  done
  mk pt_n 'echo "${R[pick_tq.n,$1]}/${R[pick_tq.sent,$1]}"'
  mk pf_n 'echo "${R[pick_floor.n,$1]}/${R[pick_floor.sent,$1]}"'
  mk p_slip 'echo "${R[pick_tq.slip_max,$1]} / ${R[pick_floor.slip_max,$1]}"'
  row "$L: TQ.ENQUEUE → TQ.BPOP → TQ.ACK" "p50 ms" "≤ 1" c_pt_p50
  row "" "p99 ms" "≤ 5" c_pt_p99
  row "" "max ms" "" c_pt_max
  row "" "jobs received/sent" "all" c_pt_n
  row "floor: RPUSH → BLPOP (no module)" "p50 ms" "" c_pf_p50
  row "" "p99 ms" "" c_pf_p99
  row "" "max ms" "" c_pf_max
  row "" "jobs received/sent" "all" c_pf_n
  row "tq / floor" "p50" "" c_pr_p50
  row "" "p99" "" c_pr_p99
  row "" "max" "" c_pr_max
  row "producer's worst lag behind its schedule, tq / floor" "ms" "" c_p_slip
  mk p_noise 'echo "${R[pick_tq.others_cores,$1]} / ${R[pick_floor.others_cores,$1]}"'
  row "other processes' CPU during the run, tq / floor" "cores" "~0" c_p_noise
fi

if [[ " $ONLY " == *" lateness "* ]]; then
  for k in p50 p99 max min early asked_p50 asked_p99 asked_max asked_min asked_early first_p50 first_max last_p50 last_max buckets clock_offset_ms dup drain_rate others_cores; do
    mk "l_$k" "v late.$k \$1"
  done
  mk l_n 'echo "${R[late.n,$1]}/${R[late.jobs,$1]} (${R[late.dup,$1]})"'
  mk l_first 'echo "${R[late.first_p50,$1]} / ${R[late.first_max,$1]}"'
  mk l_last 'echo "${R[late.last_p50,$1]} / ${R[late.last_max,$1]}"'
  row "delayed-job lateness: $LATE_JOBS TQ.ENQUEUEAT over $((LATE_SPREAD_MS / 1000)) s, $WORKERS workers, from the time asked for (receive − T)" "p50 ms" "" c_l_asked_p50
  row "" "p99 ms" "≤ 5" c_l_asked_p99
  row "" "max ms" "" c_l_asked_max
  row "" "min ms" "≥ 0" c_l_asked_min
  row "" "jobs received before T" "0" c_l_asked_early
  row "the same, from the bucket's second (receive − bucket×1000; node-resque's filing, negative: before the second)" "p50 ms" "" c_l_p50
  row "" "p99 ms" "" c_l_p99
  row "" "max ms" "" c_l_max
  row "" "min ms" "" c_l_min
  row "" "jobs received before the bucket's second" "" c_l_early
  row "" "jobs received/sent (duplicates)" "all (0)" c_l_n
  row "" "buckets" "" c_l_buckets
  row "per bucket: first job picked up" "p50 / max ms" "" c_l_first
  row "per bucket: last job picked up (bucket drained)" "p50 / max ms" "" c_l_last
  row "per bucket: workers' drain rate once due (median)" "jobs/s" "" c_l_drain_rate
  row "" "server TIME − client clock, ms" "" c_l_clock_offset_ms
  row "" "other processes' CPU during the run, cores" "~0" c_l_others_cores
fi

if [[ " $ONLY " == *" promote "* ]]; then
  P="promote $(num "$PROMO_JOBS") due jobs ($(num "$PROMO_BUCKETS") buckets)"
  mk f_rate 'v fill_auto250.fill_rate $1'
  mk f_s 'v fill_auto250.fill_s $1'
  mk f_mb 'v fill_auto250.used_mb $1'
  row "$P: fill, pipelined TQ.ENQUEUEAT (2 conns)" "s" "" c_f_s
  row "" "jobs/s" "" c_f_rate
  row "" "used_memory MB" "" c_f_mb
  for variant in auto250 auto1000 exact250 manual; do
    case $variant in
      auto250) label="timer, tq.timer-batch 250 (default)" ;;
      exact250) label="timer, batch 250, jobs filed by tq for exact times" ;;
      auto1000) label="timer, tq.timer-batch 1000" ;;
      manual) label="client loop TQ.PROMOTE LIMIT 1000" ;;
    esac
    mk "${variant}_total" "v $variant.total_s \$1"
    mk "${variant}_rate" "v $variant.rate \$1"
    mk "${variant}_first" "echo \"\${R[$variant.first_ms,\$1]} / \$(num \${R[$variant.rate_after_first,\$1]})\""
    mk "${variant}_ping" "echo \"\${R[$variant.ping_max,\$1]} / \${R[$variant.ping_p99,\$1]} (\${R[$variant.ping_over10,\$1]} of \${R[$variant.pings,\$1]})\""
    mk "${variant}_lat" "echo \"\${R[$variant.events,\$1]}\""
    mk "${variant}_done" "echo \"\${R[$variant.queued,\$1]}/\${R[$variant.jobs,\$1]}\""
    mk "${variant}_noise" "v $variant.others_cores \$1"
    mk "${variant}_tick" "echo \"\${R[$variant.tick_p99_ms,\$1]} / \${R[$variant.tick_max_ms,\$1]} (CPU \${R[$variant.tick_cpu_max_ms,\$1]})\""
    mk "${variant}_busy" "v $variant.busy \$1"
    target_rate="≥ 1,000,000"
    [ "$variant" = manual ] && target_rate=""
    row "$label" "time to all queued, s" "" "c_${variant}_total"
    row "" "jobs/s" "$target_rate" "c_${variant}_rate"
    row "" "first job queued after ms / jobs/s from then" "" "c_${variant}_first"
    row "" "client PING max / p99 ms (PINGs > 10 ms of sent, 1/ms)" "≤ 10" "c_${variant}_ping"
    row "" "LATENCY LATEST event:max ms" "≤ 10" "c_${variant}_lat"
    [ "$variant" = manual ] || row "" "timer tick ms, p99 / longest (INFO tq timer_tick_us; longest on the CPU clock, timer_tick_cpu_us)" "≤ 10" "c_${variant}_tick"
    [ "$variant" = manual ] || row "" "server main thread busy, share of the wall time from the first job queued" "" "c_${variant}_busy"
    row "" "jobs queued/filled" "all" "c_${variant}_done"
    row "" "other processes' CPU during the run, cores" "~0" "c_${variant}_noise"
  done
  mk floor_rate 'echo "$(num "${R[floor.server_rate,$1]}") / $(num "${R[floor.rate,$1]}")"'
  mk floor_done 'echo "${R[floor.queued,$1]}/${R[floor.jobs,$1]}, keys left ${R[floor.keys_left,$1]}"'
  row "floor: the same writes as bulk plain commands from a client that knows every key" "jobs/s, server time / wall" "" c_floor_rate
  row "" "jobs queued/filled" "all" c_floor_done
  mk cfloor_rate 'echo "$(num "${R[cfloor.server_rate,$1]}") / $(num "${R[cfloor.rate,$1]}")"'
  mk cfloor_done 'echo "${R[cfloor.queued,$1]}/${R[cfloor.jobs,$1]}, keys left ${R[cfloor.keys_left,$1]}"'
  row "C module: the same writes, one FLOOR.PROMOTE a bucket (scripts/floor_module.c)" "jobs/s, server time / wall" "" c_cfloor_rate
  row "" "jobs queued/filled" "all" c_cfloor_done
  mk cfloorx_rate 'echo "$(num "${R[cfloorx.server_rate,$1]}") / $(num "${R[cfloorx.rate,$1]}")"'
  row "C module, exact: FLOOR.PROMOTE ... EXACT (queue as JSON.parse finds it; a marker deleted only when the bucket is its one member)" "jobs/s, server time / wall" "" c_cfloorx_rate
  mk r_5k 'ratio "${R[auto1000.rate,$1]}" "${R[auto250.rate,$1]}"'
  mk r_tm 'ratio "${R[auto250.rate,$1]}" "${R[manual.rate,$1]}"'
  row "timer batch 1000 / batch 250" "jobs/s" "" c_r_5k
  row "timer batch 250 / client loop" "jobs/s" "" c_r_tm
  mk r_fl 'ratio "${R[floor.server_rate,$1]}" "${R[auto250.rate,$1]}"'
  row "floor (server time) / timer batch 250" "jobs/s" "" c_r_fl
fi

if [[ " $ONLY " == *" expire "* ]]; then
  X="lease expiry: $(num "$LEASES") jobs, each held by a worker of its own, every lease run out at once"
  mk x_fill 'echo "${R[fill_expire.take_s,$1]} / ${R[fill_expire.fill_s,$1]}"'
  mk x_rate 'v expire.rate $1'
  mk x_total 'v expire.total_s $1'
  mk x_ping 'echo "${R[expire.ping_max,$1]} / ${R[expire.ping_p99,$1]} (${R[expire.ping_over10,$1]} of ${R[expire.pings,$1]})"'
  mk x_tick 'echo "${R[expire.tick_p99_ms,$1]} / ${R[expire.tick_max_ms,$1]} (CPU ${R[expire.tick_cpu_max_ms,$1]})"'
  mk x_busy 'v expire.busy $1'
  mk x_done 'echo "${R[expire.back,$1]}/${R[expire.due,$1]} due, leases left ${R[expire.leases_left,$1]}"'
  mk x_noise 'v expire.others_cores $1'
  mk x_floor 'echo "$(num "${R[expire_floor.server_rate,$1]}") / $(num "${R[expire_floor.rate,$1]}")"'
  mk x_ratio 'ratio "${R[expire.rate,$1]}" "${R[expire_floor.server_rate,$1]}"'
  row "$X: fill (TQ.ENQUEUE, then TQ.POP ... LEASE 5000 by as many workers)" "take s / fill s" "" c_x_fill
  row "timer" "time to all back in the queue, s" "" c_x_total
  row "" "jobs/s" "" c_x_rate
  row "" "client PING max / p99 ms (PINGs > 10 ms of sent, 1/ms)" "≤ 10" c_x_ping
  row "" "timer tick ms, p99 / longest (INFO tq timer_tick_us; longest on the CPU clock, timer_tick_cpu_us)" "≤ 5" c_x_tick
  row "" "server main thread busy, share of the wall time" "" c_x_busy
  row "" "jobs back / leases due" "all" c_x_done
  row "" "other processes' CPU during the run, cores" "~0" c_x_noise
  row "floor: the same writes as plain commands (ZREM, LPUSH, HSET, DEL, SET PXAT a job) from a client that knows every key" "jobs/s, server time / wall" "" c_x_floor
  row "timer / floor (server time)" "jobs/s" "" c_x_ratio
fi

if [[ " $ONLY " == *" depth "* ]]; then
  median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  steady() { # depth rep: the steady rounds' rates
    local r
    for r in $(seq "$STEADY_ROUNDS"); do echo -n "${R[depth$1.steady$r.rate,$2]} "; done
  }
  steady_ratios() { # rep: deep/shallow per round
    local r
    for r in $(seq "$STEADY_ROUNDS"); do
      awk -v a="${R[depth$DEEP.steady$r.rate,$1]}" -v b="${R[depth$SHALLOW.steady$r.rate,$1]}" 'BEGIN { printf "%.3f ", a / b }'
    done
  }
  for d in $SHALLOW $DEEP; do
    mk "d${d}_drain" "v depth$d.drain.rate \$1"
    mk "d${d}_steady" "num \$(printf '%.0f' \$(steady $d \$1 | median))"
    mk "d${d}_rounds" "steady $d \$1"
    mk "d${d}_fill" "echo \"\${R[depth$d.fill_s,\$1]} / \${R[depth$d.used_mb,\$1]}\""
    row "TQ.POP+TQ.ACK, 8 conns × 8 jobs/trip, depth $(num "$d")" "drain: $(num "$CYCLES") jobs, jobs/s (depth+N → depth)" "" "c_d${d}_drain"
    row "" "steady: median of $STEADY_ROUNDS rounds of $(num $((CYCLES / 2))) jobs, jobs/s" "" "c_d${d}_steady"
    row "" "steady rounds, jobs/s" "" "c_d${d}_rounds"
    row "" "fill s / used_memory MB" "" "c_d${d}_fill"
  done
  mk dr_drain "ratio \"\${R[depth$DEEP.drain.rate,\$1]}\" \"\${R[depth$SHALLOW.drain.rate,\$1]}\""
  mk dr_steady 'printf "%.2fx" "$(steady_ratios "$1" | median)"'
  mk dr_rounds 'steady_ratios "$1"'
  mk d_noise 'v depth.others_cores $1'
  row "depth $(num "$DEEP") / depth $(num "$SHALLOW")" "drain jobs/s" "≥ 0.80x" c_dr_drain
  row "" "steady: median of the per-round ratios" "≥ 0.80x" c_dr_steady
  row "" "steady per-round ratios" "" c_dr_rounds
  row "" "other processes' CPU (fills + runs), cores" "~0" c_d_noise
fi

if [[ " $ONLY " == *" namespaces "* ]]; then
  for k in cpu_pct ping_p99 ping_max visits_s ticks_s others_cores; do mk "ni_$k" "v ns_idle.$k \$1"; done
  for k in total_s tick_max_ms tick_cpu_max_ms tick_p99_ms ping_p99 ping_max others_cores; do mk "nd_$k" "v ns_due.$k \$1"; done
  mk nd_n 'echo "${R[ns_due.promoted,$1]}/${R[ns_due.namespaces,$1]}"'
  row "timer, $(num "$NS_IDLE") namespaces with a job due in a day, idle ${NS_SECS} s" "server CPU, % of a core (INFO cpu)" "< 2" c_ni_cpu_pct
  row "" "namespaces visited per second (INFO tq timer_ns_visits)" "~0" c_ni_visits_s
  row "" "PING p99 ms (1 per ms, ${NS_SECS} s)" "< 1" c_ni_ping_p99
  row "" "other processes' CPU during the run, cores" "~0" c_ni_others_cores
  row "timer, $(num "$NS_DUE") namespaces with a job due in the same second" "jobs promoted/due" "all" c_nd_n
  row "" "time from the due second to all promoted, s" "" c_nd_total_s
  row "" "longest timer tick ms (INFO tq timer_tick_us)" "≤ 5" c_nd_tick_max_ms
  row "" "longest timer tick ms on the server thread's CPU clock (INFO tq timer_tick_cpu_us)" "≤ 5" c_nd_tick_cpu_max_ms
  row "" "PING p99 ms (1 per ms)" "" c_nd_ping_p99
  row "" "other processes' CPU during the run, cores" "~0" c_nd_others_cores
fi
