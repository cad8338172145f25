// Helpers shared by the test files: runtimes on each tracking mode, mappings, patterns.
#pragma once

#include <hetmm/hetmm.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <sys/mman.h>
#include <vector>

namespace hetmm::test {

inline constexpr std::size_t kPage = 4096;

// Every scenario runs on both tracking modes.
class Tracked : public ::testing::TestWithParam<Tracking> {
 protected:
  Options options(std::size_t devices = 1, std::size_t memory = 64u << 20) const {
    Options o;
    o.devices = devices;
    o.device_memory = memory;
    o.workers = 2;
    o.tracking = GetParam();
    return o;
  }
};

inline std::string tracking_name(const ::testing::TestParamInfo<Tracking>& info) {
  return to_string(info.param);
}

#define HETMM_BOTH_MODES(suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(Modes, suite,                                                 \
                           ::testing::Values(::hetmm::Tracking::userfaultfd,              \
                                             ::hetmm::Tracking::mprotect),               \
                           ::hetmm::test::tracking_name)

// An anonymous private mapping, unmapped at scope exit (unless already unmapped).
class Mapping {
 public:
  explicit Mapping(std::size_t len, int prot = PROT_READ | PROT_WRITE,
                   int flags = MAP_PRIVATE | MAP_ANONYMOUS, int fd = -1)
      : len_(len) {
    p_ = static_cast<std::byte*>(::mmap(nullptr, len, prot, flags, fd, 0));
    if (p_ == MAP_FAILED) p_ = nullptr;
  }
  ~Mapping() {
    if (p_ == nullptr) return;
    // Not the hole: the process (hetmm's runtime memory, above all) may have mapped something
    // there since, and unmapping it corrupted the runtime (found as a crash in the runtime's
    // allocator in the test after one that punched a hole, and in repeated runs).
    ::munmap(p_, hole_off_);
    ::munmap(p_ + hole_off_ + hole_len_, len_ - hole_off_ - hole_len_);
  }
  // Unmaps [offset, offset + len) of the mapping (one hole per mapping); the destructor leaves
  // that range alone. Returns munmap's result.
  int punch(std::size_t offset, std::size_t len) {
    hole_off_ = offset;
    hole_len_ = len;
    return ::munmap(p_ + offset, len);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::byte* get() const { return p_; }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(p_);
  }
  std::size_t size() const { return len_; }
  void forget() { p_ = nullptr; }

 private:
  std::byte* p_;
  std::size_t len_;
  std::size_t hole_off_ = 0, hole_len_ = 0;
};

// Three pages at a fixed low address with the middle one unmapped: a hole that no other
// mapping of the process will fill (the kernel hands out addresses top-down, far above).
// Returns nullptr if the address is taken.
inline std::byte* low_hole_mapping() {
  auto* want = reinterpret_cast<void*>(std::uintptr_t{0x10000000});
  void* p = ::mmap(want, 3 * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p != want) {
    if (p != MAP_FAILED) ::munmap(p, 3 * kPage);
    return nullptr;
  }
  ::munmap(static_cast<std::byte*>(p) + kPage, kPage);
  return static_cast<std::byte*>(p);
}

inline void fill_pattern(void* p, std::size_t len, std::uint32_t seed) {
  auto* w = static_cast<std::uint32_t*>(p);
  for (std::size_t i = 0; i < len / 4; ++i) w[i] = seed * 2654435761u + static_cast<std::uint32_t>(i);
}
inline bool check_pattern(const void* p, std::size_t len, std::uint32_t seed) {
  auto* w = static_cast<const std::uint32_t*>(p);
  for (std::size_t i = 0; i < len / 4; ++i)
    if (w[i] != seed * 2654435761u + static_cast<std::uint32_t>(i)) return false;
  return true;
}

// Fills all of m with the pattern of seed and migrates it to the device.
inline void fill_and_migrate(Device& dev, const Mapping& m, std::uint32_t seed) {
  fill_pattern(m.get(), m.size(), seed);
  dev.migrate_to_device(m.get(), m.size());
}

// A bare anonymous mapping (the test unmaps or remaps it itself), filled with the pattern of
// seed and migrated to the device.
inline std::byte* mmap_filled_on_device(Device& dev, std::size_t len, std::uint32_t seed) {
  auto* p = static_cast<std::byte*>(
      ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return nullptr;
  fill_pattern(p, len, seed);
  dev.migrate_to_device(p, len);
  return p;
}

// userfaultfd events are handled just after the call that raised them: wait (at most 5 s) for
// the device's memory use to reach `bytes`, and return what it is.
inline std::size_t wait_for_used(Device& dev, std::size_t bytes) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (dev.memory_used() != bytes && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return dev.memory_used();
}

template <class F>
Errc error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "expected a hetmm::Error";
  return Errc::unsupported;
}

}  // namespace hetmm::test
