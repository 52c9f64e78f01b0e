#!/bin/bash
# `make dist`: the release module and `tq` binary, stripped, with the
# config snippet, the Dockerfile example and their SHA256SUMS, in
# target/dist/tq-<version>-linux-<arch>.tar.gz. Prints each file's size and
# the glibc floor (the highest GLIBC_x.y symbol version the binaries need).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(uname -m)
name="tq-$version-linux-$arch"
out=target/dist/$name

cargo build --release --workspace
# The module built with profile-guided optimization where it can be
# (scripts/pgo.sh), else the plain release build.
if ! so=$(scripts/pgo.sh); then
  so=target/release/libtq.so
  echo "dist: the plain release build of the module (no profile-guided build, see above)" >&2
fi
rm -rf "$out" "$out.tar.gz"
mkdir -p "$out"
# The release profile keeps line tables for profiling; a deployment
# needs none of it.
strip --strip-unneeded -o "$out/libtq.so" "$so"
strip --strip-unneeded -o "$out/tq" target/release/tq
cp dist/tq.conf dist/Dockerfile "$out/"
(cd "$out" && sha256sum libtq.so tq tq.conf Dockerfile > SHA256SUMS)
tar -C target/dist -czf "$out.tar.gz" "$name"
(cd target/dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

floor=$(objdump -T "$out/libtq.so" "$out/tq" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sort -uV | tail -1)
echo
echo "target/dist/$name.tar.gz ($(du -h "$out.tar.gz" | cut -f1)):"
ls -l "$out" | awk 'NR > 1 { printf "  %-12s %9d bytes\n", $9, $5 }'
echo "glibc floor: ${floor#GLIBC_} (the highest GLIBC_ symbol version libtq.so and tq need)"
