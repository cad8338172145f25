// Contiguous sweeps inside kernels, in either form: the span fast path (one translation per
// page) or one Thread::load/store per element. The workloads call these so that a run can
// switch forms without changing what it computes.
#pragma once

#include <cstddef>
#include <hetmm/hetmm.hpp>

namespace hetmm::bench {

// Calls f(i, value) for i in [0, n), in order.
template <class T, class F>
void read_range(Thread& t, const T* p, std::size_t n, bool spans, F&& f) {
  if (spans) {
    std::size_t i = 0;
    t.read_span(p, n, [&](const T* piece, std::size_t k) {
      for (std::size_t j = 0; j < k; ++j) f(i + j, piece[j]);
      i += k;
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) f(i, t.load(p + i));
  }
}

// Copies [p, p+n) into the kernel's own buffer `out` (registers/shared memory on a GPU).
template <class T>
void read_into(Thread& t, const T* p, std::size_t n, bool spans, T* out) {
  read_range(t, p, n, spans, [out](std::size_t i, T v) { out[i] = v; });
}

// Stores f(i) at p[i] for i in [0, n), in order.
template <class T, class F>
void write_range(Thread& t, T* p, std::size_t n, bool spans, F&& f) {
  if (spans) {
    std::size_t i = 0;
    t.write_span(p, n, [&](T* piece, std::size_t k) {
      for (std::size_t j = 0; j < k; ++j) piece[j] = f(i + j);
      i += k;
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) t.store(p + i, f(i));
  }
}

template <class T>
void write_from(Thread& t, T* p, std::size_t n, bool spans, const T* in) {
  write_range(t, p, n, spans, [in](std::size_t i) { return in[i]; });
}

}  // namespace hetmm::bench
