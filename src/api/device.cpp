// hetmm::Device: the dmirror-like operations, argument checking and error translation.
#include "api/runtime_impl.hpp"

#include "os/arena.hpp"
#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <cstdio>
#include <cstring>
#include <new>

namespace hetmm {

using detail::check_range;
using detail::describe;

namespace {

// Staging memory for device reads and writes, in runtime memory: the copy into the program's
// buffer happens after the state lock is dropped, so that buffer may itself be on a device.
// Devices never map runtime memory (os/proc_maps.cpp marks it special), so nothing needs
// tearing down when it goes. Small buffers come from the runtime's one-slot cache: a fresh
// mapping per call costs an mmap and an munmap with its TLB-flush IPIs.
class Bounce {
 public:
  // A length the host cannot stage is out_of_memory, as the dmirror ioctls' bounce vmalloc
  // failing is ENOMEM (not a std::bad_alloc escaping the API).
  Bounce(detail::RuntimeImpl* rt, const char* what, std::size_t index, const void* addr,
         std::size_t len)
      : rt_(rt), len_(os::page_up(len)), p_(take(what, index, addr, len)) {}
  ~Bounce() { rt_->give_staging(p_, len_); }
  Bounce(const Bounce&) = delete;
  Bounce& operator=(const Bounce&) = delete;
  void* get() const { return p_; }

 private:
  void* take(const char* what, std::size_t index, const void* addr, std::size_t len) {
    try {
      return rt_->take_staging(len_);
    } catch (const std::bad_alloc&) {
      throw Error(Errc::out_of_memory,
                  describe(what, index, addr, len) + ": no host memory to stage the transfer");
    }
  }
  detail::RuntimeImpl* rt_;
  std::size_t len_;
  void* p_;
};

std::string page_reason(Errc code, std::uintptr_t page) {
  char buf[128];
  const char* why = code == Errc::fault        ? "is not mapped, or has no read access"
                    : code == Errc::permission ? "is read-only"
                    : code == Errc::not_found  ? "holds nothing that can migrate"
                    : code == Errc::out_of_memory ? "does not fit in device memory"
                    : code == Errc::busy       ? "kept changing while being resolved"
                                               : "cannot be served";
  std::snprintf(buf, sizeof buf, ": page 0x%lx %s", static_cast<unsigned long>(page), why);
  return buf;
}

// Options::max_oversubscription refused the request: say so with the figures.
std::string over_limit_reason(detail::RuntimeImpl* rt, std::size_t index, std::uintptr_t page) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                ": page 0x%lx would take device %zu's working set past "
                "Options::max_oversubscription (%zu bytes mapped, limit %zu bytes, device "
                "memory %zu bytes)",
                static_cast<unsigned long>(page), index,
                rt->device(index).mapped_pages() * os::kPageSize,
                rt->mirror().mapping_limit() * os::kPageSize, rt->device(index).capacity_bytes());
  return buf;
}

std::size_t pages_of(const void* addr, std::size_t len) {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  return (os::page_up(a + len) - os::page_down(a)) / os::kPageSize;
}

constexpr int kMaxRounds = 64;

// Runs the read/write loop: copy through existing device mappings, else one fault round for
// the rest of the range, then try again (the dmirror READ/WRITE ioctls' loop).
AccessResult device_access(detail::RuntimeImpl* rt, std::size_t index, const char* what,
                           const void* addr, void* bounce, std::size_t len, bool write) {
  auto& dev = rt->device(index);
  AccessResult result;
  result.pages = pages_of(addr, len);
  auto start = reinterpret_cast<std::uintptr_t>(addr);
  auto* req = os::arena_new<device::sim::FaultRequest>();
  struct Free {
    device::sim::FaultRequest* r;
    ~Free() { os::arena_delete(r); }
  } free_req{req};
  for (int round = 0;; ++round) {
    std::uintptr_t missing = 0;
    core::Status st;
    if (rt->mirror().device_copy(index, start, len, bounce, write, &missing, &st)) break;
    if (st.failed)
      throw Error(st.code, describe(what, index, addr, len) + page_reason(st.code, st.addr));
    if (round == kMaxRounds)
      throw Error(Errc::busy, describe(what, index, addr, len) +
                                  ": mappings kept changing; gave up after 64 fault rounds");
    req->reset(missing, os::page_up(start + len), write);
    dev.fault_and_wait(req);
    ++result.faults;
    dev.counters().fault_rounds.fetch_add(1, std::memory_order_relaxed);
    if (req->error != 0) {
      auto code = static_cast<Errc>(req->error - 1);
      if (req->over_limit)
        throw Error(code, describe(what, index, addr, len) +
                              over_limit_reason(rt, index, req->error_addr));
      throw Error(code, describe(what, index, addr, len) + page_reason(code, req->error_addr));
    }
  }
  return result;
}

}  // namespace

std::size_t Device::memory_capacity() const { return rt_->device(index_).capacity_bytes(); }
std::size_t Device::memory_used() const { return rt_->device(index_).used_bytes(); }

AccessResult Device::read(const void* addr, void* out, std::size_t len) {
  rt_->check_usable("read");
  check_range("read", index_, addr, len);
  if (out == nullptr)
    throw Error(Errc::invalid_argument, describe("read", index_, addr, len) + ": null output buffer");
  Bounce bounce(rt_, "read", index_, addr, len);
  AccessResult r = device_access(rt_, index_, "read", addr, bounce.get(), len, false);
  std::memcpy(out, bounce.get(), len);  // may fault a page of `out` home: no lock is held
  return r;
}

AccessResult Device::write(void* addr, const void* in, std::size_t len) {
  rt_->check_usable("write");
  check_range("write", index_, addr, len);
  if (in == nullptr)
    throw Error(Errc::invalid_argument, describe("write", index_, addr, len) + ": null input buffer");
  Bounce bounce(rt_, "write", index_, addr, len);
  std::memcpy(bounce.get(), in, len);
  return device_access(rt_, index_, "write", addr, bounce.get(), len, true);
}

namespace {
using MigrateFn = std::size_t (core::Mirror::*)(std::size_t, std::uintptr_t, std::uintptr_t,
                                               core::Status*);
AccessResult migrate(detail::RuntimeImpl* rt, std::size_t index, const char* what,
                     MigrateFn fn, const void* addr, std::size_t len) {
  rt->check_usable(what);
  check_range(what, index, addr, len);
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  core::Status st;
  std::size_t pages = (rt->mirror().*fn)(index, os::page_down(a), os::page_up(a + len), &st);
  if (st.failed && st.over_limit)
    throw Error(st.code, describe(what, index, addr, len) + over_limit_reason(rt, index, st.addr));
  if (st.failed)
    throw Error(st.code, describe(what, index, addr, len) + page_reason(st.code, st.addr));
  return AccessResult{pages, 0};
}
}  // namespace

AccessResult Device::migrate_to_device(const void* addr, std::size_t len) {
  return migrate(rt_, index_, "migrate_to_device", &core::Mirror::migrate_to_device, addr, len);
}

AccessResult Device::migrate_to_system(const void* addr, std::size_t len) {
  return migrate(rt_, index_, "migrate_to_system", &core::Mirror::migrate_to_system, addr, len);
}

std::vector<PageState> Device::snapshot(const void* addr, std::size_t len) {
  rt_->check_usable("snapshot");
  check_range("snapshot", index_, addr, len);
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::size_t n = pages_of(addr, len);
  // Beyond 2^32 pages (16 TiB of addresses, 64 GiB of answers) nobody can hold the answer;
  // saying so beats asking the allocator (sanitizer allocators abort instead of throwing).
  constexpr std::size_t kMaxSnapshotPages = std::size_t{1} << 32;
  if (n > kMaxSnapshotPages)
    throw Error(Errc::out_of_memory, describe("snapshot", index_, addr, len) + ": " +
                                         std::to_string(n) + " pages is more than a snapshot "
                                         "can hold (2^32)");
  std::vector<PageState> out;
  try {
    out.resize(n);
  } catch (const std::bad_alloc&) {
    throw Error(Errc::out_of_memory, describe("snapshot", index_, addr, len) +
                                         ": no host memory for " + std::to_string(n) +
                                         " page states");
  }
  rt_->mirror().snapshot(os::page_down(a), n, out.data());
  return out;
}

void Device::launch_erased(std::size_t threads, std::unique_ptr<detail::KernelBase> kernel,
                           Completion done) {
  rt_->check_usable("launch");
  if (detail::tls_worker != nullptr)
    throw Error(Errc::invalid_argument, "launch: not callable from inside a kernel");
  if (threads == 0) {
    kernel.reset();
    if (done) done(nullptr);
    return;
  }
  rt_->mirror().before_launch(index_);
  rt_->device(index_).launch(threads, std::move(kernel), std::move(done));
}

void Device::synchronize() {
  rt_->check_usable("synchronize");
  if (detail::tls_worker != nullptr)
    throw Error(Errc::invalid_argument, "synchronize: not callable from inside a kernel");
  rt_->device(index_).synchronize();
}

void Device::release() {
  rt_->check_usable("release");
  if (detail::tls_worker != nullptr)
    throw Error(Errc::invalid_argument, "release: not callable from inside a kernel");
  rt_->mirror().release_device(index_);
}

DeviceStats Device::stats() const {
  DeviceStats s = rt_->device(index_).stats();
  auto& c = rt_->mirror().counters(index_);
  s.pages_to_device = c.pages_to_device.load();
  s.pages_to_system = c.pages_to_system.load();
  s.blocks_moved_in = c.blocks_moved_in.load();
  s.blocks_moved_out = c.blocks_moved_out.load();
  s.cpu_faults = c.cpu_faults.load();
  s.pages_evicted = c.pages_evicted.load();
  s.link_transfers = c.link_transfers.load();
  s.link_bytes = c.link_bytes.load();
  s.throttle_seconds = static_cast<double>(c.throttle_ns.load()) * 1e-9;
  // The link model (LinkProfile): applied when asked, so the hot paths only count.
  s.modeled_seconds = rt_->mirror().modeled_ns(index_) * 1e-9;
  return s;
}

}  // namespace hetmm
