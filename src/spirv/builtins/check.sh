#!/bin/bash
# Checks that hetmm's built-in library resolves what OpenCL C kernels use.
#
#   src/spirv/builtins/check.sh [path/to/hetmm_builtins.bc]
#
# Without an argument it uses $HETMM_BUILTINS_BC, else the newest build*/spirv/hetmm_builtins.bc
# in the source tree, else it builds the library in a temporary directory with
# cmake/spirv_builtins.cmake (a small throwaway CMake project).
#
# For OpenCL C 2.0 and 1.2, check_kernel.cl goes the way a kernel goes (the commands of
# docs/spirv-compute.md §1):
#   clang-15 (spir64, -O2 -disable-llvm-passes -Dinline=) -> llvm-spirv-15 --spirv-max-version=1.0
#   -> spirv-val -> llvm-spirv-15 -r (OpenCL 1.2 built-in names, as readSpirv with OpenCL12)
#   -> llvm-link-15 --only-needed with the library -> llvm-nm-15 -u
# and the undefined symbols left are listed. Only hetmm's kernel-pass symbols (work-item
# functions, barrier) and libm functions may remain; anything else fails the check, as does a
# library that defines one of the kernel-pass symbols.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for tool in clang-15 llvm-spirv-15 llvm-link-15 llvm-nm-15 opt-15; do
  command -v "$tool" >/dev/null || { echo "check.sh: $tool not found" >&2; exit 2; }
done

# Symbols hetmm's kernel pass supplies: the library must not define them, kernels may use them.
pass_symbols=(
  _Z13get_global_idj _Z12get_local_idj _Z12get_group_idj _Z15get_global_sizej
  _Z14get_local_sizej _Z14get_num_groupsj _Z12get_work_dimv _Z17get_global_offsetj
  _Z23get_enqueued_local_sizej _Z20get_global_linear_idv _Z19get_local_linear_idv
  _Z7barrierj _Z18work_group_barrierj _Z18work_group_barrierj12memory_scope printf
)
# libm functions a library function might call (C names, float/double/long double forms).
libm_re='^(a?(sin|cos|tan)h?|atan2|exp(2|10|m1)?|log(2|10|1p|b)?|pow|sqrt|cbrt|fma|fmod|remainder|remquo|hypot|erfc?|[lt]gamma|ceil|floor|trunc|round|rint|nearbyint|ldexp|frexp|modf|nextafter|copysign|fabs|fmin|fmax|fdim|sincos|ilogb|scalbn)[fl]?(_r)?$'

# ---- The library -----------------------------------------------------------------------------
bc=${1:-${HETMM_BUILTINS_BC:-}}
if [ -z "$bc" ]; then
  bc=$(ls -t "$root"/build*/spirv/hetmm_builtins.bc 2>/dev/null | head -n 1 || true)
fi
if [ -z "$bc" ]; then
  echo "== building hetmm_builtins.bc in a temporary CMake project"
  mkdir -p "$tmp/proj/src/spirv" "$tmp/proj/cmake"
  ln -s "$here" "$tmp/proj/src/spirv/builtins"
  ln -s "$root/cmake/spirv_builtins.cmake" "$tmp/proj/cmake/spirv_builtins.cmake"
  cat >"$tmp/proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.22)
project(hetmm_builtins_check LANGUAGES NONE)
include(${PROJECT_SOURCE_DIR}/cmake/spirv_builtins.cmake)
EOF
  cmake -S "$tmp/proj" -B "$tmp/proj/build" >/dev/null
  cmake --build "$tmp/proj/build" --target hetmm_spirv_builtins -j 2 >/dev/null
  bc=$tmp/proj/build/spirv/hetmm_builtins.bc
fi
[ -f "$bc" ] || { echo "check.sh: no library at $bc" >&2; exit 2; }
echo "== library: $bc ($(stat -c %s "$bc") bytes)"

status=0
defined=$(llvm-nm-15 --defined-only "$bc" | awk '{print $NF}')
for s in "${pass_symbols[@]}"; do
  if grep -qx -- "$s" <<<"$defined"; then
    echo "FAIL: the library defines $s, which hetmm's kernel pass supplies"
    status=1
  fi
done
echo "   $(wc -l <<<"$defined") defined symbols, $(llvm-nm-15 -u "$bc" | wc -l) undefined:" \
     "$(llvm-nm-15 -u "$bc" | awk '{print $NF}' | tr '\n' ' ')"

# ---- The kernel, as OpenCL C 2.0 and 1.2 --------------------------------------------------
for std in CL2.0 CL1.2; do
  echo "== check_kernel.cl, -cl-std=$std"
  clang-15 -cl-std=$std -target spir64-unknown-unknown -O2 -Xclang -disable-llvm-passes \
           -Dinline= -emit-llvm -c "$here/check_kernel.cl" -o "$tmp/k.bc"
  llvm-spirv-15 --spirv-max-version=1.0 "$tmp/k.bc" -o "$tmp/k.spv"
  if command -v spirv-val >/dev/null; then spirv-val "$tmp/k.spv"; fi
  llvm-spirv-15 -r "$tmp/k.spv" -o "$tmp/k_rt.bc"
  before=$(llvm-nm-15 -u "$tmp/k_rt.bc" | wc -l)
  # The library is built for the host triple, the kernel is spir64 until the JIT retargets it:
  # llvm-link's warnings about that are expected.
  llvm-link-15 --only-needed "$tmp/k_rt.bc" "$bc" -o "$tmp/linked.bc" 2>"$tmp/link.err" ||
    { cat "$tmp/link.err"; exit 1; }
  grep -vE "Linking two modules of different (target triples|data layouts)|^$" "$tmp/link.err" || true
  opt-15 -passes=verify -disable-output "$tmp/linked.bc"
  llvm-dis-15 "$tmp/linked.bc" -o "$tmp/linked.ll"
  # A built-in whose definition does not match the translator's declaration (types, address
  # spaces) would be linked as a call through a bitcast of the function.
  mismatched=$(grep -oE 'call [^(]*bitcast \([^@]*@[A-Za-z0-9_.]+' "$tmp/linked.ll" | sed 's/.*@//' | sort -u || true)
  for s in $mismatched; do
    echo "   $s  <-- SIGNATURE MISMATCH (called through a bitcast)"
    status=1
  done
  undefined=$(llvm-nm-15 -u "$tmp/linked.bc" | awk '{print $NF}')
  echo "   undefined before linking: $before, after linking: $(grep -c . <<<"$undefined" || true)"
  while read -r s; do
    [ -n "$s" ] || continue
    if printf '%s\n' "${pass_symbols[@]}" | grep -qx -- "$s"; then
      echo "   $s (kernel pass)"
    elif [[ $s =~ $libm_re ]]; then
      echo "   $s (libm)"
    else
      echo "   $s  <-- UNRESOLVED"
      status=1
    fi
  done <<<"$undefined"
  echo "   atomicrmw/cmpxchg instructions in the linked module:" \
       "$(grep -cE '= (atomicrmw|cmpxchg) ' "$tmp/linked.ll" || true)"
done

if [ $status -eq 0 ]; then echo "== OK"; else echo "== FAILED"; fi
exit $status
