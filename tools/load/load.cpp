#include "load.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <random>
#include <spawn.h>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace hetmm::load {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kHuge = 2u << 20;

volatile std::sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

void touch(std::byte* p, std::size_t len, std::byte v) {
  for (std::size_t i = 0; i < len; i += kPage) p[i] = v;
}

// One worker process: rounds of every kind of work until the deadline.
class Worker {
 public:
  Worker(const Config& c, unsigned index)
      : c_(c), rng_(c.seed * 7919 + index), budget_(c.memory_mib << 20), index_(index) {}

  Counters run(Clock::time_point deadline) {
    while (!g_stop && Clock::now() < deadline) {
      map_churn();
      if (rng_() % 4 == 0) fork_churn();
      allocation_churn();
      huge_pages();
      if (rng_() % 8 == 0) page_cache();
      if (c_.compaction && index_ == 0 && Clock::now() - last_compact_ > std::chrono::seconds(5))
        compact();
    }
    for (auto& r : huge_) ::munmap(r.first, r.second);
    return n_;
  }

 private:
  std::size_t pick(std::size_t lo, std::size_t hi) {
    return lo + (rng_() % (hi - lo + 1));
  }

  void map_churn() {
    for (int i = 0; i < 8 && !g_stop; ++i) {
      std::size_t len = pick(16, std::min<std::size_t>(4096, budget_ / kPage / 4)) * kPage;
      auto* p = static_cast<std::byte*>(
          ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (p == MAP_FAILED) continue;
      touch(p, len, std::byte{1});
      ++n_.maps;
      switch (rng_() % 4) {
        case 0:  // a read-only window, then writable again
          ::mprotect(p + len / 4, len / 4, PROT_READ);
          ::mprotect(p + len / 4, len / 4, PROT_READ | PROT_WRITE);
          break;
        case 1: {  // grow, maybe moving
          void* q = ::mremap(p, len, len * 2, MREMAP_MAYMOVE);
          if (q != MAP_FAILED) {
            p = static_cast<std::byte*>(q);
            len *= 2;
            touch(p + len / 2, len / 2, std::byte{2});
          }
          break;
        }
        case 2:  // give part back
          ::madvise(p, len / 2, MADV_DONTNEED);
          break;
        default:  // a hole in the middle
          ::munmap(p + len / 2, kPage);
          ::munmap(p, len / 2);
          ::munmap(p + len / 2 + kPage, len - len / 2 - kPage);
          continue;
      }
      ::munmap(p, len);
    }
  }

  void fork_churn() {
    std::size_t len = std::min<std::size_t>(budget_ / 4, 8u << 20);
    auto* p = static_cast<std::byte*>(
        ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return;
    touch(p, len, std::byte{3});
    pid_t child = ::fork();
    if (child == 0) {
      touch(p, len, std::byte{4});  // copy-on-write faults in the child
      ::_exit(0);
    }
    if (child > 0) {
      ++n_.forks;
      touch(p, len / 2, std::byte{5});  // and in the parent, at the same time
      int status;
      ::waitpid(child, &status, 0);
    }
    ::munmap(p, len);
  }

  void allocation_churn() {
    // A compiler's shape: many small nodes, strings, and a few large growing arrays.
    std::map<std::uint64_t, std::string> symbols;
    std::size_t count = pick(5000, 20000);
    for (std::size_t i = 0; i < count && !g_stop; ++i)
      symbols.emplace(rng_(), std::string(pick(8, 120), 'x'));
    std::vector<std::uint64_t> big;
    std::size_t limit = std::min<std::size_t>(budget_ / 8 / sizeof(std::uint64_t), 1u << 20);
    for (std::size_t i = 0; i < limit && !g_stop; ++i) big.push_back(i);
    n_.allocations += count + 1;
  }

  void huge_pages() {
    // 8 MiB regions aligned to 2 MiB, half of each huge page touched: khugepaged collapses them
    // (max_ptes_none allows it) while they live; the oldest goes when over budget.
    std::size_t len = 4 * kHuge;
    auto* raw = static_cast<std::byte*>(::mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) return;
    auto a = (reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1);
    auto* p = reinterpret_cast<std::byte*>(a);
    if (p > raw) ::munmap(raw, static_cast<std::size_t>(p - raw));
    ::munmap(p + len, static_cast<std::size_t>(raw + len + kHuge - (p + len)));
    ::madvise(p, len, MADV_HUGEPAGE);
    for (std::size_t off = 0; off < len; off += kHuge) touch(p + off, kHuge / 2, std::byte{6});
    huge_.push_back({p, len});
    ++n_.huge_regions;
    while (huge_.size() * len > budget_ / 2) {
      ::munmap(huge_.front().first, huge_.front().second);
      huge_.erase(huge_.begin());
    }
  }

  void page_cache() {
    char path[] = "/tmp/hetmm-load-XXXXXX";
    int fd = ::mkstemp(path);
    if (fd < 0) return;
    ::unlink(path);
    std::vector<char> buf(1 << 20, 'h');
    for (int i = 0; i < 16; ++i)
      if (::write(fd, buf.data(), buf.size()) < 0) break;
    ::fdatasync(fd);
    ::lseek(fd, 0, SEEK_SET);
    while (::read(fd, buf.data(), buf.size()) > 0) {
    }
    ::close(fd);
    ++n_.files;
  }

  void compact() {
    last_compact_ = Clock::now();
    int fd = ::open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (::write(fd, "1", 1) == 1) ++n_.compactions;
    ::close(fd);
  }

  const Config& c_;
  std::mt19937_64 rng_;
  std::size_t budget_;
  unsigned index_;
  Counters n_;
  std::vector<std::pair<std::byte*, std::size_t>> huge_;
  Clock::time_point last_compact_{};
};

}  // namespace

Counters run(const Config& c) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(c.seconds));
  struct sigaction sa {};
  sa.sa_handler = on_term;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::vector<std::pair<pid_t, int>> kids;  // pid, read end of its counters pipe
  pid_t parent = ::getpid();
  for (unsigned i = 0; i < std::max(1u, c.processes); ++i) {
    int fds[2];
    if (::pipe(fds) != 0) break;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(0);
      Counters n = Worker(c, i).run(deadline);
      if (::write(fds[1], &n, sizeof n) != static_cast<ssize_t>(sizeof n)) ::_exit(1);
      ::_exit(0);
    }
    ::close(fds[1]);
    if (pid < 0) {
      ::close(fds[0]);
      break;
    }
    kids.push_back({pid, fds[0]});
  }
  Counters total;
  bool told = false;
  for (auto [pid, fd] : kids) {
    Counters n;
    ssize_t got;
    for (;;) {
      got = ::read(fd, &n, sizeof n);
      if (got >= 0 || errno != EINTR) break;
      if (g_stop && !told) {  // stopped early: so are the workers (they report what they did)
        for (auto& k : kids) ::kill(k.first, SIGTERM);
        told = true;
      }
    }
    if (got == static_cast<ssize_t>(sizeof n)) {
      total.maps += n.maps;
      total.forks += n.forks;
      total.allocations += n.allocations;
      total.huge_regions += n.huge_regions;
      total.files += n.files;
      total.compactions += n.compactions;
    }
    ::close(fd);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return total;
}

std::string format(const Counters& n, const Config& c) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "load: %u processes, %.0f s: %llu mappings, %llu forks, %llu allocations, "
                "%llu huge-page regions, %llu files, %llu compactions\n",
                c.processes, c.seconds, static_cast<unsigned long long>(n.maps),
                static_cast<unsigned long long>(n.forks),
                static_cast<unsigned long long>(n.allocations),
                static_cast<unsigned long long>(n.huge_regions),
                static_cast<unsigned long long>(n.files),
                static_cast<unsigned long long>(n.compactions));
  return buf;
}

Background::Background(const std::string& exe, const Config& c) {
  std::string secs = std::to_string(c.seconds), procs = std::to_string(c.processes),
              mib = std::to_string(c.memory_mib), seed = std::to_string(c.seed);
  std::vector<std::string> args = {exe,        "load",  "--seconds", secs, "--processes",
                                   procs,      "--memory-mib", mib, "--seed", seed};
  if (!c.compaction) args.push_back("--no-compaction");
  args.push_back("--quiet");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, exe.c_str(), nullptr, &attr, argv.data(), environ) == 0) pid_ = pid;
  posix_spawnattr_destroy(&attr);
}

void Background::stop() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);  // the whole group: the load process and its workers
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace hetmm::load
