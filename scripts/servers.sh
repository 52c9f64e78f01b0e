# Sourced by the benchmark scripts: fresh redis-servers on free loopback
# ports (never 6379), no persistence, killed by PID on exit.
# The caller sets DIR (a scratch directory) and MODULE (libtq.so) first.
PIDS=() # every server started (killed on exit)
LIVE=() # servers running now

free_port() {
  python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p != 6379: print(p); break'
}

# start <with-module 0|1> [redis-server args...]: a fresh server; sets PORT
# and SPID.
start() {
  local args=()
  [ "$1" = 1 ] && args=(--loadmodule "$MODULE")
  shift
  PORT=$(free_port)
  local dir="$DIR/$PORT"
  mkdir -p "$dir"
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --maxmemory-policy noeviction --logfile "$dir/log" "${args[@]}" "$@" &
  SPID=$!
  PIDS+=("$SPID")
  LIVE+=("$SPID")
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server on $PORT did not start" >&2
  exit 1
}

stop() { # [pid port]: a server, by default the one started last
  local pid=${1:-$SPID} port=${2:-$PORT} p keep=()
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "${DIR:?}/$port"
  for p in "${LIVE[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  LIVE=("${keep[@]}")
}

# build_floor: the C yardstick module (scripts/floor_module.c) as
# $DIR/floor.so, built against the redismodule.h of the redis-module crate
# cargo fetched.
build_floor() {
  local rm_dir
  rm_dir=$(cargo metadata --format-version 1 | python3 -c '
import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "redis-module"))')
  gcc -O2 -shared -fPIC -I "$rm_dir/src/include" -o "$DIR/floor.so" scripts/floor_module.c
}

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
