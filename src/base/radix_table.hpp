// Layer base: includes only the standard library and <hetmm/hetmm.hpp>.
// A sparse table keyed by 2 MiB block number: four levels of 512 atomic pointers.
//
// Lookups are lock-free (workers, the userfaultfd handler and signal handlers read it);
// insertions happen under the owner's lock. Nodes and leaves come from `Memory` (for hetmm's
// tables, os::RuntimeMemory: runtime memory, which the fault path may touch) and are freed only
// when the table is destroyed, so a reader never sees a freed node. Memory provides
// `template <class T, class... A> static T* make(A&&...)` and `template <class T> static void
// destroy(T*)`.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hetmm::base {

template <class Leaf, class Memory>
class RadixTable {
 public:
  RadixTable() { root_ = Memory::template make<Node>(); }
  ~RadixTable() { destroy(root_, 0); }
  RadixTable(const RadixTable&) = delete;
  RadixTable& operator=(const RadixTable&) = delete;

  Leaf* find(std::uint64_t key) const {
    Node* n = root_;
    for (int level = 0; level < kLevels - 1; ++level) {
      n = static_cast<Node*>(n->slot[index(key, level)].load(std::memory_order_acquire));
      if (n == nullptr) return nullptr;
    }
    return static_cast<Leaf*>(n->slot[index(key, kLevels - 1)].load(std::memory_order_acquire));
  }

  // Caller holds the owner's lock. make() constructs the leaf.
  template <class Make>
  Leaf* get_or_create(std::uint64_t key, Make&& make) {
    Node* n = root_;
    for (int level = 0; level < kLevels - 1; ++level) {
      auto& s = n->slot[index(key, level)];
      void* next = s.load(std::memory_order_acquire);
      if (next == nullptr) {
        next = Memory::template make<Node>();
        s.store(next, std::memory_order_release);
      }
      n = static_cast<Node*>(next);
    }
    auto& s = n->slot[index(key, kLevels - 1)];
    void* leaf = s.load(std::memory_order_acquire);
    if (leaf == nullptr) {
      leaf = make();
      s.store(leaf, std::memory_order_release);
    }
    return static_cast<Leaf*>(leaf);
  }

  // Visits every leaf in key order.
  template <class F>
  void for_each(F&& f) const {
    walk(root_, 0, f);
  }

 private:
  static constexpr int kLevels = 4;  // 36 bits of block number: 57-bit virtual addresses
  struct Node {
    std::atomic<void*> slot[512] = {};
  };
  static std::size_t index(std::uint64_t key, int level) {
    return (key >> (9 * (kLevels - 1 - level))) & 511;
  }
  template <class F>
  static void walk(Node* n, int level, F& f) {
    for (auto& s : n->slot) {
      void* p = s.load(std::memory_order_acquire);
      if (p == nullptr) continue;
      if (level == kLevels - 1) f(*static_cast<Leaf*>(p));
      else walk(static_cast<Node*>(p), level + 1, f);
    }
  }
  static void destroy(Node* n, int level) {
    for (auto& s : n->slot) {
      void* p = s.load(std::memory_order_relaxed);
      if (p == nullptr) continue;
      if (level == kLevels - 1) Memory::destroy(static_cast<Leaf*>(p));
      else destroy(static_cast<Node*>(p), level + 1);
    }
    Memory::destroy(n);
  }
  Node* root_;
};

}  // namespace hetmm::base
