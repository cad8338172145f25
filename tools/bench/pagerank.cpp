// PageRank, pull form, on a generated power-law graph in CSR (in-edges by destination): each
// iteration streams the edge array and reads the sources' contributions at random, skewed
// toward popular vertices.
#include <algorithm>

#include "access.hpp"
#include "placement.hpp"
#include "random.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

class PageRank final : public Workload {
 public:
  const char* name() const override { return "pagerank"; }

  // Arrays: 0 row_ptr, 1 col, 2 inv_outdeg, 3 rank (result), 4 rank_next, 5 contrib.
  void setup(std::size_t bytes, std::uint64_t seed) override {
    constexpr std::size_t kPerVertex = 4 * (kDegree + 1) + 4 * sizeof(float) + 4;
    n_ = std::max<std::size_t>(256, bytes / kPerVertex);
    std::size_t edges = n_ * kDegree;
    Rng rng(seed);
    // Popularity (in-degree) and activity (out-degree) follow power laws over independent
    // random orders of the vertices; every vertex links at least once, so none dangles.
    Zipf popular(n_, 0.9), active(n_, 0.6);
    std::vector<std::uint32_t> by_popularity = permutation(n_, rng);
    std::vector<std::uint32_t> by_activity = permutation(n_, rng);
    std::vector<std::uint32_t> src(edges), dst(edges);
    for (std::size_t e = 0; e < edges; ++e) {
      src[e] = e < n_ ? static_cast<std::uint32_t>(e) : by_activity[active(rng)];
      dst[e] = by_popularity[popular(rng)];
    }
    std::vector<std::uint32_t> row(n_ + 1, 0), col(edges), outdeg(n_, 0);
    for (std::size_t e = 0; e < edges; ++e) {
      ++row[dst[e] + 1];
      ++outdeg[src[e]];
    }
    for (std::size_t v = 0; v < n_; ++v) row[v + 1] += row[v];
    std::vector<std::uint32_t> fill(row.begin(), row.end() - 1);
    for (std::size_t e = 0; e < edges; ++e) col[fill[dst[e]]++] = src[e];
    std::vector<float> inv(n_), rank(n_, 1.0f / static_cast<float>(n_));
    for (std::size_t v = 0; v < n_; ++v) inv[v] = 1.0f / static_cast<float>(outdeg[v]);

    std::vector<float> next(n_), contrib(n_);
    for (int it = 0; it < kIterations; ++it) {
      for (std::size_t u = 0; u < n_; ++u) contrib[u] = rank[u] * inv[u];
      for (std::size_t v = 0; v < n_; ++v) {
        float sum = 0.0f;
        for (std::uint32_t e = row[v]; e < row[v + 1]; ++e) sum += contrib[col[e]];
        next[v] = base() + kDamping * sum;
      }
      std::swap(rank, next);
    }
    expect_ = rank;  // an even number of iterations ends in array 3

    add("row_ptr", Role::input, row.size() * 4).set_init(row);
    add("col", Role::input, col.size() * 4).set_init(col);
    add("inv_outdeg", Role::input, n_ * 4).set_init(inv);
    add("rank", Role::inout, n_ * 4)
        .set_init(std::vector<float>(n_, 1.0f / static_cast<float>(n_)));
    add("rank_next", Role::scratch, n_ * 4);
    add("contrib", Role::scratch, n_ * 4);
  }

  void run(Runtime&, Device& dev, Mode) override {
    const std::uint32_t* row = array(0).as<std::uint32_t>();
    const std::uint32_t* col = array(1).as<std::uint32_t>();
    const float* inv = array(2).as<float>();
    float* contrib = array(5).as<float>();
    std::size_t n = n_;
    float b = base();
    bool spans = this->spans();
    for (int it = 0; it < kIterations; ++it) {
      const float* rank = array(3 + it % 2).as<float>();
      float* next = array(4 - it % 2).as<float>();
      dev.launch((n + kChunk - 1) / kChunk, [=](Thread& t) {
        std::size_t first = t.id() * kChunk;
        std::size_t k = std::min(kChunk, n - first);
        float r[kChunk], w[kChunk];
        read_into(t, rank + first, k, spans, r);
        read_into(t, inv + first, k, spans, w);
        write_range(t, contrib + first, k, spans, [&](std::size_t i) { return r[i] * w[i]; });
      });
      dev.synchronize();
      dev.launch((n + kVertices - 1) / kVertices, [=](Thread& t) {
        std::size_t v0 = t.id() * kVertices;
        std::size_t nv = std::min(kVertices, n - v0);
        std::uint32_t rp[kVertices + 1];
        read_into(t, row + v0, nv + 1, spans, rp);
        // The edge list is read as a stream, the sources' contributions one by one.
        std::vector<std::uint32_t> src(rp[nv] - rp[0]);
        if (!src.empty()) read_into(t, col + rp[0], src.size(), spans, src.data());
        float out[kVertices];
        for (std::size_t v = 0; v < nv; ++v) {
          float sum = 0.0f;
          for (std::uint32_t e = rp[v]; e < rp[v + 1]; ++e) sum += t.load(contrib + src[e - rp[0]]);
          out[v] = b + kDamping * sum;
        }
        write_from(t, next + v0, nv, spans, out);
      });
      dev.synchronize();
    }
  }

  // The graph is only read; the vectors read at random (contributions, ranks) are worth the
  // device most, the edge stream least. (The scratch vectors are not write_only: they are read
  // back by the device after they are written, and a page evicted in between must keep its
  // data when it returns.)
  void hints(Runtime& rt, std::size_t device_memory) override {
    for (std::size_t i = 0; i < 3; ++i) advise(rt, array(i), Advice::read_mostly);
    place_in_order(rt, {&array(5), &array(3), &array(4), &array(2), &array(0), &array(1)},
                   device_memory);
  }

  bool verify() const override { return holds(array(3), expect_.data()); }

 private:
  float base() const { return (1.0f - kDamping) / static_cast<float>(n_); }

  static constexpr std::size_t kDegree = 16;  // average in-degree
  static constexpr int kIterations = 6;
  static constexpr float kDamping = 0.85f;
  static constexpr std::size_t kChunk = 1024;    // vertices per thread, contributions
  static constexpr std::size_t kVertices = 256;  // vertices per thread, the pull
  std::size_t n_ = 0;
  std::vector<float> expect_;
};

}  // namespace

std::unique_ptr<Workload> make_pagerank() { return std::make_unique<PageRank>(); }

}  // namespace hetmm::bench
