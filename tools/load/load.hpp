// A memory load generator: what a busy developer machine does beside a test (issue 16). A data
// race in hetmm showed only with memory activity around it (a parallel build, another test
// suite), never with plain CPU hogs, so the load is made of memory-management work:
//
//   - map churn: mmap, touch, mprotect, mremap and munmap of ranges from 64 KiB to 32 MiB;
//   - fork churn: children that write their copy-on-write memory and exit;
//   - compiler-like churn: millions of small malloc/free (node containers) and growing
//     vectors (realloc of large blocks: mremap inside glibc);
//   - transparent huge pages: MADV_HUGEPAGE regions populated sparsely and kept for a while,
//     so that khugepaged collapses them (and compaction runs to find huge pages);
//   - page cache: files written, synced, read back and removed;
//   - compaction: /proc/sys/vm/compact_memory every few seconds, where it may be written.
//
// Each worker is a process of its own (forked before any thread exists), so the load is
// independent of the process under test; its mappings never touch that process's. Workers
// stop by themselves at the deadline, and when their parent dies (PR_SET_PDEATHSIG).
#pragma once

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace hetmm::load {

struct Config {
  double seconds = 60;         // how long to run
  unsigned processes = 2;      // worker processes
  std::size_t memory_mib = 256;  // live memory per worker at most, MiB
  bool compaction = true;        // write /proc/sys/vm/compact_memory (when writable)
  std::uint64_t seed = 1;
};

struct Counters {
  std::uint64_t maps = 0, forks = 0, allocations = 0, huge_regions = 0, files = 0,
                compactions = 0;
};

// Runs the load in this process's children until the deadline; returns what they did (summed).
// The calling process must be single-threaded (it forks).
Counters run(const Config& c);
std::string format(const Counters& n, const Config& c);

// The load beside a running program: `exe load --seconds S ...` started with posix_spawn
// (no fork handlers run in the caller, which may hold a hetmm runtime), in its own process
// group, stopped (SIGTERM to the group) by stop() or the destructor.
class Background {
 public:
  // exe: the hetmm command (for `hetmm stress --load`: /proc/self/exe).
  Background(const std::string& exe, const Config& c);
  ~Background() { stop(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  bool running() const { return pid_ > 0; }
  void stop();

 private:
  pid_t pid_ = -1;
};

}  // namespace hetmm::load
