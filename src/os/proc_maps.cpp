#include "os/proc_maps.hpp"

#include <cstring>

#include "os/syscalls.hpp"

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <system_error>
#include <unistd.h>

namespace hetmm::os {

int Vma::prot() const {
  return (read ? PROT_READ : 0) | (write ? PROT_WRITE : 0) | (exec ? PROT_EXEC : 0);
}

bool is_runtime_memory_name(const char* name, std::size_t len) {
  return len >= sizeof kRuntimeMemoryName - 1 &&
         std::memcmp(name, kRuntimeMemoryName, sizeof kRuntimeMemoryName - 1) == 0;
}

namespace {
constexpr std::size_t kRuntimeRanges = 64;  // 32 devices, each one range, with room to spare
std::atomic<std::uintptr_t> g_range_start[kRuntimeRanges];
std::atomic<std::uintptr_t> g_range_end[kRuntimeRanges];
}  // namespace

bool add_runtime_range(std::uintptr_t start, std::size_t len) {
  for (std::size_t i = 0; i < kRuntimeRanges; ++i) {
    std::uintptr_t none = 0;
    if (g_range_start[i].compare_exchange_strong(none, start)) {
      g_range_end[i].store(start + len, std::memory_order_release);
      return true;
    }
  }
  return false;
}

void remove_runtime_range(std::uintptr_t start) {
  for (std::size_t i = 0; i < kRuntimeRanges; ++i) {
    if (g_range_start[i].load(std::memory_order_acquire) == start) {
      g_range_end[i].store(0, std::memory_order_release);
      g_range_start[i].store(0, std::memory_order_release);
      return;
    }
  }
}

bool in_runtime_range(std::uintptr_t addr) {
  for (std::size_t i = 0; i < kRuntimeRanges; ++i) {
    std::uintptr_t s = g_range_start[i].load(std::memory_order_acquire);
    if (s != 0 && addr >= s && addr < g_range_end[i].load(std::memory_order_acquire)) return true;
  }
  return false;
}

namespace {

std::uintptr_t parse_hex(const char*& p) {
  std::uintptr_t v = 0;
  for (;; ++p) {
    char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + static_cast<std::uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<std::uintptr_t>(c - 'a' + 10);
    else break;
  }
  return v;
}

void skip_field(const char*& p, const char* end) {
  while (p < end && *p != ' ' && *p != '\n') ++p;
  while (p < end && *p == ' ') ++p;
}

constexpr std::uint64_t kRead = 1, kWrite = 2, kExec = 4, kShared = 8;  // procmap_query flags

// What the text parser learns from one line, from one PROCMAP_QUERY answer.
struct Queried {
  Vma vma;
  bool guard = false;   // private anonymous, no access: a stack guard candidate
  bool library = false;  // a mapping of a .so file
};

// The VMA covering addr, or the next one; false when there is none (or on error: *err).
bool query_one(int fd, std::uintptr_t addr, Queried& q, long* err) {
  char name[4096];
  ProcmapQuery r{};
  r.size = sizeof r;
  r.query_flags = kProcmapCoveringOrNext;
  r.query_addr = addr;
  r.vma_name_size = sizeof name;
  r.vma_name_addr = reinterpret_cast<std::uintptr_t>(name);
  long rc = sys_ioctl(fd, kProcmapQuery, &r);
  if (rc < 0) {
    *err = rc;
    return false;
  }
  std::size_t n = r.vma_name_size > 0 ? r.vma_name_size - 1 : 0;  // the size counts the NUL
  name[n < sizeof name ? n : sizeof name - 1] = '\0';
  Vma& v = q.vma;
  v = Vma{};
  v.start = r.vma_start;
  v.end = r.vma_end;
  v.read = (r.vma_flags & kRead) != 0;
  v.write = (r.vma_flags & kWrite) != 0;
  v.exec = (r.vma_flags & kExec) != 0;
  v.shared = (r.vma_flags & kShared) != 0;
  bool named_file = name[0] == '/';
  v.special = (name[0] == '[' && name[1] == 'v') || is_runtime_memory_name(name, n);
  v.anonymous = r.inode == 0 && !named_file;
  if (v.anonymous && in_runtime_range(v.start)) v.special = true;
  v.main_stack = std::strncmp(name, "[stack", 6) == 0;
  v.brk_heap = std::strcmp(name, "[heap]") == 0;
  q.guard = v.anonymous && !v.shared && !v.read && !v.write && !v.exec &&
            v.end - v.start <= kMaxStackGuard;
  q.library = named_file && std::strstr(name, ".so") != nullptr;
  return true;
}

// PROCMAP_QUERY is there (Linux 6.11+) until an ioctl says otherwise.
std::atomic<bool> g_procmap_query{true};

// [start, end)'s VMAs with PROCMAP_QUERY: a few ioctls, whatever the number of mappings in the
// process (reading the text costs as much as the whole map, which grows with everything the
// process maps). False when the kernel has no PROCMAP_QUERY: read the text then.
bool query_vmas_ioctl(int fd, std::uintptr_t start, std::uintptr_t end, VmaList& out) {
  long err = 0;
  Queried prev, cur;
  bool have_prev = false, first = true;
  for (std::uintptr_t a = start; a < end;) {
    err = 0;
    if (!query_one(fd, a, cur, &err)) {
      if (err == -ENOTTY || err == -EINVAL) return false;
      if (err == -ENOENT) break;  // nothing mapped above a
      throw std::system_error(static_cast<int>(-err), std::generic_category(),
                              "PROCMAP_QUERY on /proc/self/maps");
    }
    if (cur.vma.start >= end) break;
    if (first && cur.vma.start > 0) {
      // The mapping right below the first one decides its guard_below and library_data.
      err = 0;
      have_prev = query_one(fd, cur.vma.start - 1, prev, &err) && prev.vma.end == cur.vma.start;
      if (err != 0 && err != -ENOENT)
        throw std::system_error(static_cast<int>(-err), std::generic_category(),
                                "PROCMAP_QUERY on /proc/self/maps");
    }
    first = false;
    bool adjacent = have_prev && prev.vma.end == cur.vma.start;
    if (adjacent && prev.guard && cur.vma.anonymous && !cur.vma.shared)
      cur.vma.guard_below = prev.vma.start;
    cur.vma.library_data = adjacent && prev.library && cur.vma.anonymous;
    out.push_back(cur.vma);
    prev = cur;
    have_prev = true;
    a = cur.vma.end;
  }
  return true;
}

}  // namespace

bool vma_queries_are_cheap() { return g_procmap_query.load(std::memory_order_relaxed); }

void query_vmas(std::uintptr_t start, std::uintptr_t end, VmaList& out) {
  out.clear();
  if (g_procmap_query.load(std::memory_order_relaxed)) {
    int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open /proc/self/maps");
    try {
      bool done = query_vmas_ioctl(fd, start, end, out);
      ::close(fd);
      if (done) return;
    } catch (...) {
      ::close(fd);
      throw;
    }
    g_procmap_query.store(false, std::memory_order_relaxed);
    out.clear();
  }
  query_vmas_text(start, end, out);
}

void query_vmas_text(std::uintptr_t start, std::uintptr_t end, VmaList& out) {
  out.clear();
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open /proc/self/maps");
  // Lines are parsed as they arrive; a line cut by the buffer end is carried over.
  char buf[8192];
  std::size_t have = 0;
  bool eof = false;
  std::uintptr_t guard_start = 0, guard_end = 0;  // the last PROT_NONE private anonymous mapping
  std::uintptr_t library_end = 0;                 // end of the last mapping of a .so file
  while (!eof || have > 0) {
    if (!eof) {
      ssize_t n = ::read(fd, buf + have, sizeof buf - have);
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "read /proc/self/maps");
      }
      if (n == 0) eof = true;
      have += static_cast<std::size_t>(n);
    }
    std::size_t consumed = 0;
    for (;;) {
      const char* line = buf + consumed;
      const char* limit = buf + have;
      const char* nl = line;
      while (nl < limit && *nl != '\n') ++nl;
      if (nl == limit && !eof) break;  // partial line: read more
      if (line == limit) break;
      const char* p = line;
      Vma v;
      v.start = parse_hex(p);
      if (*p == '-') ++p;
      v.end = parse_hex(p);
      while (p < nl && *p == ' ') ++p;
      if (nl - p >= 4) {
        v.read = p[0] == 'r';
        v.write = p[1] == 'w';
        v.exec = p[2] == 'x';
        v.shared = p[3] == 's';
      }
      skip_field(p, nl);  // perms
      skip_field(p, nl);  // offset
      skip_field(p, nl);  // dev
      std::uintptr_t inode = 0;
      for (; p < nl && *p >= '0' && *p <= '9'; ++p) inode = inode * 10 + static_cast<std::uintptr_t>(*p - '0');
      while (p < nl && *p == ' ') ++p;
      bool named_file = p < nl && *p == '/';
      v.special = p < nl && *p == '[' && (nl - p >= 3) && p[1] == 'v';  // [vdso] [vvar] [vsyscall]
      if (is_runtime_memory_name(p, static_cast<std::size_t>(nl - p))) v.special = true;
      v.anonymous = inode == 0 && !named_file;
      if (v.anonymous && in_runtime_range(v.start)) v.special = true;
      static constexpr char kStack[] = "[stack";
      v.main_stack = nl - p >= 6 && std::memcmp(p, kStack, 6) == 0;
      v.brk_heap = nl - p >= 6 && std::memcmp(p, "[heap]", 6) == 0;
      if (v.anonymous && !v.shared && guard_end == v.start && guard_end != 0) v.guard_below = guard_start;
      v.library_data = v.anonymous && library_end == v.start && library_end != 0;
      if (named_file) {
        const char* so = p;
        while (so + 3 <= nl && !(so[0] == '.' && so[1] == 's' && so[2] == 'o')) ++so;
        library_end = so + 3 <= nl ? v.end : 0;
      } else if (!v.library_data) {
        library_end = 0;
      }
      if (v.anonymous && !v.shared && !v.read && !v.write && !v.exec &&
          v.end - v.start <= kMaxStackGuard) {
        guard_start = v.start;
        guard_end = v.end;
      }
      if (v.end > start && v.start < end) out.push_back(v);
      consumed = static_cast<std::size_t>(nl - buf) + (nl < limit ? 1 : 0);
      if (nl == limit) break;
    }
    if (consumed > 0) {
      for (std::size_t i = consumed; i < have; ++i) buf[i - consumed] = buf[i];
      have -= consumed;
    } else if (have == sizeof buf) {
      have = 0;  // a line longer than the buffer (a huge path name): drop it
    }
    if (eof && consumed == 0) break;
  }
  ::close(fd);
}

const Vma* find_vma(const VmaList& list, std::uintptr_t addr) {
  std::size_t lo = 0, hi = list.size();
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (list[mid].end <= addr) lo = mid + 1;
    else hi = mid;
  }
  if (lo < list.size() && list[lo].start <= addr && addr < list[lo].end) return &list[lo];
  return nullptr;
}

}  // namespace hetmm::os
