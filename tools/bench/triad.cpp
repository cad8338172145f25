// STREAM triad, a = b + s*c, repeated: pure streaming, every byte touched once per repetition.
#include <algorithm>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class Triad final : public Workload {
 public:
  const char* name() const override { return "triad"; }

  void setup(std::size_t bytes, std::uint64_t seed) override {
    n_ = std::max(kChunk, bytes / (3 * sizeof(float)) / kChunk * kChunk);
    Rng rng(seed);
    std::vector<float> b(n_), c(n_);
    for (float& x : b) x = rng.uniform(-1, 1);
    for (float& x : c) x = rng.uniform(-1, 1);
    expect_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) expect_[i] = b[i] + kScalar * c[i];
    add("a", Role::output, n_ * sizeof(float));
    add("b", Role::input, n_ * sizeof(float)).set_init(b);
    add("c", Role::input, n_ * sizeof(float)).set_init(c);
  }

  void run(Runtime&, Device& dev, Mode) override {
    float* a = array(0).as<float>();
    const float* b = array(1).as<float>();
    const float* c = array(2).as<float>();
    std::size_t n = n_;
    bool spans = this->spans();
    for (int rep = 0; rep < kReps; ++rep) {
      dev.launch((n + kChunk - 1) / kChunk, [=](Thread& t) {
        std::size_t first = t.id() * kChunk;
        std::size_t k = std::min(kChunk, n - first);
        float lb[kChunk], lc[kChunk];
        read_into(t, b + first, k, spans, lb);
        read_into(t, c + first, k, spans, lc);
        write_range(t, a + first, k, spans, [&](std::size_t i) { return lb[i] + kScalar * lc[i]; });
      });
      dev.synchronize();
    }
  }

  // The inputs are only read; the output is overwritten before it is read.
  void hints(Runtime& rt, std::size_t device_memory) override {
    advise(rt, array(1), Advice::read_mostly);
    advise(rt, array(2), Advice::read_mostly);
    advise(rt, array(0), Advice::write_only);
    place_in_order(rt, {&array(1), &array(2), &array(0)}, device_memory);
  }

  bool verify() const override { return holds(array(0), expect_.data()); }

 private:
  static constexpr std::size_t kChunk = 1024;  // elements per device thread: a page of floats
  static constexpr int kReps = 4;
  static constexpr float kScalar = 3.0f;
  std::size_t n_ = 0;
  std::vector<float> expect_;
};

}  // namespace

std::unique_ptr<Workload> make_triad() { return std::make_unique<Triad>(); }

}  // namespace hetmm::bench
