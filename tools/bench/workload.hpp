// `hetmm bench` workloads: what HMM users run, each sized from a byte budget, run through the
// device MMU in one of five modes, and checked against a plain CPU computation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <hetmm/hetmm.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hetmm::bench {

enum class Mode {
  explicit_copy,    // in_place policy; every array prefetched to the device, outputs home after
  in_place,         // PolicyProfile::in_place: the device never migrates on its faults
  on_demand_uvm,    // PolicyProfile::uvm
  on_demand_hetmm,  // PolicyProfile::hetmm
  hinted,           // PolicyProfile::hetmm plus the workload's advice and prefetches
};
inline constexpr Mode kAllModes[] = {Mode::explicit_copy, Mode::in_place, Mode::on_demand_uvm,
                                     Mode::on_demand_hetmm, Mode::hinted};
const char* to_string(Mode mode) noexcept;
bool parse_mode(std::string_view name, Mode* mode);
std::vector<std::string> mode_names();

// What the runner does with an array around the compute phase in explicit mode: inputs (and
// in-out arrays) are copied to the device before, outputs (and in-out arrays) home after;
// scratch is only given device memory.
enum class Role { input, output, inout, scratch };

// One device-visible array of a workload. `init` is its initial contents, generated once by
// setup() and copied into fresh memory for every run (empty: zeros); `live` is that memory
// while a run is bound.
struct Array {
  std::string name;
  Role role = Role::input;
  std::size_t bytes = 0;
  std::vector<std::byte> init;
  std::byte* live = nullptr;
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(live);
  }
  template <class T>
  const T* initial() const {
    return reinterpret_cast<const T*>(init.data());
  }
  template <class T>
  void set_init(const std::vector<T>& v) {
    init.resize(v.size() * sizeof(T));
    std::memcpy(init.data(), v.data(), init.size());
  }
  bool copied_in() const { return role == Role::input || role == Role::inout; }
  bool copied_out() const { return role == Role::output || role == Role::inout; }
};

// A workload is created once per (workload, factor): setup() generates its inputs and the
// expected result; then each mode binds fresh memory on a fresh runtime, runs, and verifies.
class Workload {
 public:
  virtual ~Workload() = default;
  virtual const char* name() const = 0;

  // Generates the arrays (at most `bytes` in all) from `seed`, and the expected result with a
  // plain CPU computation of the same arithmetic in the same order.
  virtual void setup(std::size_t bytes, std::uint64_t seed) = 0;
  // Kernels, one launch per iteration/layer/pass, synchronized.
  virtual void run(Runtime& rt, Device& dev, Mode mode) = 0;
  // Advice and prefetches a user who knows the device's capacity would give (hinted mode).
  virtual void hints(Runtime& rt, std::size_t device_memory) = 0;
  // Compares the bound output arrays with the expected result.
  virtual bool verify() const = 0;

  std::vector<Array>& arrays() { return arrays_; }
  const std::vector<Array>& arrays() const { return arrays_; }
  std::size_t footprint() const;
  void bind(Runtime& rt);    // allocates every array with rt.allocate and fills it
  void unbind(Runtime& rt);  // deallocates them
  bool bound() const { return bound_; }
  // Sweep contiguous data with Thread::read_span/write_span (default) or one load/store per
  // element: both must give the same result, so either form measures the same workload.
  void set_spans(bool on) { spans_ = on; }
  // Where the last failed verify() found a difference (array, offset, page, bytes that differ).
  const std::string& mismatch() const { return mismatch_; }
  bool spans() const { return spans_; }

 protected:
  Array& add(std::string name, Role role, std::size_t bytes);
  // The bound array holds exactly `expected` (the same arithmetic in the same order gives the
  // same bits, so results are compared exactly). When it does not, mismatch() says where.
  bool holds(const Array& a, const void* expected) const;
  Array& array(std::size_t i) { return arrays_[i]; }
  const Array& array(std::size_t i) const { return arrays_[i]; }

 private:
  std::vector<Array> arrays_;
  bool bound_ = false;
  bool spans_ = true;
  mutable std::string mismatch_;
};

std::unique_ptr<Workload> make_triad();
std::unique_ptr<Workload> make_jacobi();
std::unique_ptr<Workload> make_gather();
std::unique_ptr<Workload> make_pagerank();
std::unique_ptr<Workload> make_matmul();
std::unique_ptr<Workload> make_layers();

// By name (one of workload_names()), or nullptr.
std::unique_ptr<Workload> make_workload(std::string_view name);
std::vector<std::string> workload_names();

}  // namespace hetmm::bench
