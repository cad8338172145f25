#include "world.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hetmm::stress {

void Counters::add(const Counters& o) {
  for (std::size_t i = 0; i < ops.size(); ++i) ops[i] += o.ops[i];
  for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  skipped += o.skipped;
  steps += o.steps;
}

// ---------------------------------------------------------------------------------------------
ThreadPool::ThreadPool(unsigned n) {
  for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run(std::vector<std::function<void()>>& jobs) {
  std::unique_lock lock(mutex_);
  jobs_ = &jobs;
  pending_ = static_cast<unsigned>(jobs.size());
  ++generation_;
  start_.notify_all();
  done_.wait(lock, [&] { return pending_ == 0; });
  jobs_ = nullptr;
}

void ThreadPool::main(unsigned index) {
  std::uint64_t seen = 0;
  for (;;) {
    std::function<void()>* job = nullptr;
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      // jobs_ is null once the step is over: a thread with no job there may wake late.
      if (jobs_ != nullptr && index < jobs_->size()) job = &(*jobs_)[index];
    }
    if (job == nullptr) continue;
    (*job)();
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) done_.notify_all();
  }
}

// ---------------------------------------------------------------------------------------------
struct World::Expect {
  bool skip = false;          // the model refuses to run it (it would crash the tester)
  bool ok = true;             // success allowed
  std::uint32_t codes = 0;    // errors allowed (bit per Errc)
  void allow(Errc c) { codes |= 1u << static_cast<unsigned>(c); }
  void only(Errc c) {
    ok = false;
    codes = 0;
    allow(c);
  }
};

struct World::Outcome {
  bool ok = true;
  Errc code = Errc::invalid_argument;
  std::string message;
  std::vector<std::byte> data;  // what a read returned
  std::byte* new_addr = nullptr;
  int child_status = 0;
  bool reserved = false;  // munmap: the hole was kept
};

World::World(Runtime& rt, const std::vector<std::pair<SlotKind, std::uint32_t>>& slots,
             bool oom_possible, bool fork)
    : rt_(rt) {
  model_.devices = rt.device_count();
  model_.oom_possible = oom_possible;
  model_.fork = fork;
  model_.slots.resize(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i)
    map_slot(model_.slots[i], slots[i].first, slots[i].second);
}

World::~World() {
  for (auto& s : model_.slots) unmap_slot(s);
}

void World::map_slot(SlotModel& s, SlotKind kind, std::size_t pages) {
  s.kind = kind;
  s.pages = pages;
  s.fd = -1;
  int flags = kind == SlotKind::private_anon ? MAP_PRIVATE | MAP_ANONYMOUS
              : kind == SlotKind::shared_anon ? MAP_SHARED | MAP_ANONYMOUS
                                              : MAP_SHARED;
  if (kind == SlotKind::shared_file) {
    s.fd = ::memfd_create("hetmm-stress", MFD_CLOEXEC);
    if (s.fd < 0 || ::ftruncate(s.fd, static_cast<off_t>(pages * kPage)) != 0) {
      std::perror("hetmm stress: memfd");
      std::abort();
    }
  }
  // Private slots of a block or more start on a block boundary, as large allocations do: whole
  // blocks then migrate by remapping (Options::zero_copy_moves) as well as by copy.
  constexpr std::size_t kBlock = 2u << 20;
  bool aligned = kind == SlotKind::private_anon && pages * kPage >= kBlock;
  std::size_t len = pages * kPage, over = aligned ? kBlock : 0;
  void* p = ::mmap(nullptr, len + over, PROT_READ | PROT_WRITE, flags, s.fd, 0);
  if (p == MAP_FAILED) {
    std::perror("hetmm stress: mmap");
    std::abort();
  }
  if (aligned) {
    auto raw = reinterpret_cast<std::uintptr_t>(p);
    std::uintptr_t start = (raw + kBlock - 1) & ~(kBlock - 1);
    if (start > raw) ::munmap(p, start - raw);
    if (raw + over > start) ::munmap(reinterpret_cast<void*>(start + len), raw + over - start);
    p = reinterpret_cast<void*>(start);
    ::madvise(p, len, MADV_HUGEPAGE);
  }
  s.addr = static_cast<std::byte*>(p);
  s.prot.assign(pages, PROT_READ | PROT_WRITE);
  s.bytes.assign(pages * kPage, std::byte{0});
}

void World::unmap_slot(SlotModel& s) {
  // Pages lost to another mapping (kForeign) are not the slot's to unmap any more: that
  // mapping may be another slot's. (A false divergence found this: a renew unmapped a page of
  // a slot that had been mapped into an old hole of the renewed one.)
  for (std::size_t p = 0; s.addr != nullptr && p < s.pages;) {
    std::size_t q = p;
    while (q < s.pages && s.prot[q] != kForeign) ++q;
    if (q > p) ::munmap(s.addr + p * kPage, (q - p) * kPage);
    p = q + 1;
  }
  if (s.fd >= 0) ::close(s.fd);
  s.addr = nullptr;
  s.fd = -1;
}

namespace {

bool all_mapped(const SlotModel& s, std::size_t offset, std::size_t length) {
  for (std::size_t p = offset / kPage; p < (offset + length + kPage - 1) / kPage; ++p)
    if (p >= s.pages || s.prot[p] < 0) return false;
  return true;
}

bool readable(const SlotModel& s, std::size_t page) {
  return s.prot[page] >= 0 && (s.prot[page] & PROT_READ);
}

constexpr std::uint32_t kUpdateFactor = 0x01000193u;  // FNV prime: any odd constant will do

std::string errc_name(bool ok, Errc c) { return ok ? "success" : to_string(c); }

}  // namespace

World::Expect World::expect(const Op& op) const {
  const SlotModel& s = model_.slots[op.slot];
  Expect e;
  Errc code;
  switch (op.kind) {
    case OpKind::cpu_write:
    case OpKind::kernel_update:
    case OpKind::kernel_atomic:
      e.skip = op.length == 0 || access_error(s, op.offset, op.length, true, &code);
      break;
    case OpKind::cpu_read:
    case OpKind::kernel_read:
      e.skip = op.length == 0 || access_error(s, op.offset, op.length, false, &code);
      break;
    case OpKind::kernel_bad:
      if (access_error(s, op.offset, 4, true, &code)) e.only(code);
      else e.skip = true;  // the memory became writable: the kernel would succeed
      break;
    case OpKind::dev_read:
    case OpKind::dev_write:
      if (op.length == 0) e.only(Errc::invalid_argument);
      else if (access_error(s, op.offset, op.length, op.kind == OpKind::dev_write, &code))
        e.only(code);
      break;
    case OpKind::migrate_in:
      if (op.length == 0) {
        e.only(Errc::invalid_argument);
      } else if (access_error(s, op.offset, op.length, false, &code)) {
        e.only(code);
      } else if (s.kind != SlotKind::private_anon) {
        e.only(Errc::not_found);  // shared and file memory never migrate
      } else if (model_.oom_possible) {
        e.allow(Errc::out_of_memory);
      }
      break;
    case OpKind::migrate_out:
      if (op.length == 0) e.only(Errc::invalid_argument);
      break;
    case OpKind::advise:
      // Holes fail the call (and it changes nothing); advice never changes data.
      if (op.length == 0) e.only(Errc::invalid_argument);
      else if (!all_mapped(s, op.offset, op.length)) e.allow(Errc::fault);
      break;
    case OpKind::mprotect:
    case OpKind::dontneed:
      e.skip = !all_mapped(s, op.offset, op.length);
      break;
    case OpKind::mremap: {
      // A plain private mapping of one protection moves and resizes whole.
      e.skip = s.kind != SlotKind::private_anon || s.pages == 0 || op.arg == 0 ||
               !all_mapped(s, 0, s.length());
      for (std::size_t p = 1; !e.skip && p < s.pages; ++p) e.skip = s.prot[p] != s.prot[0];
      // Linux refuses (EFAULT) a range that spans two VMAs, and VMA boundaries outlive the
      // operations that made them (neighbours with different anon_vmas do not merge back), so
      // refusal is allowed; the data is checked either way. hetmm's own split (userfaultfd
      // registration) is undone before mremap: Scenario.MremapAfterPartialMigration.
      e.allow(Errc::fault);
      break;
    }
    case OpKind::check:
    case OpKind::munmap:
      e.skip = s.addr == nullptr;
      break;
    default:
      break;
  }
  if (s.addr == nullptr && op.kind != OpKind::renew && op.kind != OpKind::release &&
      op.kind != OpKind::fork_check)
    e.skip = true;
  if (op.device >= model_.devices) e.skip = true;
  // Foreign pages may be another slot's now: never accessed, protected or unmapped.
  if (op.kind != OpKind::renew && op.kind != OpKind::release && op.kind != OpKind::fork_check &&
      touches_foreign(s, op.offset, std::max<std::size_t>(op.length, 1)))
    e.skip = true;
  if (op.kind == OpKind::check || op.kind == OpKind::mremap)
    e.skip |= touches_foreign(s, 0, s.length());
  // A replayed operation may reach past a slot that shrank since: whatever is mapped there is
  // not the model's.
  if (std::size_t{op.offset} + op.length > s.length() && op.kind != OpKind::renew &&
      op.kind != OpKind::mremap && op.kind != OpKind::release && op.kind != OpKind::fork_check)
    e.skip = true;
  return e;
}

void World::execute(const Op& op, const Expect& e, Outcome& out) {
  SlotModel& s = model_.slots[op.slot];
  std::byte* base = s.addr;
  std::byte* p = base + op.offset;
  Device& dev = rt_.device(op.device);
  try {
    switch (op.kind) {
      case OpKind::cpu_write:
        for (std::size_t i = 0; i < op.length; ++i) p[i] = pattern_byte(op.seed, op.offset + i);
        break;
      case OpKind::cpu_read:
        out.data.assign(p, p + op.length);
        break;
      case OpKind::dev_read:
        out.data.assign(op.length, std::byte{0xee});
        dev.read(p, out.data.data(), op.length);
        break;
      case OpKind::dev_write: {
        std::vector<std::byte> in(op.length);
        for (std::size_t i = 0; i < in.size(); ++i) in[i] = pattern_byte(op.seed, op.offset + i);
        dev.write(p, in.data(), op.length);
        break;
      }
      case OpKind::kernel_update: {
        auto* w = reinterpret_cast<std::uint32_t*>(p);
        std::uint32_t seed = op.seed;
        dev.launch(op.length / 4, [w, seed](Thread& t) {
          std::uint32_t* q = w + t.id();
          t.store(q, t.load(q) * kUpdateFactor + seed);
        });
        dev.synchronize();
        break;
      }
      case OpKind::kernel_read: {
        // One thread per page: the faults of a kernel that only reads.
        out.data.assign(op.length, std::byte{0xee});
        std::byte* to = out.data.data();
        std::size_t len = op.length;
        dev.launch((len + kPage - 1) / kPage, [p, to, len](Thread& t) {
          std::size_t lo = t.id() * kPage, hi = std::min(len, lo + kPage);
          for (std::size_t i = lo; i < hi; ++i) to[i] = t.load(p + i);
        });
        dev.synchronize();
        break;
      }
      case OpKind::kernel_atomic: {
        auto* q = reinterpret_cast<std::uint64_t*>(base + (op.offset & ~7u));
        dev.launch(op.seed % 256 + 1, [q](Thread& t) { t.atomic_add(q, std::uint64_t{1}); });
        dev.synchronize();
        break;
      }
      case OpKind::kernel_bad: {
        auto* q = reinterpret_cast<std::uint32_t*>(p);
        std::uint32_t seed = op.seed;
        dev.launch(1, [q, seed](Thread& t) { t.store(q, seed); });
        dev.synchronize();
        break;
      }
      case OpKind::migrate_in:
        dev.migrate_to_device(p, op.length);
        break;
      case OpKind::migrate_out:
        dev.migrate_to_system(p, op.length);
        break;
      case OpKind::release:
        dev.release();
        break;
      case OpKind::advise: {
        Location here = Location::device(op.device);
        switch (op.arg) {
          case 0: rt_.advise(p, op.length, Advice::read_mostly); break;
          case 1: rt_.advise(p, op.length, Advice::streaming); break;
          case 2: rt_.advise(p, op.length, Advice::preferred_location, Location::system()); break;
          case 3: rt_.advise(p, op.length, Advice::preferred_location, here); break;
          case 4: rt_.advise(p, op.length, Advice::accessed_by, here); break;
          case 5: rt_.set_policy(p, op.length, static_cast<PolicyProfile>(op.seed % 3)); break;
          case 6: rt_.unadvise(p, op.length, Advice::read_mostly); break;
          case 7: rt_.unadvise(p, op.length, Advice::accessed_by, here); break;
          default:
            // The kernel's own advice, which changes no data but splits the mapping: a block
            // then spans two mappings, as a program's arrays often do (a revocation over both
            // raises one event per mapping, and lost data when only one was expected).
            if (::madvise(p, op.length, op.arg == 8 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0 &&
                errno == ENOMEM)
              throw Error(Errc::fault, std::string("madvise: ") + std::strerror(errno));
            break;
        }
        break;
      }
      case OpKind::mprotect:
        if (::mprotect(p, op.length, static_cast<int>(op.arg)) != 0)
          throw Error(Errc::fault, std::string("mprotect: ") + std::strerror(errno));
        break;
      case OpKind::dontneed:
        if (::madvise(p, op.length, MADV_DONTNEED) != 0)
          throw Error(Errc::fault, std::string("madvise: ") + std::strerror(errno));
        break;
      case OpKind::munmap:
        if (::munmap(p, op.length) != 0)
          throw Error(Errc::fault, std::string("munmap: ") + std::strerror(errno));
        // Keep the hole ours, so that accesses to it stay predictable (a fault): nothing
        // else may be mapped there meanwhile, as the runtime's own buffers could be.
        out.reserved = ::mmap(p, op.length, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                              -1, 0) == p;
        break;
      case OpKind::renew: {
        // Done here, on the step's thread: the model follows in apply().
        SlotModel fresh;
        unmap_slot(s);
        map_slot(fresh, static_cast<SlotKind>(op.seed % 3), op.arg);
        out.new_addr = fresh.addr;
        s.fd = fresh.fd;
        s.addr = fresh.addr;
        break;
      }
      case OpKind::mremap: {
        void* q = ::mremap(base, s.length(), std::size_t{op.arg} * kPage, MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
          throw Error(Errc::fault, std::string("mremap: ") + std::strerror(errno));
        out.new_addr = static_cast<std::byte*>(q);
        break;
      }
      case OpKind::fork_check: {
        std::fflush(nullptr);
        pid_t pid = ::fork();
        if (pid == 0) {
          // The child: plain memory, every page home (hetmm brings them before fork).
          int bad = 0;
          for (std::size_t i = 0; i < model_.slots.size() && !bad; ++i) {
            const SlotModel& c = model_.slots[i];
            if (c.addr == nullptr) continue;
            for (std::size_t pg = 0; pg < c.pages && !bad; ++pg) {
              if (!readable(c, pg)) continue;
              if (auto d = compare_memory(c, c.addr + pg * kPage, pg * kPage, kPage)) {
                std::fprintf(stderr, "hetmm stress: forked child: slot %zu: %s\n", i, d->c_str());
                bad = 1;
              }
            }
          }
          // The parent's runtime is not the child's.
          try {
            rt_.device(0).migrate_to_system(model_.slots[0].addr ? model_.slots[0].addr
                                                                 : reinterpret_cast<std::byte*>(4096),
                                            kPage);
            bad |= 2;
          } catch (const Error& err) {
            if (err.code() != Errc::device_lost) bad |= 4;
          }
          ::_exit(bad);
        }
        int status = 0;
        if (pid < 0 || ::waitpid(pid, &status, 0) != pid)
          throw Error(Errc::busy, std::string("fork: ") + std::strerror(errno));
        out.child_status = status;
        break;
      }
      case OpKind::check:
        break;  // compared in compare()
      case OpKind::kCount:
        break;
    }
  } catch (const Error& err) {
    out.ok = false;
    out.code = err.code();
    out.message = err.what();
  } catch (const std::exception& err) {
    out.ok = false;
    out.code = Errc::unsupported;
    out.message = std::string("unexpected exception: ") + err.what();
  }
  (void)e;
}

std::optional<std::string> World::compare_memory(const SlotModel& s, const std::byte* actual,
                                                 std::size_t offset, std::size_t length) const {
  if (std::memcmp(actual, s.bytes.data() + offset, length) == 0) return std::nullopt;
  for (std::size_t i = 0; i < length; ++i) {
    if (actual[i] != s.bytes[offset + i]) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "byte 0x%zx of the slot (page %zu, at %p) is 0x%02x, the model says 0x%02x",
                    offset + i, (offset + i) / kPage, static_cast<void*>(s.addr + offset + i),
                    static_cast<unsigned>(actual[i]),
                    static_cast<unsigned>(s.bytes[offset + i]));
      return std::string(buf);
    }
  }
  return std::nullopt;
}

std::optional<std::string> World::compare(const Op& op, const Expect& e, Outcome& out) {
  const SlotModel& s = model_.slots[op.slot];
  bool allowed = out.ok ? e.ok : (e.codes >> static_cast<unsigned>(out.code)) & 1;
  if (!allowed) {
    std::string want;
    if (e.ok) want = "success";
    for (unsigned c = 0; c < 8; ++c)
      if ((e.codes >> c) & 1) want += (want.empty() ? "" : " or ") + std::string(to_string(static_cast<Errc>(c)));
    return "expected " + want + ", got " + errc_name(out.ok, out.code) +
           (out.message.empty() ? "" : " (" + out.message + ")");
  }
  if (!out.ok) return std::nullopt;
  switch (op.kind) {
    case OpKind::cpu_read:
    case OpKind::dev_read:
    case OpKind::kernel_read:
      return compare_memory(s, out.data.data(), op.offset, op.length);
    case OpKind::fork_check:
      if (!WIFEXITED(out.child_status) || WEXITSTATUS(out.child_status) != 0)
        return "the forked child saw memory or a runtime that differ from the model (status " +
               std::to_string(out.child_status) + ")";
      return std::nullopt;
    case OpKind::check:
      for (std::size_t pg = 0; pg < s.pages; ++pg) {
        if (!readable(s, pg)) continue;
        if (auto d = compare_memory(s, s.addr + pg * kPage, pg * kPage, kPage)) return d;
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void World::apply(const Op& op, const Expect& e, const Outcome& out) {
  (void)e;
  if (!out.ok) return;  // a failed call changes nothing
  SlotModel& s = model_.slots[op.slot];
  switch (op.kind) {
    case OpKind::cpu_write:
    case OpKind::dev_write:
      for (std::size_t i = 0; i < op.length; ++i)
        s.bytes[op.offset + i] = pattern_byte(op.seed, op.offset + i);
      break;
    case OpKind::kernel_update:
      for (std::size_t i = 0; i + 4 <= op.length; i += 4) {
        std::uint32_t w;
        std::memcpy(&w, &s.bytes[op.offset + i], 4);
        w = w * kUpdateFactor + op.seed;
        std::memcpy(&s.bytes[op.offset + i], &w, 4);
      }
      break;
    case OpKind::kernel_atomic: {
      std::uint64_t v;
      std::size_t at = op.offset & ~7u;
      std::memcpy(&v, &s.bytes[at], 8);
      v += op.seed % 256 + 1;
      std::memcpy(&s.bytes[at], &v, 8);
      break;
    }
    case OpKind::mprotect:
      for (std::size_t p = op.offset / kPage; p < (op.offset + op.length) / kPage; ++p)
        s.prot[p] = static_cast<int>(op.arg);
      break;
    case OpKind::munmap:
      for (std::size_t p = op.offset / kPage; p < (op.offset + op.length) / kPage && p < s.pages; ++p) {
        s.prot[p] = out.reserved ? kUnmapped : kForeign;
        std::memset(&s.bytes[p * kPage], 0, kPage);
      }
      break;
    case OpKind::dontneed:
      if (s.kind == SlotKind::private_anon)
        std::memset(&s.bytes[op.offset], 0, op.length);
      break;
    case OpKind::renew: {
      int fd = s.fd;
      s.kind = static_cast<SlotKind>(op.seed % 3);
      s.pages = op.arg;
      s.fd = fd;
      s.addr = out.new_addr;
      s.prot.assign(s.pages, PROT_READ | PROT_WRITE);
      s.bytes.assign(s.length(), std::byte{0});
      break;
    }
    case OpKind::mremap: {
      int prot = s.prot[0];
      s.addr = out.new_addr;
      s.pages = op.arg;
      s.prot.assign(s.pages, prot);
      s.bytes.resize(s.length(), std::byte{0});
      break;
    }
    default:
      break;
  }
}

std::optional<Divergence> World::run(const Step& step, std::size_t index, ThreadPool& pool,
                                     Counters& counters) {
  std::vector<Expect> expects;
  std::vector<Outcome> outs(step.ops.size());
  std::vector<std::function<void()>> jobs;
  for (const Op& op : step.ops) expects.push_back(expect(op));
  for (std::size_t i = 0; i < step.ops.size(); ++i) {
    if (expects[i].skip) continue;
    jobs.push_back([this, &step, &expects, &outs, i] { execute(step.ops[i], expects[i], outs[i]); });
  }
  if (jobs.size() == 1) jobs[0]();
  else if (!jobs.empty()) pool.run(jobs);
  ++counters.steps;
  std::optional<Divergence> first;
  for (std::size_t i = 0; i < step.ops.size(); ++i) {
    const Op& op = step.ops[i];
    if (expects[i].skip) {
      ++counters.skipped;
      continue;
    }
    ++counters.ops[static_cast<std::size_t>(op.kind)];
    if (!outs[i].ok) ++counters.errors[static_cast<unsigned>(outs[i].code)];
    if (!first) {
      if (auto what = compare(op, expects[i], outs[i])) first = Divergence{index, op, *what};
    }
    // renew and mremap changed the real world already: the model must follow even after a
    // divergence elsewhere, so that teardown unmaps what is really there.
    apply(op, expects[i], outs[i]);
  }
  // The bookkeeping must be sound between steps too, not only the bytes: a broken invariant
  // shows here at once, long before it turns into a wrong value (Runtime::audit).
  if (!first) {
    std::string broken = rt_.audit();
    if (!broken.empty()) first = Divergence{index, Op{OpKind::check}, "invariant broken: " + broken};
  }
  return first;
}

std::optional<Divergence> World::check_all(std::size_t index) {
  for (std::size_t i = 0; i < model_.slots.size(); ++i) {
    const SlotModel& s = model_.slots[i];
    if (s.addr == nullptr) continue;
    Op op{OpKind::check, static_cast<std::uint8_t>(i)};
    // Runs of readable pages, each read through device 0 in one call, then by the CPU.
    for (std::size_t pg = 0; pg < s.pages;) {
      if (!readable(s, pg)) {
        ++pg;
        continue;
      }
      std::size_t end = pg;
      while (end < s.pages && readable(s, end)) ++end;
      std::size_t off = pg * kPage, len = (end - pg) * kPage;
      std::vector<std::byte> buf(len);
      try {
        rt_.device(0).read(s.addr + off, buf.data(), len);
      } catch (const Error& e) {
        return Divergence{index, op, std::string("final device read: ") + e.what()};
      }
      if (auto d = compare_memory(s, buf.data(), off, len))
        return Divergence{index, op, "final device read: " + *d};
      if (auto d = compare_memory(s, s.addr + off, off, len))
        return Divergence{index, op, "final CPU read: " + *d};
      pg = end;
    }
  }
  return std::nullopt;
}

}  // namespace hetmm::stress
