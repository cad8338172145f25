// Embedding-bag gather: each bag sums K rows of a table picked from a Zipf(1.0) distribution
// over hashed (randomly permuted) row ids, in several batches: a skewed, scattered read set.
#include <algorithm>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class Gather final : public Workload {
 public:
  const char* name() const override { return "gather"; }

  void setup(std::size_t bytes, std::uint64_t seed) override {
    constexpr std::size_t kRowBytes = kDim * sizeof(float);
    constexpr std::size_t kBagBytes = kBag * sizeof(std::uint32_t) + kRowBytes;
    // Per row: the row itself and its share of the bags (indices and output).
    rows_ = std::max<std::size_t>(64, bytes / (kRowBytes + kLookupsPerRow * kBagBytes / kBag));
    bags_ = std::max(kBatches, rows_ * kLookupsPerRow / kBag / kBatches * kBatches);
    Rng rng(seed);
    std::vector<float> table(rows_ * kDim);
    for (float& x : table) x = rng.uniform(-1, 1);
    Zipf zipf(rows_, 1.0);
    std::vector<std::uint32_t> id_of_rank = permutation(rows_, rng);
    std::vector<std::uint32_t> idx(bags_ * kBag);
    for (std::uint32_t& i : idx) i = id_of_rank[zipf(rng)];
    expect_.assign(bags_ * kDim, 0.0f);
    for (std::size_t b = 0; b < bags_; ++b)
      for (std::size_t k = 0; k < kBag; ++k)
        for (std::size_t d = 0; d < kDim; ++d)
          expect_[b * kDim + d] += table[idx[b * kBag + k] * kDim + d];
    add("table", Role::input, table.size() * sizeof(float)).set_init(table);
    add("indices", Role::input, idx.size() * sizeof(std::uint32_t)).set_init(idx);
    add("out", Role::output, bags_ * kRowBytes);
  }

  void run(Runtime&, Device& dev, Mode) override {
    const float* table = array(0).as<float>();
    const std::uint32_t* idx = array(1).as<std::uint32_t>();
    float* out = array(2).as<float>();
    bool spans = this->spans();
    std::size_t per_batch = bags_ / kBatches;
    for (std::size_t batch = 0; batch < kBatches; ++batch) {
      dev.launch(per_batch, [=](Thread& t) {
        std::size_t bag = batch * per_batch + t.id();
        std::uint32_t ids[kBag];
        read_into(t, idx + bag * kBag, kBag, spans, ids);
        float acc[kDim] = {};
        for (std::size_t k = 0; k < kBag; ++k)
          read_range(t, table + std::size_t{ids[k]} * kDim, kDim, spans,
                     [&](std::size_t d, float v) { acc[d] += v; });
        write_from(t, out + bag * kDim, kDim, spans, acc);
      });
      dev.synchronize();
    }
  }

  // The table is only read; the indices are used once; the output is overwritten. When it all
  // fits, it is put on the device; when not, which pages are hot is for the policy to find
  // (the hot ids are scattered over the whole table).
  void hints(Runtime& rt, std::size_t device_memory) override {
    advise(rt, array(0), Advice::read_mostly);
    advise(rt, array(1), Advice::streaming);
    advise(rt, array(2), Advice::write_only);
    if (footprint() <= planning_budget(device_memory))
      place_in_order(rt, {&array(0), &array(1), &array(2)}, device_memory);
  }

  bool verify() const override { return holds(array(2), expect_.data()); }

 private:
  static constexpr std::size_t kDim = 64;           // floats per row
  static constexpr std::size_t kBag = 32;           // lookups per bag
  static constexpr std::size_t kBatches = 4;        // kernels
  static constexpr std::size_t kLookupsPerRow = 2;  // on average, over all batches
  std::size_t rows_ = 0, bags_ = 0;
  std::vector<float> expect_;
};

}  // namespace

std::unique_ptr<Workload> make_gather() { return std::make_unique<Gather>(); }

}  // namespace hetmm::bench
