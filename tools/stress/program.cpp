#include "program.hpp"

#include <algorithm>
#include <cstdio>
#include <sys/mman.h>

namespace hetmm::stress {

const char* to_string(OpKind k) {
  static const char* const names[] = {
      "cpu_write",   "cpu_read", "dev_read", "dev_write", "kernel_update", "kernel_atomic",
      "kernel_bad",  "migrate_in", "migrate_out", "release", "mprotect", "munmap",
      "renew",       "mremap",   "dontneed", "fork_check", "check",
      "advise",      "kernel_read"};
  static_assert(sizeof names / sizeof names[0] == static_cast<std::size_t>(OpKind::kCount));
  return names[static_cast<std::size_t>(k)];
}

const char* to_string(SlotKind k) {
  switch (k) {
    case SlotKind::private_anon: return "private";
    case SlotKind::shared_anon: return "shared";
    case SlotKind::shared_file: return "file";
  }
  return "?";
}

std::string describe(const Op& op) {
  char buf[160];
  switch (op.kind) {
    case OpKind::release:
      std::snprintf(buf, sizeof buf, "release dev=%u", op.device);
      break;
    case OpKind::fork_check:
      std::snprintf(buf, sizeof buf, "fork_check");
      break;
    case OpKind::renew:
      std::snprintf(buf, sizeof buf, "renew slot=%u kind=%s pages=%u", op.slot,
                    to_string(static_cast<SlotKind>(op.seed)), op.arg);
      break;
    case OpKind::mremap:
      std::snprintf(buf, sizeof buf, "mremap slot=%u pages=%u", op.slot, op.arg);
      break;
    case OpKind::advise:
      std::snprintf(buf, sizeof buf, "advise slot=%u off=0x%x len=0x%x which=%u dev=%u", op.slot,
                    op.offset, op.length, op.arg, op.device);
      break;
    case OpKind::mprotect:
      std::snprintf(buf, sizeof buf, "mprotect slot=%u off=0x%x len=0x%x prot=%u", op.slot,
                    op.offset, op.length, op.arg);
      break;
    default:
      std::snprintf(buf, sizeof buf, "%s dev=%u slot=%u off=0x%x len=0x%x seed=%u",
                    to_string(op.kind), op.device, op.slot, op.offset, op.length, op.seed);
  }
  return buf;
}

std::uint32_t SeededChooser::below(std::uint32_t n) {
  if (n <= 1) return 0;
  s_ += 0x9e3779b97f4a7c15ull;  // splitmix64
  std::uint64_t z = s_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<std::uint32_t>((z >> 32) * n >> 32);
}

std::uint32_t ByteChooser::below(std::uint32_t n) {
  if (n <= 1) return 0;
  std::uint32_t v = 0;
  for (int k = 0; k < 3; ++k) v = (v << 8) | (i_ < n_ ? p_[i_++] : 0);
  return v % n;
}

bool access_error(const SlotModel& s, std::size_t offset, std::size_t length, bool write,
                  Errc* code) {
  std::size_t p0 = offset / kPage, p1 = (offset + length + kPage - 1) / kPage;
  for (std::size_t p = p0; p < p1; ++p) {
    int prot = p < s.pages ? s.prot[p] : kUnmapped;
    if (prot < 0 || !(prot & PROT_READ)) {
      *code = Errc::fault;
      return true;
    }
    if (write && !(prot & PROT_WRITE)) {
      *code = Errc::permission;
      return true;
    }
  }
  return false;
}

bool touches_foreign(const SlotModel& s, std::size_t offset, std::size_t length) {
  for (std::size_t p = offset / kPage; p < (offset + length + kPage - 1) / kPage && p < s.pages; ++p)
    if (s.prot[p] == kForeign) return true;
  return false;
}

namespace {

constexpr std::uint32_t kSizes[] = {1, 2, 5, 17, 64, 200, 513};

std::uint32_t pick_pages(Chooser& c) { return kSizes[c.below(sizeof kSizes / sizeof kSizes[0])]; }

SlotKind pick_kind(Chooser& c) {
  std::uint32_t r = c.below(10);
  return r < 7 ? SlotKind::private_anon : r < 9 ? SlotKind::shared_anon : SlotKind::shared_file;
}

// A byte range inside the slot: mostly page-aligned runs of up to 64 pages, sometimes an odd
// offset (kernels and atomics keep 4- or 8-byte alignment), rarely zero-length.
void pick_range(Chooser& c, const SlotModel& s, Op& op, std::size_t align, bool allow_empty) {
  std::size_t pages = std::max<std::size_t>(s.pages, 1);
  std::size_t p0 = c.below(static_cast<std::uint32_t>(pages));
  std::size_t n = 1 + c.below(static_cast<std::uint32_t>(std::min<std::size_t>(64, pages - p0)));
  std::size_t off = p0 * kPage, len = n * kPage;
  if (c.below(6) == 0) {  // unaligned start and end
    std::size_t skip = c.below(kPage / 2) & ~(align - 1);
    off += skip;
    len -= skip;
    len -= c.below(static_cast<std::uint32_t>(std::min<std::size_t>(len / 2, kPage))) & ~(align - 1);
  }
  if (len == 0) len = align;
  if (allow_empty && c.below(40) == 0) len = 0;
  op.offset = static_cast<std::uint32_t>(off);
  op.length = static_cast<std::uint32_t>(len);
}

OpKind pick_kind_of_op(Chooser& c, const Model& m) {
  struct W {
    OpKind k;
    std::uint32_t w;
  };
  static const W weights[] = {
      {OpKind::cpu_write, 14},  {OpKind::cpu_read, 8},       {OpKind::dev_read, 10},
      {OpKind::dev_write, 10},  {OpKind::kernel_update, 10}, {OpKind::kernel_atomic, 4},
      {OpKind::kernel_bad, 2},  {OpKind::migrate_in, 16},    {OpKind::migrate_out, 6},
      {OpKind::release, 2},     {OpKind::mprotect, 4},       {OpKind::munmap, 2},
      {OpKind::renew, 3},       {OpKind::mremap, 2},         {OpKind::dontneed, 3},
      {OpKind::fork_check, 1},  {OpKind::check, 3},         {OpKind::advise, 4},
      {OpKind::kernel_read, 6}};
  std::uint32_t total = 0;
  for (const W& w : weights) total += (w.k == OpKind::fork_check && !m.fork) ? 0 : w.w;
  std::uint32_t r = c.below(total);
  for (const W& w : weights) {
    std::uint32_t ww = (w.k == OpKind::fork_check && !m.fork) ? 0 : w.w;
    if (r < ww) return w.k;
    r -= ww;
  }
  return OpKind::check;
}

Op make_op(Chooser& c, const Model& m, std::uint8_t slot) {
  const SlotModel& s = m.slots[slot];
  Op op;
  op.kind = pick_kind_of_op(c, m);
  op.slot = slot;
  op.device = static_cast<std::uint8_t>(c.below(static_cast<std::uint32_t>(m.devices)));
  op.seed = c.below(1u << 24) + 1;
  Errc code;
  switch (op.kind) {
    case OpKind::cpu_write:
    case OpKind::cpu_read:
    case OpKind::kernel_read:
    case OpKind::kernel_update:
    case OpKind::kernel_atomic: {
      // Look for a range the access is allowed on: these must not fail (a CPU access would
      // crash the tester; a kernel's partial effects are unpredictable).
      bool write = op.kind != OpKind::cpu_read && op.kind != OpKind::kernel_read;
      std::size_t align = op.kind == OpKind::kernel_atomic ? 8 : 4;
      for (int tries = 0; tries < 4; ++tries) {
        pick_range(c, s, op, align, false);
        if (!access_error(s, op.offset, op.length, write, &code)) return op;
      }
      op.kind = OpKind::dev_read;  // nothing suitable: read it through the device instead
      return op;
    }
    case OpKind::kernel_bad: {
      for (std::size_t tries = 0; tries < 8; ++tries) {
        std::size_t p = c.below(static_cast<std::uint32_t>(std::max<std::size_t>(s.pages, 1)));
        op.offset = static_cast<std::uint32_t>(p * kPage + (c.below(kPage / 4) * 4));
        op.length = 4;
        if (access_error(s, op.offset, 4, true, &code)) return op;
      }
      op.kind = OpKind::dev_write;
      pick_range(c, s, op, 4, true);
      return op;
    }
    case OpKind::advise: {
      pick_range(c, s, op, 4, false);
      op.length = static_cast<std::uint32_t>(
          (op.offset % kPage + op.length + kPage - 1) / kPage * kPage);
      op.offset = op.offset / kPage * kPage;
      op.arg = c.below(10);  // 8, 9: the kernel's huge-page advice (splits the mapping)
      return op;
    }
    case OpKind::mprotect:
    case OpKind::dontneed: {
      pick_range(c, s, op, 4, false);
      op.length = static_cast<std::uint32_t>(
          (op.offset % kPage + op.length + kPage - 1) / kPage * kPage);
      op.offset = op.offset / kPage * kPage;
      static const std::uint32_t prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE,
                                            PROT_READ | PROT_WRITE};
      op.arg = prots[c.below(4)];
      return op;
    }
    case OpKind::munmap: {
      std::size_t pages = std::max<std::size_t>(s.pages, 1);
      std::size_t p0 = c.below(static_cast<std::uint32_t>(pages));
      std::size_t n = 1 + c.below(static_cast<std::uint32_t>(std::min<std::size_t>(4, pages - p0)));
      op.offset = static_cast<std::uint32_t>(p0 * kPage);
      op.length = static_cast<std::uint32_t>(n * kPage);
      return op;
    }
    case OpKind::renew:
      op.seed = static_cast<std::uint32_t>(pick_kind(c));
      op.arg = pick_pages(c);
      return op;
    case OpKind::mremap: {
      std::uint32_t r = c.below(3);
      std::size_t pages = std::max<std::size_t>(s.pages, 1);
      op.arg = static_cast<std::uint32_t>(r == 0 ? std::max<std::size_t>(1, pages / 2)
                                          : r == 1 ? pages + 1 + c.below(64)
                                                   : pick_pages(c));
      return op;
    }
    default:
      pick_range(c, s, op, 4, true);
      return op;
  }
}

}  // namespace

std::vector<std::pair<SlotKind, std::uint32_t>> initial_slots(Chooser& c, const Shape& shape) {
  std::vector<std::pair<SlotKind, std::uint32_t>> out;
  for (std::size_t i = 0; i < shape.slots; ++i) out.emplace_back(pick_kind(c), pick_pages(c));
  return out;
}

Step next_step(Chooser& c, const Model& m, const Shape& shape) {
  Step step;
  std::size_t want = 1 + c.below(shape.threads);
  std::vector<bool> used(m.slots.size(), false);
  std::vector<bool> kernel_on(m.devices, false);
  for (std::size_t k = 0; k < want; ++k) {
    auto slot = static_cast<std::uint8_t>(c.below(static_cast<std::uint32_t>(m.slots.size())));
    if (used[slot]) continue;
    Op op = make_op(c, m, slot);
    bool kernel = op.kind == OpKind::kernel_update || op.kind == OpKind::kernel_atomic ||
                  op.kind == OpKind::kernel_bad || op.kind == OpKind::kernel_read;
    // fork alone; one kernel per device per step (a device's synchronize reports the first
    // error of any kernel on it, so two launchers would see each other's errors).
    if (op.kind == OpKind::fork_check) {
      if (!step.ops.empty()) continue;
      step.ops.push_back(op);
      return step;
    }
    if (kernel && kernel_on[op.device]) continue;
    if (kernel) kernel_on[op.device] = true;
    used[slot] = true;
    step.ops.push_back(op);
  }
  if (step.ops.empty()) step.ops.push_back(Op{OpKind::check, 0});
  return step;
}

}  // namespace hetmm::stress
