# Quick start: `make demo` runs the demo, `make test` runs every test (normal, ASan+UBSan, TSan)
# and a short libFuzzer run (`make fuzz`).
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
RELEASE_BUILD ?= build-release
DEBUG_BUILD ?= build-debug
FUZZ_SECONDS ?= 30
JOBS       ?= $(shell nproc)
CMAKE_GEN  ?= -G "Unix Makefiles"

.PHONY: all deps build build-asan build-tsan build-fuzz demo test test-main test-load test-asan test-tsan fuzz install clean info bench \
        bench-spirv bench-opencl build-types

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHETMM_WERROR=ON
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DHETMM_SANITIZE=address,undefined \
	  -DHETMM_WERROR=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)

build-tsan: deps
	cmake -S . -B $(TSAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHETMM_SANITIZE=thread -DHETMM_BUILD_TOOLS=OFF \
	  -DHETMM_SPIRV=OFF -DHETMM_WERROR=ON
	cmake --build $(TSAN_BUILD) -j$(JOBS)

# The libFuzzer target (clang 14, -fsanitize=fuzzer,address,undefined), tests and tools left out.
build-fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHETMM_FUZZ=ON -DHETMM_SPIRV=OFF \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_ASM_COMPILER=clang++-14 -DHETMM_WERROR=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

# The hetmm demo, then an unmodified OpenCL program on hetmm's device through the system's ICD
# loader, with the report of what its memory did (HETMM_REPORT, docs/OPENCL.md).
demo: build
	$(BUILD)/hetmm demo
	@echo
	OCL_ICD_VENDORS=$(abspath $(BUILD))/opencl-vendors HETMM_REPORT=1 $(BUILD)/hetmm-example-opencl-saxpy

info: build
	$(BUILD)/hetmm info

# The workload benchmark of issue 4, quick sizes (a few minutes on 2 cores); not part of `test`.
# The table and progress go to the terminal, the JSON and the chart to $(BUILD).
bench: build
	$(BUILD)/hetmm bench --quick --json --svg $(BUILD)/bench.svg > $(BUILD)/bench.json

# The SPIR-V speed benchmark: the same OpenCL C kernels on PoCL and on hetmm (data in system
# memory, MMU on, and a -mmu=off build for the MMU's own cost); about 2 minutes, not part of `test`.
bench-spirv: build
	$(BUILD)/hetmm_spirv_bench

# The OpenCL platform beside PoCL in one run: launch overhead, transfer bandwidth (ours), then
# clpeak on each (scripts/bench-opencl.sh); several minutes, not part of `test`.
bench-opencl: build
	./scripts/bench-opencl.sh $(BUILD)

test: test-main test-load test-asan test-tsan fuzz

# The load stage (scripts/test-under-load.sh): the concurrency-sensitive tests repeated for
# LOAD_SECONDS, both tracking modes, while `hetmm load` churns memory beside them; then
# `hetmm stress` in each mode under the same load.
LOAD_SECONDS ?= 150
test-load: build
	./scripts/test-under-load.sh $(BUILD) $(LOAD_SECONDS)

test-main: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 300

# detect_leaks=0: LeakSanitizer cannot run under ptrace-based sandboxes; ASan still checks
# every access. The runtime's own SIGSEGV handler chains to ASan's.
test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600

# ThreadSanitizer over the same suite (the library and the tests; the CLI is left out). SPIR-V
# kernels are left out too (HETMM_SPIRV=OFF): LLVM, PoCL and JIT-compiled code carry no TSan
# instrumentation. Their worker protocol is the one the Thread API tests exercise here.
test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600

# Fuzzes hetmm's API for FUZZ_SECONDS (HETMM_FUZZ_TRACKING=mprotect|userfaultfd picks the
# tracking mode). The seeds in fuzz/corpus are only read: new inputs go to a fresh
# $(FUZZ_BUILD)/corpus, crash inputs to $(FUZZ_BUILD)/artifacts/. Leak checking is off as in
# test-asan; the fuzzer checks device memory is returned after every input itself.
fuzz: build-fuzz
	rm -rf $(FUZZ_BUILD)/corpus && mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	cd $(FUZZ_BUILD) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ./hetmm_api_fuzzer -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
	    -detect_leaks=0 -print_final_stats=1 -artifact_prefix=artifacts/ \
	    corpus $(CURDIR)/fuzz/corpus

# Plain-CMake Release and Debug builds as a user would configure them (no -Werror), each from
# clean, failing on any warning; then the Release build's tests (CI runs it after `test`).
build-types: deps
	RELEASE_BUILD=$(RELEASE_BUILD) DEBUG_BUILD=$(DEBUG_BUILD) JOBS=$(JOBS) ./scripts/ci-build-types.sh

# Installs into PREFIX (/usr/local) and registers the OpenCL platform where the system's loader
# looks, /etc/OpenCL/vendors (cmake --install writes PREFIX/etc/OpenCL/vendors/hetmm.icd, which
# is that folder only for the /usr prefix).
PREFIX ?= /usr/local
SUDO   ?= $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
	@icd="$(PREFIX)/etc/OpenCL/vendors/hetmm.icd"; \
	if [ -f "$$icd" ] && [ "$$(readlink -f "$$icd")" != /etc/OpenCL/vendors/hetmm.icd ]; then \
	  echo "registering $$icd in /etc/OpenCL/vendors"; \
	  $(SUDO) install -m 644 -D "$$icd" /etc/OpenCL/vendors/hetmm.icd; \
	fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(RELEASE_BUILD) $(DEBUG_BUILD)
