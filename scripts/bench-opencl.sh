#!/usr/bin/env bash
# hetmm's OpenCL platform beside PoCL, in one run (docs/PERFORMANCE.md, "OpenCL platform"):
# hetmm_opencl_bench over both platforms, then clpeak on each (its global bandwidth, compute,
# transfer bandwidth and kernel latency tests).
# Usage: scripts/bench-opencl.sh BUILD [--quick]
set -euo pipefail
build="$(cd "$1" && pwd)"
quick="${2:-}"
pocl=/etc/OpenCL/vendors/pocl.icd
[[ -f "$pocl" ]] || { echo "PoCL is not installed (apt-get install pocl-opencl-icd)"; exit 1; }
both="$(mktemp -d)"
trap 'rm -rf "$both"' EXIT
cp "$build/opencl-vendors/hetmm.icd" "$pocl" "$both/"
echo "== launch overhead and transfers (hetmm_opencl_bench $quick)"
OCL_ICD_VENDORS="$both" "$build/hetmm_opencl_bench" $quick
if command -v clpeak >/dev/null; then
  tests=(--global-bandwidth --compute-sp --transfer-bandwidth --kernel-latency)
  [[ -n "$quick" ]] && tests=(--transfer-bandwidth --kernel-latency)
  for icd in "$build/opencl-vendors/hetmm.icd" "$pocl"; do
    echo "== clpeak ${tests[*]} on $(basename "$icd" .icd)"
    OCL_ICD_VENDORS="$icd" clpeak "${tests[@]}" | sed -n '/Platform:/,$p'
  done
else
  echo "clpeak is not installed (apt-get install clpeak)"
fi
