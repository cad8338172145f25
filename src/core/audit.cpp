// Mirror::audit: the invariants of core/va_block.hpp checked over the whole mirror, in every
// build (debug builds also assert them block by block as operations end). Testers call it
// between operations (Runtime::audit): a broken invariant is reported where it first shows,
// not later as a wrong value. The stream-prefetch bug that left a page owned and copied at once
// (HetmmStreamPrefetchLeavesReadCopiesAlone in tests/policy_test.cpp) is what it is for.
#include "core/mirror.hpp"
#include "core/mirror_internal.hpp"
#include "os/syscalls.hpp"

#include <cstdarg>
#include <cstdio>
#include <sys/mman.h>

namespace hetmm::core {

using os::kPageSize;

namespace {

// The first problem found, formatted into a fixed buffer: nothing is allocated while the state
// lock is held (malloc'ed memory may be migrated; touching it would fault into this lock).
struct Findings {
  char text[512] = {};
  bool found = false;
  __attribute__((format(printf, 2, 3))) void add(const char* fmt, ...) {
    if (found) return;
    found = true;
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
  }
};

}  // namespace

std::string Mirror::audit() {
  // One byte per frame and device: who holds it (0: nobody). Runtime memory, mapped before the
  // lock is taken.
  std::size_t frames[kMaxDevices] = {};
  std::uint8_t* held[kMaxDevices] = {};
  for (std::size_t d = 0; d < ndevices_; ++d) {
    frames[d] = devices_[d]->capacity_bytes() / kPageSize;
    held[d] = static_cast<std::uint8_t*>(os::map_runtime_memory(frames[d] == 0 ? 1 : frames[d]));
  }
  Findings f;
  {
    detail::Locked lock(lock_);
    auto hold = [&](int d, std::uint32_t frame, std::uintptr_t page, const char* as) {
      if (frame >= frames[d]) {
        f.add("page %#lx: %s frame %u of device %d is beyond its %zu frames",
              static_cast<unsigned long>(page), as, frame, d, frames[d]);
        return;
      }
      if (held[d][frame] != 0)
        f.add("page %#lx: %s frame %u of device %d is held by another page too (frames held "
              "twice are freed twice and hand one page's data to another)",
              static_cast<unsigned long>(page), as, frame, d);
      held[d][frame] = 1;
    };
    blocks_.for_each([&](VaBlock& b) {
      std::uint32_t resident = 0, duplicated = 0;
      for (std::size_t i = 0; i < os::kPagesPerBlock && !f.found; ++i) {
        std::uintptr_t page = b.page_addr(i);
        auto a = static_cast<unsigned long>(page);
        std::uint8_t fl = b.flags[i].load(std::memory_order_acquire);
        int owner = b.owner[i], dup = b.dup[i];
        if (fl & kMigrating) f.add("page %#lx: still marked migrating with the lock free", a);
        if (owner != kSystem) {
          ++resident;
          if (owner < 0 || static_cast<std::size_t>(owner) >= ndevices_) {
            f.add("page %#lx: owner %d is not a device", a, owner);
            break;
          }
          if (fl != kRevoked) f.add("page %#lx: owned by device %d but flags %#x (I2)", a, owner, fl);
          if (dup != kSystem)
            f.add("page %#lx: owned by device %d and copied to device %d at once (I5)", a, owner, dup);
          hold(owner, b.frame[i], page, "its own");
        } else {
          if (fl & kRevoked) f.add("page %#lx: in system memory but revoked (I1)", a);
          if (((fl & kDuplicated) != 0) != (dup != kSystem))
            f.add("page %#lx: copy on device %d but flags %#x (I5)", a, dup, fl);
          if (dup != kSystem) {
            ++duplicated;
            if (dup < 0 || static_cast<std::size_t>(dup) >= ndevices_) {
              f.add("page %#lx: copy on %d, not a device", a, dup);
              break;
            }
            hold(dup, b.frame[i], page, "its copy's");
          }
        }
        // I3: what each device maps here.
        for (std::size_t d = 0; d < ndevices_ && !f.found; ++d) {
          std::uint64_t e = devices_[d]->get_pte(page);
          if (!(e & device::pte::kValid)) continue;
          if (!(b.mapped_devices & (1u << d)))
            f.add("page %#lx: device %zu maps it but the block does not say so", a, d);
          auto dd = static_cast<int>(d);
          if (e & device::pte::kLocal) {
            if (owner != dd && dup != dd)
              f.add("page %#lx: device %zu maps a frame of its own, but the page is %s", a, d,
                    owner != kSystem ? "another device's" : "in system memory");
            const void* at = devices_[d]->frame_host_address(b.frame[i]);
            if (at != nullptr && (e & device::pte::kAddrMask) != reinterpret_cast<std::uintptr_t>(at))
              f.add("page %#lx: device %zu maps frame address %#lx, the page's frame is at %p", a,
                    d, static_cast<unsigned long>(e & device::pte::kAddrMask), at);
            if (dup == dd && (e & device::pte::kWrite))
              f.add("page %#lx: device %zu may write its read-only copy (I5)", a, d);
          } else {
            if (owner != kSystem)
              f.add("page %#lx: device %zu maps it in place, but device %d owns it (I3)", a, d, owner);
            if ((e & device::pte::kAddrMask) != page)
              f.add("page %#lx: device %zu's in-place entry points at %#lx", a, d,
                    static_cast<unsigned long>(e & device::pte::kAddrMask));
          }
        }
      }
      if (!f.found && resident != b.resident)
        f.add("block %#lx: %u pages owned by devices, counted %u", static_cast<unsigned long>(b.base),
              resident, b.resident);
      if (!f.found && duplicated != b.duplicated)
        f.add("block %#lx: %u copies, counted %u", static_cast<unsigned long>(b.base), duplicated,
              b.duplicated);
    });
    // Every frame a device has handed out is held by exactly one page.
    for (std::size_t d = 0; d < ndevices_ && !f.found; ++d) {
      std::size_t n = 0;
      for (std::size_t k = 0; k < frames[d]; ++k) n += held[d][k];
      if (n * kPageSize != devices_[d]->used_bytes())
        f.add("device %zu: pages hold %zu frames, the device has %zu in use", d, n,
              devices_[d]->used_bytes() / kPageSize);
    }
  }
  for (std::size_t d = 0; d < ndevices_; ++d)
    os::unmap_runtime_memory(held[d], frames[d] == 0 ? 1 : frames[d]);
  return f.found ? std::string(f.text) : std::string();
}

}  // namespace hetmm::core
