# Quick start: `make demo` runs the demo, `make test` runs every test (normal, ASan+UBSan, TSan).
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_GEN  ?= -G "Unix Makefiles"

.PHONY: all deps build build-asan build-tsan demo test test-main test-asan test-tsan install clean info

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DHETMM_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j$(JOBS)

build-tsan: deps
	cmake -S . -B $(TSAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHETMM_SANITIZE=thread -DHETMM_BUILD_TOOLS=OFF
	cmake --build $(TSAN_BUILD) -j$(JOBS)

demo: build
	$(BUILD)/hetmm demo

info: build
	$(BUILD)/hetmm info

test: test-main test-asan test-tsan

test-main: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 300

# detect_leaks=0: LeakSanitizer cannot run under ptrace-based sandboxes; ASan still checks
# every access. The runtime's own SIGSEGV handler chains to ASan's.
test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600

# ThreadSanitizer over the same suite (the library and the tests; the CLI is left out).
test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
