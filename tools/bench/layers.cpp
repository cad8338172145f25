// A layer sweep, as in training a stack of dense layers on one sample: forward through L weight
// arrays (x' = relu(W x)), then backward in reverse order (g = W^T (g' * relu'), with an SGD
// update of W in the same pass). The layer used last going forward is the first going back.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class Layers final : public Workload {
 public:
  const char* name() const override { return "layers"; }

  // Arrays: 0 activations ((L+1) x D), 1 gradients ((L+1) x D), 2.. weights W_l (D x D).
  void setup(std::size_t bytes, std::uint64_t seed) override {
    std::size_t floats = bytes / sizeof(float);
    std::size_t d = static_cast<std::size_t>(std::sqrt(static_cast<double>(floats) / kLayers));
    d = d / kCols * kCols;
    while (d > kCols && kLayers * d * d + 2 * (kLayers + 1) * d > floats) d -= kCols;
    d_ = std::max(kCols, d);
    Rng rng(seed);
    float scale = std::sqrt(6.0f / static_cast<float>(d_));
    std::vector<std::vector<float>> w(kLayers, std::vector<float>(d_ * d_));
    for (auto& wl : w)
      for (float& x : wl) x = rng.uniform(-scale, scale);
    std::vector<float> acts((kLayers + 1) * d_, 0.0f), grads((kLayers + 1) * d_, 0.0f);
    for (std::size_t i = 0; i < d_; ++i) acts[i] = rng.uniform(0, 1);
    add("activations", Role::inout, acts.size() * sizeof(float)).set_init(acts);
    add("gradients", Role::output, grads.size() * sizeof(float));
    for (std::size_t l = 0; l < kLayers; ++l) {
      // Not "w" + std::to_string(l): GCC 12's -Wrestrict false positive in std::string's
      // operator+(const char*, string&&) at -O3 (GCC bugs 105329, 105651).
      std::string name = "w";
      name += std::to_string(l);
      add(std::move(name), Role::inout, d_ * d_ * sizeof(float)).set_init(w[l]);
    }

    for (std::size_t l = 0; l < kLayers; ++l)
      for (std::size_t i = 0; i < d_; ++i)
        acts[(l + 1) * d_ + i] = forward_row(w[l].data() + i * d_, acts.data() + l * d_, d_);
    std::copy_n(acts.data() + kLayers * d_, d_, grads.data() + kLayers * d_);
    for (std::size_t l = kLayers; l-- > 0;) {
      std::vector<float> gp = masked(grads.data() + (l + 1) * d_, acts.data() + (l + 1) * d_, d_);
      for (std::size_t c0 = 0; c0 < d_; c0 += kCols) {
        float gl[kCols] = {};
        for (std::size_t i = 0; i < d_; ++i)
          backward_row(w[l].data() + i * d_ + c0, gp[i], acts.data() + l * d_ + c0, gl);
        std::copy_n(gl, kCols, grads.data() + l * d_ + c0);
      }
    }
    expect_acts_ = std::move(acts);
    expect_grads_ = std::move(grads);
    expect_w_ = std::move(w);
  }

  void run(Runtime&, Device& dev, Mode) override {
    float* acts = array(0).as<float>();
    float* grads = array(1).as<float>();
    std::size_t d = d_;
    bool spans = this->spans();
    for (std::size_t l = 0; l < kLayers; ++l) {
      const float* w = array(2 + l).as<float>();
      dev.launch((d + kRows - 1) / kRows, [=](Thread& t) {
        std::size_t r0 = t.id() * kRows, nr = std::min(kRows, d - r0);
        std::vector<float> x(d), row(d);
        read_into(t, acts + l * d, d, spans, x.data());
        float out[kRows];
        for (std::size_t r = 0; r < nr; ++r) {
          read_into(t, w + (r0 + r) * d, d, spans, row.data());
          out[r] = forward_row(row.data(), x.data(), d);
        }
        write_from(t, acts + (l + 1) * d + r0, nr, spans, out);
      });
      dev.synchronize();
    }
    // The loss is half the squared output: its gradient is the output.
    dev.launch(1, [=](Thread& t) {
      std::vector<float> x(d);
      read_into(t, acts + kLayers * d, d, spans, x.data());
      write_from(t, grads + kLayers * d, d, spans, x.data());
    });
    dev.synchronize();
    for (std::size_t l = kLayers; l-- > 0;) {
      float* w = array(2 + l).as<float>();
      dev.launch(d / kCols, [=](Thread& t) {
        std::size_t c0 = t.id() * kCols;
        std::vector<float> g(d), y(d);
        read_into(t, grads + (l + 1) * d, d, spans, g.data());
        read_into(t, acts + (l + 1) * d, d, spans, y.data());
        std::vector<float> gp = masked(g.data(), y.data(), d);
        float x[kCols], gl[kCols] = {}, wrow[kCols];
        read_into(t, acts + l * d + c0, kCols, spans, x);
        for (std::size_t i = 0; i < d; ++i) {
          read_into(t, w + i * d + c0, kCols, spans, wrow);
          backward_row(wrow, gp[i], x, gl);
          write_from(t, w + i * d + c0, kCols, spans, wrow);
        }
        write_from(t, grads + l * d + c0, kCols, spans, gl);
      });
      dev.synchronize();
    }
  }

  // Weights are read and written (no read-only copies); the activation and gradient vectors
  // are small and hot. What fits lives on the device, the layers at the turn first.
  void hints(Runtime& rt, std::size_t device_memory) override {
    std::vector<const Array*> order{&array(0), &array(1)};
    for (std::size_t l = kLayers; l-- > 0;) order.push_back(&array(2 + l));
    place_in_order(rt, order, device_memory);
  }

  bool verify() const override {
    if (!holds(array(0), expect_acts_.data()) || !holds(array(1), expect_grads_.data()))
      return false;
    for (std::size_t l = 0; l < kLayers; ++l)
      if (!holds(array(2 + l), expect_w_[l].data())) return false;
    return true;
  }

 private:
  static float forward_row(const float* w, const float* x, std::size_t d) {
    float s = 0.0f;
    for (std::size_t j = 0; j < d; ++j) s += w[j] * x[j];
    return s > 0.0f ? s : 0.0f;
  }
  // The upstream gradient through relu: zero where the layer's output was clipped.
  static std::vector<float> masked(const float* g, const float* y, std::size_t d) {
    std::vector<float> gp(d);
    for (std::size_t i = 0; i < d; ++i) gp[i] = y[i] > 0.0f ? g[i] : 0.0f;
    return gp;
  }
  // One row's kCols weights: their share of the input gradient, then their SGD step.
  static void backward_row(float* w, float gi, const float* x, float* gl) {
    for (std::size_t j = 0; j < kCols; ++j) {
      gl[j] += w[j] * gi;
      w[j] -= kRate * gi * x[j];
    }
  }

  static constexpr std::size_t kLayers = 8;
  static constexpr std::size_t kRows = 16;  // rows per device thread, forward
  static constexpr std::size_t kCols = 16;  // columns per device thread, backward
  static constexpr float kRate = 0.01f;
  std::size_t d_ = 0;
  std::vector<float> expect_acts_, expect_grads_;
  std::vector<std::vector<float>> expect_w_;
};

}  // namespace

std::unique_ptr<Workload> make_layers() { return std::make_unique<Layers>(); }

}  // namespace hetmm::bench
