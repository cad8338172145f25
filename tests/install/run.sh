#!/usr/bin/env bash
# Installs the build tree into a scratch prefix and builds and runs a consumer against it.
set -euo pipefail
build="$1"; src="$(cd "$(dirname "$0")" && pwd)"
prefix="$(mktemp -d)"; work="$(mktemp -d)"
trap 'rm -rf "$prefix" "$work"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -S "$src" -B "$work" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_RPATH="$prefix/lib" > /dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" cmake -S "$src" -B "$work" > /dev/null
cmake --build "$work" -j2 > /dev/null
# No LD_LIBRARY_PATH: the consumers find the installed libhetmm by their build-tree RPATH.
env -u LD_LIBRARY_PATH "$work/consumer"
env -u LD_LIBRARY_PATH "$work/consumer_pc"
echo "installed hetmm: find_package and pkg-config consumers ran"
