#!/usr/bin/env bash
# Server time of every `tq web` page on big data: 1,000,000 waiting jobs,
# 100,000 failed records, 10,000 registered workers with in-flight records,
# 200 delayed times, job metrics of 200 (queue, class) pairs. Prints the best of 5 requests (curl's time_total, ms)
# per page, searches included, as a markdown table (part 6 of `make bench`,
# scripts/bench_all.sh). BUILD=debug|release (default release; `cargo build --workspace
# [--release]` first).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-release}
MODULE=${TQ_MODULE:-$PWD/target/$BUILD/libtq.so}
TQ=$PWD/target/$BUILD/tq
FLAG=; [ "$BUILD" = release ] && FLAG=" --release"
for f in "$MODULE" "$TQ"; do [ -e "$f" ] || { echo "missing $f: cargo build --workspace$FLAG" >&2; exit 1; }; done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
WPORT=$(free_port)
DIR=$(mktemp -d)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --loadmodule "$MODULE" --logfile "$DIR/redis.log" --daemonize yes --pidfile "$DIR/redis.pid"
WEB_PID=
cleanup() {
  [ -n "$WEB_PID" ] && kill "$WEB_PID" 2>/dev/null || true
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
R="redis-cli -p $RPORT"
until $R ping >/dev/null 2>&1; do sleep 0.1; done
$R EVAL "for i=1,1000000 do redis.call('RPUSH', KEYS[1], '{\"class\":\"c\",\"queue\":\"big\",\"args\":['..i..']}') end redis.call('SADD', KEYS[2], 'big') return 1" 2 resque:queue:big resque:queues >/dev/null
$R EVAL "for i=1,100000 do redis.call('RPUSH', KEYS[1], '{\"worker\":\"w'..i..'\",\"queue\":\"big\",\"payload\":{\"class\":\"c'..(i%10)..'\",\"queue\":\"big\",\"args\":['..i..']},\"exception\":\"E\",\"error\":\"boom\",\"backtrace\":[],\"failed_at\":\"Sat Dec 05 2026 10:00:00 GMT+0000 (Coordinated Universal Time)\"}') end return 1" 1 resque:failed >/dev/null
$R EVAL "for i=1,10000 do redis.call('SADD', KEYS[1], 'host:'..i..':big') redis.call('SET', 'resque:worker:host:'..i..':big', '{\"run_at\":\"2026-12-05T10:00:00.000Z\",\"queue\":\"big\",\"worker\":\"host:'..i..'\",\"payload\":{\"class\":\"c\",\"queue\":\"big\",\"args\":[1]}}') end return 1" 1 resque:workers >/dev/null
for i in $(seq 1 200); do echo "TQ.ENQUEUEIN resque $((i * 1000 + 100000)) big c [$i]"; done | $R >/dev/null
# Job metrics: 200 (queue, class) pairs holding every record the overview's
# graphs read (60 minutes, 23 hours, totals): copies of one real record.
$R TQ.ENQUEUE resque m c '[1]' >/dev/null
D=$($R TQ.POP resque mw m | sed -n 3p)
$R TQ.ACK resque mw "$D" >/dev/null
$R EVAL "local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)
  local v = redis.call('GET', 'resque:tq:m:'..minute..':[\"m\",\"c\"]') or redis.call('GET', 'resque:tq:m:'..(minute - 1)..':[\"m\",\"c\"]')
  for p = 1, 200 do
    local pair = '[\"q'..(p % 20)..'\",\"c'..p..'\"]'
    redis.call('SADD', 'resque:tq:metrics', pair)
    redis.call('SET', 'resque:tq:t:'..pair, v)
    for m = 1, 59 do redis.call('SET', 'resque:tq:m:'..(minute - m)..':'..pair, v, 'EX', 90000) end
    for h = 1, 23 do redis.call('SET', 'resque:tq:h:'..(math.floor(minute / 60) - h)..':'..pair, v, 'EX', 90000) end
  end return 1" 0 >/dev/null
"$TQ" --redis "redis://127.0.0.1:$RPORT" web --listen "127.0.0.1:$WPORT" 2>"$DIR/web.log" &
WEB_PID=$!
until curl -s -o /dev/null "http://127.0.0.1:$WPORT/static/style.css"; do sleep 0.1; done
echo "| page | best of 5, ms ($BUILD build) |"
echo "|---|---|"
# Searches: a text/class/args with no match looks at its whole window (1000
# records or jobs) per page; a common one stops at its first 50 matches.
for p in / "/queue?name=big" "/queue?name=big&offset=999950" "/queue?name=big&args=nomatch" \
  "/queue?name=big&class=nomatch&offset=999000" "/queue?name=big&args=7" /failed "/failed?class=c3" \
  "/failed?offset=99950" "/failed?q=nomatch" "/failed?q=nomatch&offset=99000" "/failed?q=boom" \
  /workers "/workers?offset=9950" /delayed /locks /periodic /api/live /metrics; do
  best=
  for _ in 1 2 3 4 5; do
    t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$WPORT$p")
    best=$(python3 -c "print(min(float('$t'), float('${best:-1e9}')))")
  done
  printf '| `%s` | %.1f |\n' "$p" "$(python3 -c "print($best * 1000)")"
done
