// Tiled matrix multiply as a dense layer applies it: C_b = A_b x W^T for several batches b of
// kM input rows, with the weights W (n x n) stored output-major, as PyTorch's Linear keeps
// them. One kernel per batch; each device thread owns a strip of kT output columns, so it
// reads its kT rows of W once (contiguous) and the batch's A, tile by tile. W is reused by
// every batch, A_b by every thread.
#include <algorithm>
#include <cmath>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class MatMul final : public Workload {
 public:
  const char* name() const override { return "matmul"; }

  // Arrays: 0 A (kBatches kM x n), 1 W (n x n), 2 C (kBatches kM x n).
  void setup(std::size_t bytes, std::uint64_t seed) override {
    // n^2 + 2 R n floats fit in `bytes`, R = kBatches kM rows.
    double r = kRows;
    double n = std::sqrt(r * r + static_cast<double>(bytes) / sizeof(float)) - r;
    n_ = std::max(kT, static_cast<std::size_t>(n) / kT * kT);
    Rng rng(seed);
    std::vector<float> a(kRows * n_), w(n_ * n_);
    for (float& x : a) x = rng.uniform(-1, 1);
    for (float& x : w) x = rng.uniform(-1, 1);
    expect_.resize(kRows * n_);
    // Each C element sums its products in ascending k, as the tiles do.
    for (std::size_t i = 0; i < kRows; ++i)
      for (std::size_t j = 0; j < n_; ++j) {
        float s = 0.0f;
        for (std::size_t k = 0; k < n_; ++k) s += a[i * n_ + k] * w[j * n_ + k];
        expect_[i * n_ + j] = s;
      }
    add("A", Role::input, a.size() * sizeof(float)).set_init(a);
    add("W", Role::input, w.size() * sizeof(float)).set_init(w);
    add("C", Role::output, kRows * n_ * sizeof(float));
  }

  void run(Runtime&, Device& dev, Mode) override {
    const float* w = array(1).as<float>();
    std::size_t n = n_;
    bool spans = this->spans();
    for (std::size_t b = 0; b < kBatches; ++b) {
      const float* a = array(0).as<float>() + b * kM * n;
      float* c = array(2).as<float>() + b * kM * n;
      dev.launch(n / kT, [=](Thread& t) {
        std::size_t j0 = t.id() * kT;
        float acc[kM][kT] = {}, at[kM][kT], wt[kT][kT];
        for (std::size_t k0 = 0; k0 < n; k0 += kT) {
          for (std::size_t jj = 0; jj < kT; ++jj)
            read_into(t, w + (j0 + jj) * n + k0, kT, spans, wt[jj]);
          for (std::size_t i = 0; i < kM; ++i) read_into(t, a + i * n + k0, kT, spans, at[i]);
          for (std::size_t i = 0; i < kM; ++i)
            for (std::size_t jj = 0; jj < kT; ++jj) {
              float s = acc[i][jj];
              for (std::size_t kk = 0; kk < kT; ++kk) s += at[i][kk] * wt[jj][kk];
              acc[i][jj] = s;
            }
        }
        for (std::size_t i = 0; i < kM; ++i) write_from(t, c + i * n + j0, kT, spans, acc[i]);
      });
      dev.synchronize();
    }
  }

  // Both operands are only read, the batch inputs the most often; C is overwritten.
  void hints(Runtime& rt, std::size_t device_memory) override {
    advise(rt, array(0), Advice::read_mostly);
    advise(rt, array(1), Advice::read_mostly);
    advise(rt, array(2), Advice::write_only);
    place_in_order(rt, {&array(0), &array(1), &array(2)}, device_memory);
  }

  bool verify() const override { return holds(array(2), expect_.data()); }

 private:
  static constexpr std::size_t kT = 16;       // tile edge
  static constexpr std::size_t kM = 16;       // rows per batch
  static constexpr std::size_t kBatches = 4;  // kernels, each reading all of W
  static constexpr std::size_t kRows = kM * kBatches;
  std::size_t n_ = 0;
  std::vector<float> expect_;
};

}  // namespace

std::unique_ptr<Workload> make_matmul() { return std::make_unique<MatMul>(); }

}  // namespace hetmm::bench
