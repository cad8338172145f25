#!/usr/bin/env bash
# CI: plain-CMake Release and Debug builds, as a user would configure them (no HETMM_WERROR),
# must build with no warning at all; then the Release build's tests run once.
# RELEASE_BUILD and DEBUG_BUILD name the build directories (build-release, build-debug); JOBS
# the parallel compile jobs (nproc). Each build starts clean (--clean-first) so that every
# file is compiled and every warning shows in its log (<dir>/build.log).
set -euo pipefail
cd "$(dirname "$0")/.."
release="${RELEASE_BUILD:-build-release}"
debug="${DEBUG_BUILD:-build-debug}"
jobs="${JOBS:-$(nproc)}"

build() {  # build TYPE DIR
  local type="$1" dir="$2"
  mkdir -p "$dir"
  echo "== $type build in $dir"
  if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" &&
         cmake --build "$dir" -j"$jobs" --clean-first; } > "$dir/build.log" 2>&1; then
    tail -n 50 "$dir/build.log"
    echo "FAILED: the $type build (log: $dir/build.log)" >&2
    return 1
  fi
  if grep -n -i 'warning:' "$dir/build.log"; then
    echo "FAILED: the $type build has warnings (above; log: $dir/build.log)" >&2
    return 1
  fi
  echo "   $type: built with no warnings"
}

build Release "$release"
build Debug "$debug"
cd "$release" && ctest --output-on-failure -j2 --timeout 300
