// Layer device: includes base, os, telemetry.
// The software device's page table, keyed by process virtual address (device address ==
// process address). Leaves hold the 512 PTEs of one 2 MiB block; workers read them lock-free,
// the mirror writes them under its state lock.
#pragma once

#include "base/radix_table.hpp"
#include "device/device_backend.hpp"
#include "os/arena.hpp"
#include "os/page.hpp"

#include <atomic>
#include <cstdint>

namespace hetmm::device::sim {

class PageTable {
 public:
  std::uint64_t get(std::uintptr_t va) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    if (l == nullptr) return 0;
    return l->pte[os::page_index_in_block(va)].load(std::memory_order_acquire);
  }
  // A worker's walk: also records that the block was used in `epoch`.
  std::uint64_t walk(std::uintptr_t va, std::uint32_t epoch) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    if (l == nullptr) return 0;
    l->touch(epoch);
    return l->pte[os::page_index_in_block(va)].load(std::memory_order_acquire);
  }
  std::uint32_t touched(std::uintptr_t va) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    return l == nullptr ? 0 : l->touched.load(std::memory_order_relaxed);
  }
  void set(std::uintptr_t va, std::uint64_t entry) {
    Leaf* l = table_.get_or_create(va >> os::kBlockShift, [] { return os::arena_new<Leaf>(); });
    std::uint64_t old = l->pte[os::page_index_in_block(va)].exchange(entry, std::memory_order_acq_rel);
    if ((old & pte::kValid) != (entry & pte::kValid))
      valid_.fetch_add((entry & pte::kValid) ? 1 : -1, std::memory_order_relaxed);
    l->count(old, -1);
    l->count(entry, +1);
  }
  // A worker's block walk: the rights (pte::kValid, kWrite) every page of va's block has in
  // place, or 0; records the block's use in `epoch` when it answers. Read after the shootdown
  // epoch: a PTE cleared later comes with a newer epoch (worker.hpp).
  std::uint64_t block_in_place(std::uintptr_t va, std::uint32_t epoch) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    if (l == nullptr || l->in_place.load(std::memory_order_acquire) != os::kPagesPerBlock) return 0;
    l->touch(epoch);
    return pte::kValid |
           (l->in_place_write.load(std::memory_order_acquire) == os::kPagesPerBlock ? pte::kWrite : 0);
  }
  // A worker's block walk for a block only partly in place (a buffer that starts or ends inside
  // it, the heap): the run of pages around va's page, within its block, mapped in place with
  // every right in `need` (pte::kWrite or 0). Returns kValid | kWrite (when every page of the
  // run allows writes) and the run's first and last page indices; 0 when va's page is not in
  // place with `need`. Read after the shootdown epoch, as block_in_place.
  std::uint64_t block_in_place_run(std::uintptr_t va, std::uint32_t epoch, std::uint64_t need,
                                   std::size_t* first, std::size_t* last) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    if (l == nullptr) return 0;
    if (std::uint64_t whole = block_in_place(va, epoch); (whole & need) == need && whole != 0) {
      *first = 0;
      *last = os::kPagesPerBlock - 1;
      return whole;
    }
    std::uint64_t rights = pte::kValid | pte::kWrite;
    auto in_run = [&](std::size_t i) {
      std::uint64_t x = l->pte[i].load(std::memory_order_acquire);
      if ((x & (pte::kValid | pte::kLocal)) != pte::kValid || (x & need) != need) return false;
      rights &= x | ~pte::kWrite;
      return true;
    };
    const std::size_t at = os::page_index_in_block(va);
    if (!in_run(at)) return 0;
    std::size_t lo = at, hi = at;
    while (lo > 0 && in_run(lo - 1)) --lo;
    while (hi + 1 < os::kPagesPerBlock && in_run(hi + 1)) ++hi;
    *first = lo;
    *last = hi;
    l->touch(epoch);
    return rights;
  }
  // A worker's block walk for device memory: the run of pages around va's page, within its
  // block, that are in device frames at consecutive frame addresses. Returns the address the
  // run's frames would have at page 0 of the block (frame of page i = that + i * 4 KiB) |
  // kValid | kLocal | kWrite (when every page of the run allows writes), and the run's first and
  // last page indices; 0 when va's page is not in a frame. Read after the shootdown epoch, as
  // block_in_place: a page of the run cleared later comes with a newer epoch (worker.hpp), and
  // pages mapped later outside the run change nothing the answer says.
  std::uint64_t block_local_run(std::uintptr_t va, std::uint32_t epoch, std::size_t* first,
                                std::size_t* last) const {
    Leaf* l = table_.find(va >> os::kBlockShift);
    if (l == nullptr) return 0;
    constexpr std::uint64_t kFrame = pte::kValid | pte::kLocal;
    const std::size_t at = os::page_index_in_block(va);
    const std::uint64_t e = l->pte[at].load(std::memory_order_acquire);
    if ((e & kFrame) != kFrame) return 0;
    const std::uint64_t base = (e & pte::kAddrMask) - at * os::kPageSize;
    std::uint64_t rights = kFrame | pte::kWrite;
    auto in_run = [&](std::size_t i) {
      std::uint64_t x = l->pte[i].load(std::memory_order_acquire);
      if ((x & kFrame) != kFrame || (x & pte::kAddrMask) != base + i * os::kPageSize) return false;
      rights &= x | ~pte::kWrite;
      return true;
    };
    std::size_t lo = at, hi = at;
    rights &= e | ~pte::kWrite;
    while (lo > 0 && in_run(lo - 1)) --lo;
    while (hi + 1 < os::kPagesPerBlock && in_run(hi + 1)) ++hi;
    *first = lo;
    *last = hi;
    l->touch(epoch);
    return base | rights;
  }
  // Access counters: bytes workers accessed in place in va's block, added as their counter
  // slots are recycled and when they finish a kernel (SimDevice::count_in_place), taken (and
  // reset) by the mirror at launches. Approximate by design: a hint for which blocks to promote.
  void add_in_place_traffic(std::uintptr_t va, std::uint64_t bytes) {
    if (Leaf* l = table_.find(va >> os::kBlockShift))
      l->in_place_traffic.fetch_add(bytes, std::memory_order_relaxed);
  }
  std::uint64_t take_in_place_traffic(std::uintptr_t va) {
    Leaf* l = table_.find(va >> os::kBlockShift);
    return l == nullptr ? 0 : l->in_place_traffic.exchange(0, std::memory_order_relaxed);
  }
  // Valid entries: the device's working set in pages (Options::max_oversubscription).
  std::size_t valid() const { return static_cast<std::size_t>(valid_.load(std::memory_order_relaxed)); }
  // Returns the number of valid entries cleared.
  std::size_t clear(std::uintptr_t start, std::uintptr_t end) {
    std::size_t n = 0;
    for (std::uintptr_t va = start; va < end;) {
      Leaf* l = table_.find(va >> os::kBlockShift);
      std::uintptr_t block_end = os::block_down(va) + os::kBlockSize;
      std::uintptr_t stop = block_end < end ? block_end : end;
      if (l != nullptr) {
        for (std::uintptr_t a = va; a < stop; a += os::kPageSize) {
          auto& e = l->pte[os::page_index_in_block(a)];
          std::uint64_t old = e.load(std::memory_order_relaxed);
          if (old & pte::kValid) {
            e.store(0, std::memory_order_release);
            l->count(old, -1);
            ++n;
            valid_.fetch_sub(1, std::memory_order_relaxed);
          }
        }
      }
      va = stop;
    }
    return n;
  }

 private:
  struct Leaf {
    std::atomic<std::uint64_t> pte[os::kPagesPerBlock] = {};
    std::atomic<std::uint32_t> touched{0};  // access epoch of the last walk
    // Valid in-place entries, and those of them that allow writes (block_in_place). Written
    // only under the state lock (one writer: a load and a store, no locked add on the fault
    // path's 512-PTE mappings), before any epoch bump that follows.
    std::atomic<std::uint32_t> in_place{0}, in_place_write{0};
    std::atomic<std::uint64_t> in_place_traffic{0};
    void count(std::uint64_t e, int d) {
      if ((e & (pte::kValid | pte::kLocal)) != pte::kValid) return;
      auto add = [d](std::atomic<std::uint32_t>& n) {
        n.store(n.load(std::memory_order_relaxed) + static_cast<std::uint32_t>(d),
                std::memory_order_release);
      };
      add(in_place);
      if (e & pte::kWrite) add(in_place_write);
    }
    void touch(std::uint32_t epoch) {
      if (touched.load(std::memory_order_relaxed) != epoch)
        touched.store(epoch, std::memory_order_relaxed);
    }
  };
  base::RadixTable<Leaf, os::RuntimeMemory> table_;
  std::atomic<std::int64_t> valid_{0};  // written under the mirror's state lock
};

}  // namespace hetmm::device::sim
