// hetmm::Program: loading, the in-memory compilation cache, kernel signatures.
#include "spirv/compiled_program.hpp"
#include "spirv/kernel_cache.hpp"

#include "hetmm/hetmm.hpp"

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace hetmm {
namespace {

// Compiled programs by module and options; weak, so a program lives as long as its users.
struct Cache {
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<const detail::CompiledProgram>> map;
};
Cache& cache() {
  static Cache* c = new Cache;  // outlives static destruction order games at exit
  return *c;
}

// The options the JIT understands, out of a build-option string meant for both the front end
// (from_opencl_c) and the JIT.
std::string jit_options(std::string_view options) {
  std::istringstream in{std::string(options)};
  std::string o, out;
  while (in >> o)
    if (spirv::is_jit_option(o)) out += (out.empty() ? "" : " ") + o;
  return out;
}

}  // namespace

const char* to_string(ArgKind kind) noexcept {
  switch (kind) {
    case ArgKind::global_pointer: return "a __global pointer";
    case ArgKind::constant_pointer: return "a __constant pointer";
    case ArgKind::local_pointer: return "a __local pointer";
    case ArgKind::value: return "a value";
  }
  return "?";
}

Program Program::from_spirv(const void* data, std::size_t bytes, std::string_view options) {
  if (data == nullptr || bytes == 0)
    throw Error(Errc::invalid_argument, "SPIR-V module: empty (" + std::to_string(bytes) + " bytes)");
  if (bytes % 4 != 0)
    throw Error(Errc::invalid_argument, "SPIR-V module: " + std::to_string(bytes) +
                                            " bytes is not a whole number of 32-bit words");
  std::vector<std::uint32_t> words(bytes / 4);
  std::memcpy(words.data(), data, bytes);
  // The disk cache's key without the host part: one process has one host.
  std::string key = spirv::cache_key(words.data(), words.size(), options, "");
  Cache& c = cache();
  {
    std::lock_guard lock(c.mutex);
    auto it = c.map.find(key);
    if (it != c.map.end())
      if (auto p = it->second.lock()) return Program(std::move(p));
  }
  auto compiled = spirv::compile_spirv(words.data(), words.size(), options);
  std::lock_guard lock(c.mutex);
  c.map[key] = compiled;
  return Program(std::move(compiled));
}

Program Program::from_opencl_c(std::string_view source, std::string_view options) {
  std::vector<std::uint32_t> words = spirv::opencl_c_to_spirv(source, options);
  Program p = from_spirv(words.data(), words.size() * 4, jit_options(options));
  return p;
}

Program Program::from_file(const std::string& path, std::string_view options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "program file " + path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  std::string bytes = s.str();
  auto ends_with = [&](const char* suffix) {
    std::size_t n = std::strlen(suffix);
    return path.size() >= n && path.compare(path.size() - n, n, suffix) == 0;
  };
  if (ends_with(".cl")) return from_opencl_c(bytes, options);
  if (ends_with(".spv") || (bytes.size() >= 4 && std::memcmp(bytes.data(), "\x03\x02\x23\x07", 4) == 0))
    return from_spirv(bytes.data(), bytes.size(), options);
  throw Error(Errc::invalid_argument,
              "program file " + path + ": neither SPIR-V (.spv, magic 0x07230203) nor OpenCL C (.cl)");
}

std::vector<std::string> Program::kernel_names() const {
  std::vector<std::string> names;
  for (const auto& k : impl_->kernels) names.push_back(k.info.name);
  return names;
}

const KernelInfo& Program::kernel(std::string_view name) const {
  if (const auto* k = impl_->find(name)) return k->info;
  std::string list;
  for (const auto& k : impl_->kernels) list += (list.empty() ? "" : ", ") + k.info.name;
  throw Error(Errc::invalid_argument, "program has no kernel '" + std::string(name) +
                                          "' (its kernels: " + (list.empty() ? "none" : list) + ")");
}

const std::string& Program::build_options() const { return impl_->options; }

}  // namespace hetmm
