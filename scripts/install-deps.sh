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

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
