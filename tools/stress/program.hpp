// The differential tester's programs: operations on a set of memory slots, and the shadow
// model of plain memory that predicts every byte and every error code.
//
// A program is a list of steps; a step is one or more operations on distinct slots, run
// concurrently by different threads (disjoint slots: the model's order does not matter).
// Operations are generated one step at a time from the model's current state, so most of them
// are meaningful (CPU stores only where the CPU may store); a replayed or minimised program may
// contain operations the model now refuses, which are skipped (a CPU access that would crash
// the tester) and counted.
#pragma once

#include <hetmm/hetmm.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hetmm::stress {

enum class OpKind : std::uint8_t {
  cpu_write,      // a CPU thread stores a pattern
  cpu_read,       // a CPU thread loads and compares
  dev_read,       // Device::read, compared
  dev_write,      // Device::write of a pattern
  kernel_update,  // a kernel: each 32-bit word x becomes x * K + seed (Thread::load/store)
  kernel_atomic,  // a kernel: `seed % 256 + 1` threads atomic_add 1 to one 64-bit word
  kernel_bad,     // a one-thread kernel storing into memory it may not write: an error
  migrate_in,     // Device::migrate_to_device
  migrate_out,    // Device::migrate_to_system
  release,        // Device::release
  mprotect,       // mprotect(2) of pages, to PROT_NONE, PROT_READ or PROT_READ|PROT_WRITE
  munmap,         // munmap(2) of pages
  renew,          // the slot is unmapped and mapped afresh (new kind and size)
  mremap,         // mremap(2) with MREMAP_MAYMOVE to a new size
  dontneed,       // madvise(MADV_DONTNEED)
  fork_check,     // fork(2); the child compares every readable byte with the model
  check,          // the CPU compares the whole slot (every readable page)
  advise,         // Runtime::advise/unadvise/set_policy of pages, or madvise(MADV_[NO]HUGEPAGE)
                  // (arg picks which): no data changes, whatever the policy then does with them
  kernel_read,    // a kernel loads each byte (Thread::load) into a host buffer, compared: under
                  // hetmm, read faults make copies that a later write upgrades
  kCount
};
const char* to_string(OpKind kind);

enum class SlotKind : std::uint8_t { private_anon, shared_anon, shared_file };
const char* to_string(SlotKind kind);

struct Op {
  OpKind kind = OpKind::check;
  std::uint8_t slot = 0;
  std::uint8_t device = 0;
  std::uint32_t offset = 0;  // bytes from the slot's start
  std::uint32_t length = 0;  // bytes
  std::uint32_t seed = 0;    // data pattern or kernel constant
  std::uint32_t arg = 0;     // prot (mprotect); pages (renew, mremap); kind (renew)
};
std::string describe(const Op& op);

struct Step {
  std::vector<Op> ops;
};

// Where random choices come from: a seeded generator, or the fuzzer's bytes.
class Chooser {
 public:
  virtual ~Chooser() = default;
  virtual std::uint32_t below(std::uint32_t n) = 0;  // uniform in [0, n); 0 when n <= 1
  virtual bool exhausted() const { return false; }
};

class SeededChooser final : public Chooser {
 public:
  explicit SeededChooser(std::uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ull + 1) {}
  std::uint32_t below(std::uint32_t n) override;

 private:
  std::uint64_t s_;
};

class ByteChooser final : public Chooser {
 public:
  ByteChooser(const std::uint8_t* data, std::size_t n) : p_(data), n_(n) {}
  std::uint32_t below(std::uint32_t n) override;
  bool exhausted() const override { return i_ >= n_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t i_ = 0;
};

// ---- the shadow model ---------------------------------------------------------------------
inline constexpr std::size_t kPage = 4096;
inline constexpr int kUnmapped = -1;  // a hole the tester keeps reserved (PROT_NONE)
// Unmapped, and the tester could not keep the hole: another mapping (the runtime's own memory,
// a bounce buffer) may be there now. Nothing about it is predicted; operations on it are skipped.
inline constexpr int kForeign = -2;

struct SlotModel {
  SlotKind kind = SlotKind::private_anon;
  std::byte* addr = nullptr;  // where the slot is mapped now (the real world's address)
  std::size_t pages = 0;
  int fd = -1;                // shared_file: the memfd
  std::vector<int> prot;      // per page: PROT_* bits, or kUnmapped
  std::vector<std::byte> bytes;  // what plain memory would hold
  std::size_t length() const { return pages * kPage; }
};

struct Model {
  std::vector<SlotModel> slots;
  std::size_t devices = 1;
  bool oom_possible = false;  // device memory smaller than the slots, or frame failures injected
  bool fork = true;           // fork_check allowed
};

struct Shape {
  std::size_t slots = 6;
  std::size_t devices = 2;
  unsigned threads = 3;
  bool fork = true;
};

// The initial slots of a program (kinds and sizes), from its chooser.
std::vector<std::pair<SlotKind, std::uint32_t>> initial_slots(Chooser& c, const Shape& shape);
// One step, generated from the model's current state.
Step next_step(Chooser& c, const Model& m, const Shape& shape);

// The first page that the access fails on, and the error: Errc::fault for an unmapped or
// unreadable page, Errc::permission for a write to a read-only one. Returns false if none.
bool access_error(const SlotModel& s, std::size_t offset, std::size_t length, bool write,
                  Errc* code);
// Whether any page of the range is kForeign.
bool touches_foreign(const SlotModel& s, std::size_t offset, std::size_t length);

}  // namespace hetmm::stress
