// libFuzzer target over hetmm's API: each input is a byte-coded program of the differential
// tester (tools/stress): its bytes choose the slots and every operation of up to kMaxSteps
// steps (CPU loads and stores, device reads and writes, kernels, migrations, mprotect, munmap,
// mremap, madvise...), run on one process-wide runtime and compared with the model of plain
// memory. A divergence is printed with the program and aborts, so that libFuzzer saves the
// input. `make fuzz` runs it briefly; HETMM_FUZZ_TRACKING=mprotect|userfaultfd picks the
// tracking mode (default: automatic).
#include "stress.hpp"

#include <hetmm/hetmm.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

namespace {

using namespace hetmm;

constexpr std::size_t kMaxSteps = 64;

stress::Shape shape() {
  stress::Shape s;
  s.slots = 6;
  s.devices = 2;
  s.threads = 2;
  s.fork = false;  // no fork under libFuzzer
  return s;
}

Options options() {
  Options o;
  o.devices = 2;
  o.device_memory = 1u << 20;  // small: the slots (up to 6 x 513 pages) oversubscribe it
  o.workers = 2;
  const char* t = std::getenv("HETMM_FUZZ_TRACKING");
  if (t == nullptr || *t == '\0' || std::strcmp(t, "automatic") == 0) {
    o.tracking = Tracking::automatic;
  } else if (std::strcmp(t, "mprotect") == 0) {
    o.tracking = Tracking::mprotect;
  } else if (std::strcmp(t, "userfaultfd") == 0) {
    o.tracking = Tracking::userfaultfd;
  } else {
    std::fprintf(stderr, "HETMM_FUZZ_TRACKING=%s: expected mprotect, userfaultfd or automatic\n", t);
    std::exit(2);
  }
  return o;
}

struct Fuzz {
  Options opts = options();
  Runtime rt{opts};
  stress::ThreadPool pool{shape().threads};
  // As in `hetmm stress`: slots of up to 513 pages each may not fit, so migrations may fail.
  bool oom_possible = opts.device_memory < shape().slots * 513 * stress::kPage;
  Fuzz() {
    std::fprintf(stderr, "hetmm_api_fuzzer: %s tracking, hooks %s\n", to_string(rt.tracking()),
                 rt.hooks_active() ? "active" : "NOT active");
  }
};

Fuzz* start() {
  try {
    return new Fuzz;
  } catch (const Error& e) {  // e.g. HETMM_FUZZ_TRACKING=userfaultfd where it is refused
    std::fprintf(stderr, "hetmm_api_fuzzer: no runtime: %s\n", e.what());
    std::exit(2);
  }
}

Fuzz& fuzz() {
  static Fuzz* f = start();  // never destroyed: libFuzzer may exit from any thread
  return *f;
}

// Every device's memory freed; returned device memory may follow userfaultfd events that are
// handled just after the munmap that raised them: wait a little for it.
std::size_t release_devices(Runtime& rt) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    std::size_t used = 0;
    for (std::size_t d = 0; d < rt.device_count(); ++d) {
      rt.device(d).release();
      used += rt.device(d).memory_used();
    }
    if (used == 0 || std::chrono::steady_clock::now() > deadline) return used;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Fuzz& f = fuzz();
  stress::ByteChooser chooser(data, size);
  stress::Program program;
  stress::Counters counters;
  std::optional<stress::Divergence> d = stress::run_generated(
      f.rt, chooser, shape(), kMaxSteps, f.oom_possible, f.pool, &program, counters);
  std::size_t used = release_devices(f.rt);
  if (!d && used != 0)
    d = stress::Divergence{program.steps.size(), stress::Op{},
                           "device memory not returned after the program: " +
                               std::to_string(used) + " bytes"};
  if (d) {
    std::fprintf(stderr,
                 "hetmm_api_fuzzer: divergence (%s tracking), step %zu: %s\n  %s\n%s",
                 to_string(f.rt.tracking()), d->step, stress::describe(d->op).c_str(),
                 d->what.c_str(), stress::format(program).c_str());
    std::abort();
  }
  return 0;
}
