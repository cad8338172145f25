// Micro-costs of hetmm, each next to the bare operation it should be judged against, in one run
// (these machines are shared: compare ratios from the same run, not absolute times).
//
//   build/hetmm_micro_bench --benchmark_min_time=0.2
//
// Memcpy/N vs MigrateRoundTrip/N: explicit migration (in and out) against memcpy of the same
// bytes. CpuFaultBack vs BareUffdRoundTrip: bringing one 4 KiB page home on a CPU touch against a
// bare userfaultfd MISSING fault served by UFFDIO_COPY from a handler thread. KernelSum vs RawSum:
// the device MMU hit path (Thread::load) against a plain loop on the CPU.
#include <hetmm/hetmm.hpp>

#include "bare_uffd.hpp"

#include <benchmark/benchmark.h>

#include <cstring>
#include <sys/mman.h>
#include <vector>

namespace {

constexpr std::size_t kPage = 4096;

hetmm::Runtime& runtime() {
  static hetmm::Runtime rt([] {
    hetmm::Options o;
    o.workers = 1;
    o.device_memory = 512u << 20;
    return o;
  }());
  return rt;
}

void* map(std::size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  std::memset(p, 1, len);
  return p;
}

void Memcpy(benchmark::State& state) {
  auto len = static_cast<std::size_t>(state.range(0));
  void* a = map(len);
  void* b = map(len);
  for (auto _ : state) {
    std::memcpy(b, a, len);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * len));
  ::munmap(a, len);
  ::munmap(b, len);
}
BENCHMARK(Memcpy)->Arg(16 << 20)->Arg(64 << 20)->UseRealTime();

// Bytes processed counts both directions, as memcpy's would for a copy there and back.
void MigrateRoundTrip(benchmark::State& state) {
  auto len = static_cast<std::size_t>(state.range(0));
  auto& dev = runtime().device(0);
  void* a = map(len);
  for (auto _ : state) {
    dev.migrate_to_device(a, len);
    dev.migrate_to_system(a, len);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * len));
  ::munmap(a, len);
}
BENCHMARK(MigrateRoundTrip)->Arg(16 << 20)->Arg(64 << 20)->UseRealTime();

void CpuFaultBack(benchmark::State& state) {
  auto& dev = runtime().device(0);
  auto* p = static_cast<volatile char*>(map(kPage));
  for (auto _ : state) {
    state.PauseTiming();
    dev.migrate_to_device(const_cast<char*>(p), kPage);
    state.ResumeTiming();
    p[0] = p[0] + 1;  // the touch brings the page home
  }
  ::munmap(const_cast<char*>(p), kPage);
}
BENCHMARK(CpuFaultBack)->UseRealTime();

// The same round trip with nothing of hetmm: a registered page, zapped, touched, served by a
// handler thread with UFFDIO_COPY (tools/bench/bare_uffd.hpp, shared with `hetmm bench`).
void BareUffdRoundTrip(benchmark::State& state) {
  hetmm::bench::BareUffdPage page;
  if (!page.ok()) {
    state.SkipWithError(page.error().c_str());
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    page.zap();
    state.ResumeTiming();
    page.touch();
  }
}
BENCHMARK(BareUffdRoundTrip)->UseRealTime();

constexpr std::size_t kElems = 1 << 20;

void KernelSum(benchmark::State& state) {
  auto& dev = runtime().device(0);
  std::vector<std::uint32_t> v(kElems, 3);
  dev.migrate_to_device(v.data(), v.size() * 4);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    const std::uint32_t* p = v.data();
    std::uint64_t* out = &sum;
    dev.launch(1, [p, out](hetmm::Thread& t) {
      std::uint64_t s = 0;
      for (std::size_t i = 0; i < kElems; ++i) s += t.load(p + i);
      *out = s;
    });
    dev.synchronize();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kElems));
  dev.migrate_to_system(v.data(), v.size() * 4);
}
BENCHMARK(KernelSum)->UseRealTime();

void RawSum(benchmark::State& state) {
  std::vector<std::uint32_t> v(kElems, 3);
  for (auto _ : state) {
    const volatile std::uint32_t* p = v.data();  // one load per element, as Thread::load does
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < kElems; ++i) s += p[i];
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kElems));
}
BENCHMARK(RawSum)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
