// 2D Jacobi: a five-point stencil over an n x n grid, ping-ponging between two grids for many
// iterations; both grids are swept every iteration, so what stays on the device pays off.
#include <algorithm>
#include <cmath>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class Jacobi final : public Workload {
 public:
  const char* name() const override { return "jacobi"; }

  void setup(std::size_t bytes, std::uint64_t seed) override {
    n_ = std::max<std::size_t>(16,
                               static_cast<std::size_t>(std::sqrt(bytes / (2.0 * sizeof(float)))));
    Rng rng(seed);
    std::vector<float> g(n_ * n_, 0.0f);
    for (std::size_t r = 1; r + 1 < n_; ++r)
      for (std::size_t c = 1; c + 1 < n_; ++c) g[r * n_ + c] = rng.uniform(0, 1);
    for (std::size_t c = 0; c < n_; ++c) g[c] = 1.0f;       // a hot top edge
    for (std::size_t r = 0; r < n_; ++r) g[r * n_] = 0.5f;  // a warm left edge
    add("grid_a", Role::inout, g.size() * sizeof(float)).set_init(g);
    add("grid_b", Role::input, g.size() * sizeof(float)).set_init(g);  // its edges are fixed too
    std::vector<float> other = g;
    for (int it = 0; it < kIterations; ++it) {
      std::vector<float>& src = it % 2 == 0 ? g : other;
      std::vector<float>& dst = it % 2 == 0 ? other : g;
      for (std::size_t r = 1; r + 1 < n_; ++r)
        sweep_row(src.data() + (r - 1) * n_, dst.data() + r * n_, n_);
    }
    expect_ = std::move(g);  // an even number of iterations ends in grid_a
  }

  void run(Runtime&, Device& dev, Mode) override {
    std::size_t n = n_;
    bool spans = this->spans();
    for (int it = 0; it < kIterations; ++it) {
      const float* src = array(it % 2).as<float>();
      float* dst = array(1 - it % 2).as<float>();
      dev.launch((n - 2 + kRows - 1) / kRows, [=](Thread& t) {
        std::size_t r0 = 1 + t.id() * kRows;
        std::size_t r1 = std::min(n - 1, r0 + kRows);
        // Rows r0-1 .. r1 are contiguous: one sweep brings the block and its halo.
        std::vector<float> window((r1 - r0 + 2) * n), out(n);
        read_into(t, src + (r0 - 1) * n, window.size(), spans, window.data());
        for (std::size_t r = r0; r < r1; ++r) {
          sweep_row(window.data() + (r - r0) * n, out.data(), n);
          write_from(t, dst + r * n, n, spans, out.data());
        }
      });
      dev.synchronize();
    }
  }

  void hints(Runtime& rt, std::size_t device_memory) override {
    place_in_order(rt, {&array(0), &array(1)}, device_memory);
  }

  bool verify() const override { return holds(array(0), expect_.data()); }

 private:
  // One output row from the three input rows starting at `above`; the edges are kept.
  static void sweep_row(const float* above, float* out, std::size_t n) {
    const float* row = above + n;
    const float* below = row + n;
    out[0] = row[0];
    out[n - 1] = row[n - 1];
    for (std::size_t c = 1; c + 1 < n; ++c)
      out[c] = 0.25f * (above[c] + below[c] + row[c - 1] + row[c + 1]);
  }

  static constexpr int kIterations = 8;
  static constexpr std::size_t kRows = 8;  // rows per device thread
  std::size_t n_ = 0;
  std::vector<float> expect_;
};

}  // namespace

std::unique_ptr<Workload> make_jacobi() { return std::make_unique<Jacobi>(); }

}  // namespace hetmm::bench
