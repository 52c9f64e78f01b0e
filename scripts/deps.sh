#!/bin/sh
# Installs what building and testing tq needs on a fresh Debian machine:
# redis-server (with redis-cli/redis-benchmark) and libclang for bindgen.
# Skips anything already present. Pass --node to also install the pinned npm
# packages used by the interop tests and the Node package (clients/node), redis-py (pinned, into
# tests/interop/py), --bench for what the benchmark scripts use besides (python3).
set -eu
cd "$(dirname "$0")/.."

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
if { [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--node" ]; } && ! command -v python3 >/dev/null 2>&1; then
  need="$need python3"
fi
if [ "${1:-}" = "--node" ] && ! python3 -m pip --version >/dev/null 2>&1; then
  need="$need python3-pip"
fi
if [ -n "$need" ]; then
  echo "deps: installing$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ "${1:-}" = "--node" ]; then
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
  if [ ! -f tests/interop/py/redis-8.2.0.dist-info/METADATA ]; then
    echo "deps: installing redis-py (pinned) for the lost-reply tests"
    rm -rf tests/interop/py
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target tests/interop/py redis==8.2.0
  fi
fi
