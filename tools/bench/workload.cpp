// The workload base (arrays bound to a runtime's memory), the mode names and the registry.
#include "workload.hpp"

#include <cstdio>
#include <cstring>

namespace hetmm::bench {

const char* to_string(Mode mode) noexcept {
  switch (mode) {
    case Mode::explicit_copy: return "explicit";
    case Mode::in_place: return "in-place";
    case Mode::on_demand_uvm: return "on-demand-uvm";
    case Mode::on_demand_hetmm: return "on-demand-hetmm";
    case Mode::hinted: return "hinted";
  }
  return "?";
}

bool parse_mode(std::string_view name, Mode* mode) {
  for (Mode m : kAllModes)
    if (name == to_string(m)) {
      *mode = m;
      return true;
    }
  return false;
}

std::vector<std::string> mode_names() {
  std::vector<std::string> v;
  for (Mode m : kAllModes) v.emplace_back(to_string(m));
  return v;
}

std::size_t Workload::footprint() const {
  std::size_t n = 0;
  for (const Array& a : arrays_) n += a.bytes;
  return n;
}

Array& Workload::add(std::string name, Role role, std::size_t bytes) {
  Array a;
  a.name = std::move(name);
  a.role = role;
  a.bytes = bytes;
  arrays_.push_back(std::move(a));
  return arrays_.back();
}

bool Workload::holds(const Array& a, const void* expected) const {
  if (a.live == nullptr) {
    mismatch_ = a.name + " is not bound";
    return false;
  }
  if (std::memcmp(a.live, expected, a.bytes) == 0) return true;
  // Where, and how much: a wrong page and a wrong element look different.
  const auto* got = a.live;
  const auto* want = static_cast<const std::byte*>(expected);
  std::size_t first = 0, differ = 0, pages = 0, last_page = ~std::size_t{0};
  for (std::size_t i = 0; i < a.bytes; ++i) {
    if (got[i] == want[i]) continue;
    if (differ++ == 0) first = i;
    if (i / 4096 != last_page) {
      last_page = i / 4096;
      ++pages;
    }
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%s differs from byte %zu (address %p, page offset %zu): %zu bytes on %zu pages",
                a.name.c_str(), first, static_cast<const void*>(got + first), first % 4096,
                differ, pages);
  mismatch_ = buf;
  return false;
}

void Workload::bind(Runtime& rt) {
  unbind(rt);
  for (Array& a : arrays_) {
    a.live = static_cast<std::byte*>(rt.allocate(a.bytes));
    // Zeroed arrays are written too, as a program's value-initialised buffers are: untouched
    // pages have nothing behind them to migrate.
    if (a.init.empty())
      std::memset(a.live, 0, a.bytes);
    else
      std::memcpy(a.live, a.init.data(), a.bytes);
  }
  bound_ = true;
}

void Workload::unbind(Runtime& rt) {
  for (Array& a : arrays_) {
    if (a.live != nullptr) rt.deallocate(a.live);
    a.live = nullptr;
  }
  bound_ = false;
}

std::unique_ptr<Workload> make_workload(std::string_view name) {
  if (name == "triad") return make_triad();
  if (name == "jacobi") return make_jacobi();
  if (name == "gather") return make_gather();
  if (name == "pagerank") return make_pagerank();
  if (name == "matmul") return make_matmul();
  if (name == "layers") return make_layers();
  return nullptr;
}

std::vector<std::string> workload_names() {
  return {"triad", "jacobi", "gather", "pagerank", "matmul", "layers"};
}

}  // namespace hetmm::bench
