// A small reference runner for OpenCL C kernels on PoCL, the oracle hetmm's SPIR-V device is
// compared with (../shared/docs/spirv-compute.md §1).
//
// PoCL's Debian build has no SPIR-V input (clCreateProgramWithIL fails with -30), so the oracle
// builds the *same* .cl source that the test's .spv was compiled from, with clBuildProgram.
// Buffers are plain device buffers: every buffer argument is copied in (CL_MEM_COPY_HOST_PTR)
// and `out`/`inout` ones are read back into the caller's memory when the kernel is done. That
// keeps the oracle independent of PoCL's SVM support and of whatever hetmm does to the pages.
//
//   auto* cl = hetmm::test::pocl::Oracle::instance();     // nullptr without PoCL: skip
//   cl->run(source, "-cl-std=CL3.0", "vadd", {n}, {64},
//           {pocl::in(a), pocl::in(b), pocl::out(c), pocl::value(std::int32_t(n))});
//
// The header does not include CL/cl.h, so test files do not depend on the OpenCL headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace hetmm::test::pocl {

// An NDRange, like hetmm::NDRange (kept separate so the oracle does not depend on hetmm).
// dims 0 means: 3 if z > 1, else 2 if y > 1, else 1. As a local size, x == 0 means "let the
// implementation choose" (a NULL local_work_size).
struct Range {
  std::size_t x = 1, y = 1, z = 1;
  unsigned dims = 0;
};

enum class Access : std::uint8_t {
  in,     // copied to the device only
  out,    // copied to the device (so untouched elements compare equal) and read back
  inout,  // same as out; kept separate to document the kernel's contract
};

// One kernel argument: a buffer over caller memory, a value, or a __local arena size.
struct Arg {
  enum class Kind : std::uint8_t { buffer, value, local };
  Kind kind = Kind::value;
  void* host = nullptr;       // buffer: the caller's memory (read, and written for out/inout)
  std::size_t bytes = 0;      // buffer and local: size in bytes; value: sizeof the value
  Access access = Access::in;
  std::vector<std::byte> value;  // value: its bytes, exactly as the kernel's parameter type
};

inline Arg buffer(void* host, std::size_t bytes, Access access) {
  Arg a;
  a.kind = Arg::Kind::buffer;
  a.host = host;
  a.bytes = bytes;
  a.access = access;
  return a;
}
template <class T>
Arg in(const std::vector<T>& v) {  // never written: the const_cast only fits the common Arg
  return buffer(const_cast<T*>(v.data()), v.size() * sizeof(T), Access::in);
}
template <class T>
Arg out(std::vector<T>& v) {
  return buffer(v.data(), v.size() * sizeof(T), Access::out);
}
template <class T>
Arg inout(std::vector<T>& v) {
  return buffer(v.data(), v.size() * sizeof(T), Access::inout);
}
// A scalar, vector or struct by value. T must have the kernel parameter's exact size and layout
// (pass std::int32_t for int, float for float, a 16-byte aligned struct for float4, ...).
template <class T>
Arg value(const T& v) {
  static_assert(std::is_trivially_copyable_v<T>, "kernel values must be trivially copyable");
  Arg a;
  a.kind = Arg::Kind::value;
  a.bytes = sizeof(T);
  a.value.resize(sizeof(T));
  std::memcpy(a.value.data(), &v, sizeof(T));
  return a;
}
inline Arg local(std::size_t bytes) {
  Arg a;
  a.kind = Arg::Kind::local;
  a.bytes = bytes;
  return a;
}

// An OpenCL failure: the call, the error code (and its name) and, for builds, the build log.
class Error : public std::runtime_error {
 public:
  Error(const std::string& what, int code, std::string build_log = {})
      : std::runtime_error(what), code_(code), build_log_(std::move(build_log)) {}
  int code() const noexcept { return code_; }
  const std::string& build_log() const noexcept { return build_log_; }

 private:
  int code_;
  std::string build_log_;
};

// Wall times of the oracle's last build and run, for reporting how slow PoCL is.
struct Timing {
  double build_seconds = 0;  // clBuildProgram (0 when the program came from the cache)
  double run_seconds = 0;    // buffers in, kernel, buffers back
  bool cached = false;       // the program was already built in this process
};

class Oracle {
 public:
  // The process-wide oracle on the first device of the PoCL platform (by platform name
  // "Portable Computing Language"), or nullptr when there is none: see unavailable_reason().
  static Oracle* instance();
  static std::string unavailable_reason();

  std::string device_name() const;

  // Builds `source` with `options` (cached per source+options for the process: PoCL's clang
  // and work-group generation take seconds per program) and throws Error with the build log
  // when it does not compile.
  void build(const std::string& source, const std::string& options);

  // Builds (cached) and runs `kernel` once over `global` (local.x == 0: NULL local size), then
  // copies every out/inout buffer back into the caller's memory. Blocks until done.
  Timing run(const std::string& source, const std::string& options, const std::string& kernel,
             Range global, Range local, const std::vector<Arg>& args);

  ~Oracle();
  Oracle(const Oracle&) = delete;
  Oracle& operator=(const Oracle&) = delete;

  struct Impl;

 private:
  explicit Oracle(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The name of an OpenCL error code ("CL_INVALID_VALUE"), or "CL error <n>".
std::string error_name(int code);

}  // namespace hetmm::test::pocl
