#!/usr/bin/env bash
# Installs what hetmm needs to build and test, from Debian 12 packages, only if missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
[ -f /usr/include/gmock/gmock.h ] || need+=(libgmock-dev)
[ -f /usr/include/benchmark/benchmark.h ] || need+=(libbenchmark-dev)
[ -f /usr/include/CLI/CLI.hpp ] || need+=(libcli11-dev)
# The sanitizer runtimes ship with g++ (libasan8, libubsan1); check them explicitly.
ls /usr/lib/gcc/x86_64-linux-gnu/*/libasan.so >/dev/null 2>&1 || need+=(libasan8)
ls /usr/lib/gcc/x86_64-linux-gnu/*/libubsan.so >/dev/null 2>&1 || need+=(libubsan1)
ls /usr/lib/gcc/x86_64-linux-gnu/*/libtsan.so >/dev/null 2>&1 || need+=(libtsan2)
# `make fuzz`: clang 14 and its libFuzzer runtime (a separate package in Debian 12).
command -v clang++-14 >/dev/null 2>&1 || need+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
  need+=(libclang-rt-14-dev)

# SPIR-V kernels (issue 5): LLVM 15 and the SPIR-V translator to compile them, SPIRV-Tools to
# validate them, libclc for the math built-ins, PoCL (through the OpenCL ICD loader) to check them.
[ -x /usr/bin/llvm-config-15 ] || need+=(llvm-15-dev)
command -v clang-15 >/dev/null 2>&1 || need+=(clang-15)
command -v llvm-spirv-15 >/dev/null 2>&1 || need+=(llvm-spirv-15)
[ -f /usr/include/LLVMSPIRVLib/LLVMSPIRVLib.h ] || need+=(libllvmspirvlib-15-dev)
[ -f /usr/include/spirv-tools/libspirv.hpp ] || need+=(spirv-tools)
[ -f /usr/lib/clc/spirv64-mesa3d-.spv ] || need+=(libclc-15)
[ -f /usr/include/CL/cl.h ] || need+=(opencl-headers)
ls /usr/lib/x86_64-linux-gnu/libOpenCL.so >/dev/null 2>&1 || need+=(ocl-icd-opencl-dev)
[ -f /etc/OpenCL/vendors/pocl.icd ] || need+=(pocl-opencl-icd)
# The OpenCL platform (issue 13): the clients its tests run through the ICD loader.
command -v clinfo >/dev/null 2>&1 || need+=(clinfo)
/usr/bin/python3 -c 'import pyopencl, numpy' >/dev/null 2>&1 || need+=(python3-pyopencl python3-numpy)
command -v clpeak >/dev/null 2>&1 || need+=(clpeak)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
