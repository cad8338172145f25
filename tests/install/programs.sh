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
# The OpenCL platform: the install registered hetmm.icd under PREFIX/etc/OpenCL/vendors, naming
# the installed libhetmm_opencl by absolute path; an unmodified OpenCL program finds it through
# the system's loader.
icd="$prefix/etc/OpenCL/vendors/hetmm.icd"
if [ -f "$build/libhetmm_opencl.so.0" ]; then
  echo "== OpenCL: $icd"
  if [ ! -f "$icd" ] || [ "$(cat "$icd")" != "$(ls -d "$prefix"/lib*/libhetmm_opencl.so.0)" ]; then
    echo "FAILED: $icd missing or not naming the installed library: $(cat "$icd" 2>/dev/null)" >&2
    failed=1
  elif ! env -u LD_LIBRARY_PATH OCL_ICD_VENDORS="$prefix/etc/OpenCL/vendors" \
         "$prefix/$bindir/hetmm-example-opencl-saxpy" 100000; then
    echo "FAILED: the installed OpenCL example did not run on the installed platform" >&2
    failed=1
  fi
fi
if [ "$failed" -ne 0 ]; then exit 1; fi
echo "installed hetmm and $# example(s) ran from $prefix/$bindir"
