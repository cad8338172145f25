#!/usr/bin/env bash
# Installs the build tree into a scratch prefix and runs the installed programs from there
# without LD_LIBRARY_PATH: `hetmm info` and each example, which find libhetmm by their RPATH.
# Usage: programs.sh BUILD_DIR BINDIR [EXAMPLE_PROGRAM...]   (BINDIR relative to the prefix)
set -euo pipefail
build="$1"; bindir="$2"; shift 2
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
failed=0
run() {
  echo "== $*"
  # The libhetmm it loads must be the installed one, not one on the system or in the build tree.
  if command -v ldd > /dev/null; then
    local libs
    libs="$(env -u LD_LIBRARY_PATH ldd "$1" || true)"
    if ! grep -qF " => $prefix/" <<< "$(grep 'libhetmm\.so' <<< "$libs")"; then
      echo "FAILED: $1 does not load libhetmm from $prefix:" >&2
      echo "$libs" >&2
      failed=1
      return
    fi
  fi
  if ! env -u LD_LIBRARY_PATH "$@"; then
    echo "FAILED: $*" >&2
    failed=1
  fi
}
run "$prefix/$bindir/hetmm" info
for program in "$@"; do
  run "$prefix/$bindir/$program"
done
if [ "$failed" -ne 0 ]; then exit 1; fi
echo "installed hetmm and $# example(s) ran from $prefix/$bindir"
