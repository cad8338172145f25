#!/usr/bin/env bash
# clinfo, the tool users run first, finds the platform through the loader (OCL_ICD_VENDORS set by
# CTest) and shows what hetmm offers that its peers do not: fine-grain system SVM and an IL.
set -euo pipefail
command -v clinfo >/dev/null || { echo "clinfo not installed (apt-get install clinfo)"; exit 77; }
out="$(clinfo)"
fail=0
expect() {
  if ! grep -Eq "$1" <<< "$out"; then echo "clinfo: missing: $1"; fail=1; fi
}
expect 'Platform Name +hetmm'
expect 'Platform Version +OpenCL 3\.0 hetmm'
expect 'Device Name +hetmm sim device 0'
expect 'Device Version +OpenCL 3\.0 hetmm \(device 0: [0-9]+ MiB device memory, [0-9]+ workers, policy [a-z_]+, link [a-z0-9_]+, tracking'
expect 'Fine-grained system sharing +Yes'
expect 'Fine-grained buffer sharing +Yes'
expect 'IL version +SPIR-V_1\.0'
expect 'Image support +No'
expect 'clCreateContext\(NULL, \.\.\.\) \[default\] +Success \[HETMM\]'
if (( fail )); then echo "$out"; exit 1; fi
echo "clinfo: hetmm platform listed, fine-grain system SVM and SPIR-V IL shown"
