// Layer os: includes base.
// The process's memory map, as the kernel reports it in /proc/self/maps.
//
// This is hetmm's view of the CPU page tables at VMA granularity: what hmm_range_fault learns
// from the VMA (protection, shared or private, anonymous or file-backed) we learn here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <sys/ioctl.h>
#include <vector>

namespace hetmm::os {

struct Vma {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
  bool read = false;
  bool write = false;
  bool exec = false;
  bool shared = false;     // MAP_SHARED (including shared anonymous memory)
  bool anonymous = false;  // no file behind it (heap, stack, anonymous mmap)
  bool special = false;    // [vdso], [vvar], [vsyscall], hetmm's own memory: never mapped on a
                           // device, migrated or written
  // Stacks, which device faults never migrate (a thread touching a revoked page of its stack
  // while it holds the mirror's lock, or with no room left to take SIGSEGV, cannot get it
  // back). `main_stack`: [stack]. `guard_below`: the start of a PROT_NONE private anonymous
  // mapping right below this one (how glibc lays out thread stacks) or 0; the mirror tells a
  // real guard from pages it revoked itself.
  bool main_stack = false;
  std::uintptr_t guard_below = 0;
  // A shared library's .bss (anonymous memory right after a mapping of a .so file): libc's and
  // the loader's state, which the runtime itself uses under its lock. Never migrated on faults.
  bool library_data = false;
  // The brk heap, [heap]: malloc's main arena, where a program's small arrays share pages with
  // the C library's and the dynamic linker's data (the link_maps of dlopen'ed libraries, thread
  // DTVs, dynamic TLS blocks) that hetmm's own fault-serving threads read.
  bool brk_heap = false;
  int prot() const;
  // Only private anonymous memory migrates into device memory, as in the kernel.
  bool migratable() const { return anonymous && !shared && !special && read; }

};

using VmaList = std::pmr::vector<Vma>;

// A thread stack's guard is a small PROT_NONE mapping right below the stack (glibc: one page
// by default; pthread_attr_setguardsize rarely asks for more than a few). A larger PROT_NONE
// mapping is something else, and the anonymous mapping above it is not a stack: glibc's malloc
// arenas reserve up to 64 MiB PROT_NONE above their heap, and a buffer mapped right after such
// a reservation was once taken for a stack and never migrated.
inline constexpr std::size_t kMaxStackGuard = 1u << 20;

// hetmm's own memory, which devices never map, migrate or write: the runtime's memfd mappings
// (os/syscalls.cpp), known by their name, and the anonymous ranges listed here (movable device
// memory, device/sim/frame_pool.cpp: an anonymous name needs CONFIG_ANON_VMA_NAME, which not
// every kernel has). Both are unmapped with raw system calls that no hook or event sees, so a
// device mapping of them could go stale. The list is lock-free (a fault batch reads it).
inline constexpr char kRuntimeMemoryName[] = "/memfd:hetmm-runtime";
inline constexpr char kDeviceMemoryAnonName[] = "hetmm-device";  // where names are supported
bool is_runtime_memory_name(const char* name, std::size_t len);
// Returns false when the list is full (the memory must then not be anonymous).
bool add_runtime_range(std::uintptr_t start, std::size_t len);
void remove_runtime_range(std::uintptr_t start);
bool in_runtime_range(std::uintptr_t addr);

// PROCMAP_QUERY (linux/fs.h, 6.11+): one VMA per ioctl on an fd of /proc/self/maps.
struct ProcmapQuery {
  std::uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
      vma_offset, inode;
  std::uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
  std::uint64_t vma_name_addr, build_id_addr;
};
inline constexpr unsigned long kProcmapQuery = _IOWR('f', 17, ProcmapQuery);
inline constexpr std::uint64_t kProcmapCoveringOrNext = 0x10;

// The VMAs that overlap [start, end), in address order. Holes are simply absent.
// Throws std::system_error if /proc/self/maps cannot be read.
// With PROCMAP_QUERY where the kernel has it (a few ioctls, whatever the size of the map),
// else by reading the text.
void query_vmas(std::uintptr_t start, std::uintptr_t end, VmaList& out);
// Whether query_vmas costs a few ioctls per VMA (PROCMAP_QUERY) rather than a read of the
// whole map: only then is a small extra query cheaper than a wider one.
bool vma_queries_are_cheap();
// The same from the text of /proc/self/maps (the fallback; tests compare the two).
void query_vmas_text(std::uintptr_t start, std::uintptr_t end, VmaList& out);

// The VMA containing addr, or nullptr.
const Vma* find_vma(const VmaList& list, std::uintptr_t addr);

}  // namespace hetmm::os
