#!/bin/bash
# `make pgo`: the module built with profile-guided optimization, as
# target/pgo/libtq.so (its path is the one line printed on stdout).
#
# An instrumented build of the module runs a training load on real
# redis-servers (free loopback ports, stopped by PID): jobs enqueued, taken
# and completed one by one, by POP ... ACK and by TQ.BPOP / TQ.ACK, blocking
# pickups, delayed jobs promoted by the timer, leases run out, the
# inspection commands. The module is then built again with the profile it
# recorded: the compiler lays out and inlines for the paths a job takes,
# and keeps the rest small. Against the plain release build, a take +
# complete and an enqueue each cost the server about 15% less time (the
# README's "Speed", "The build measured").
#
# Needs llvm-profdata of rustc's own LLVM: the rustup component
# `llvm-tools`, added here when missing. Without it, exits 3 and says so
# (`make dist` and `make bench` then use the plain release build).
# Rebuilds only when the sources, the lock file, the toolchain, this script
# or the training drivers changed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/pgo
say() { echo "[pgo] $*" >&2; }

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ] && command -v rustup >/dev/null; then
  say "adding the rustup component llvm-tools (llvm-profdata)"
  rustup component add llvm-tools >&2 || true
fi
if [ ! -x "$profdata" ]; then
  say "llvm-profdata of rustc's LLVM is missing ($profdata): rustup component add llvm-tools"
  exit 3
fi

stamp=$( (rustc -vV; cat Cargo.toml Cargo.lock core/Cargo.toml "$0" scripts/servers.sh scripts/bench_cycle.rs scripts/bench_time.rs
  find src core/src -name '*.rs' | sort | xargs cat) | sha256sum | cut -c1-32)
if [ -f "$OUT/libtq.so" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$OUT/libtq.so"
  exit 0
fi
mkdir -p "$OUT"
rm -f "$OUT/stamp" "$OUT/libtq.so"
RAW=$PWD/$OUT/raw
rm -rf "$RAW"

say "1/4 the instrumented module and the training drivers"
# --target: the flags then reach the module's code only, not build scripts
# or proc macros (which would run instrumented too).
RUSTFLAGS="-Cprofile-generate=$RAW" cargo build --release -p tq-module --lib --target "$host" --target-dir "$OUT/gen" -q
cargo build -p tq-module --example bench-cycle --example bench-time --target-dir "$OUT/drivers" -q
BC=$OUT/drivers/debug/examples/bench-cycle
BT=$OUT/drivers/debug/examples/bench-time

say "2/4 the training load"
DIR=$(mktemp -d)
MODULE=$PWD/$OUT/gen/$host/release/libtq.so
. scripts/servers.sh
run() { "$@" >/dev/null || { say "training step failed: $*"; exit 1; }; }
start 1 --enable-debug-command yes
run "$BC" "$PORT" cycle-popack 20000 50 8 batch
run "$BC" "$PORT" cycle 20000 50 8 batch
run "$BC" "$PORT" cycle 20000 50 8 live
run "$BC" "$PORT" popack 20000 16 8
run "$BC" "$PORT" ackpop 20000 16 8
run "$BT" pickup "$PORT" tq 1000 2 4
for cmd in "TQ.STATS resque" "TQ.DETAILS resque" "TQ.WORKERS resque" "TQ.FAILED resque 0 10" \
  "TQ.LOCKS resque" "TQ.ALLDELAYED resque" "INFO tq"; do
  for _ in 1 2 3; do redis-cli -p "$PORT" $cmd >/dev/null; done
done
stop
start 1
run "$BT" promote-fill "$PORT" 100000 100
run "$BT" promote-auto "$PORT" 100000 250
stop
start 1
run "$BT" promote-fill "$PORT" 50000 50 exact
run "$BT" promote-auto "$PORT" 50000 250
stop
start 1 --enable-debug-command yes
run "$BT" expire-fill "$PORT" 20000
run "$BT" expire-auto "$PORT" 20000
stop # each server writes its counts as it exits

say "3/4 the profile"
# Named by the stamp: cargo sees a new profile as new flags (it does not
# look into the file), so every crate is built again with it.
rm -f "$OUT"/tq*.profdata
"$profdata" merge -o "$OUT/tq-$stamp.profdata" "$RAW"

say "4/4 the module built with it"
RUSTFLAGS="-Cprofile-use=$PWD/$OUT/tq-$stamp.profdata" cargo build --release -p tq-module --lib --target "$host" --target-dir "$OUT/use" -q
cp "$OUT/use/$host/release/libtq.so" "$OUT/libtq.so"
echo "$stamp" >"$OUT/stamp"
echo "$OUT/libtq.so"
