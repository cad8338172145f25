// The real side of the differential tester: the slots mapped in this process, the runtime's
// devices, and the threads that run a step's operations at the same time. Each operation's
// outcome is compared with what the shadow model predicts (program.hpp).
#pragma once

#include "program.hpp"

#include <hetmm/hetmm.hpp>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hetmm::stress {

struct Divergence {
  std::size_t step = 0;
  Op op;
  std::string what;
};

struct Counters {
  std::array<std::uint64_t, static_cast<std::size_t>(OpKind::kCount)> ops{};
  std::uint64_t skipped = 0;           // operations the model refused to run (replays)
  std::array<std::uint64_t, 8> errors{};  // expected errors seen, by Errc
  std::uint64_t steps = 0;
  std::uint64_t total_ops() const {
    std::uint64_t n = 0;
    for (auto v : ops) n += v;
    return n;
  }
  void add(const Counters& o);
};

// Runs functions on fixed threads, all at once, and waits for them: a step's operations come
// from different CPU threads, the same ones every step.
class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  unsigned size() const { return static_cast<unsigned>(threads_.size()); }
  void run(std::vector<std::function<void()>>& jobs);  // jobs.size() <= size()

 private:
  void main(unsigned index);
  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::function<void()>>* jobs_ = nullptr;
  std::uint64_t generation_ = 0;
  unsigned pending_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class World {
 public:
  World(Runtime& rt, const std::vector<std::pair<SlotKind, std::uint32_t>>& slots,
        bool oom_possible, bool fork);
  ~World();  // unmaps every slot
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const Model& model() const { return model_; }
  // Runs one step and compares; the model follows what was predicted.
  std::optional<Divergence> run(const Step& step, std::size_t index, ThreadPool& pool,
                                Counters& counters);
  // Every readable byte of every slot, read by the CPU and through device 0.
  std::optional<Divergence> check_all(std::size_t index);

 private:
  struct Expect;
  struct Outcome;
  Expect expect(const Op& op) const;
  void execute(const Op& op, const Expect& e, Outcome& out);
  std::optional<std::string> compare(const Op& op, const Expect& e, Outcome& out);
  void apply(const Op& op, const Expect& e, const Outcome& out);
  void map_slot(SlotModel& s, SlotKind kind, std::size_t pages);
  void unmap_slot(SlotModel& s);
  std::optional<std::string> compare_memory(const SlotModel& s, const std::byte* actual,
                                            std::size_t offset, std::size_t length) const;

  Runtime& rt_;
  Model model_;
};

// The byte that pattern `seed` puts at byte `pos` of a slot.
inline std::byte pattern_byte(std::uint32_t seed, std::size_t pos) {
  std::uint32_t v = seed * 0x9e3779b1u + static_cast<std::uint32_t>(pos) * 2654435761u;
  return static_cast<std::byte>((v >> 24) ^ (v >> 11));
}

}  // namespace hetmm::stress
