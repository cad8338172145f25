// `hetmm run`: load a SPIR-V or OpenCL C program, launch one kernel on device 0 over buffers in
// ordinary process memory, and report timing and the device's MMU counters.
#include <hetmm/hetmm.hpp>
#include <hetmm/program.hpp>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A usage mistake: the message is printed as "hetmm run: <message>" with exit status 2.
struct Usage {
  std::string message;
};

// ---- element types ---------------------------------------------------------------------------

enum class Type : std::uint8_t { i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };

struct TypeDesc {
  Type type;
  const char* name;  // as the --arg syntax spells it
  std::size_t size;
  bool is_float;
  bool is_signed;
  const char* opencl;  // the OpenCL C spelling
};

constexpr TypeDesc kTypes[] = {
    {Type::i8, "i8", 1, false, true, "char"},      {Type::u8, "u8", 1, false, false, "uchar"},
    {Type::i16, "i16", 2, false, true, "short"},   {Type::u16, "u16", 2, false, false, "ushort"},
    {Type::i32, "i32", 4, false, true, "int"},     {Type::u32, "u32", 4, false, false, "uint"},
    {Type::i64, "i64", 8, false, true, "long"},    {Type::u64, "u64", 8, false, false, "ulong"},
    {Type::f32, "f32", 4, true, true, "float"},    {Type::f64, "f64", 8, true, true, "double"},
};

const TypeDesc& desc(Type t) { return kTypes[static_cast<int>(t)]; }

std::optional<Type> parse_type(std::string_view s) {
  for (const TypeDesc& d : kTypes)
    if (s == d.name) return d.type;
  return std::nullopt;
}

// What an OpenCL C scalar type name is, when the kernel's type_name is one: size and class.
struct OpenClScalar {
  std::size_t size;
  bool is_float;
  const char* suggest;  // the --arg type to pass
};
std::optional<OpenClScalar> opencl_scalar(std::string name) {
  for (const char* q : {"const ", "volatile "})
    if (name.rfind(q, 0) == 0) name.erase(0, std::strlen(q));
  while (!name.empty() && name.back() == ' ') name.pop_back();
  static const struct {
    const char* name;
    OpenClScalar s;
  } table[] = {
      {"char", {1, false, "i8"}},        {"uchar", {1, false, "u8"}},
      {"unsigned char", {1, false, "u8"}}, {"short", {2, false, "i16"}},
      {"ushort", {2, false, "u16"}},     {"unsigned short", {2, false, "u16"}},
      {"int", {4, false, "i32"}},        {"uint", {4, false, "u32"}},
      {"unsigned int", {4, false, "u32"}}, {"long", {8, false, "i64"}},
      {"ulong", {8, false, "u64"}},      {"unsigned long", {8, false, "u64"}},
      {"size_t", {8, false, "u64"}},     {"ptrdiff_t", {8, false, "i64"}},
      {"intptr_t", {8, false, "i64"}},   {"uintptr_t", {8, false, "u64"}},
      {"float", {4, true, "f32"}},       {"double", {8, true, "f64"}},
      {"half", {2, true, "(none: half is not supported)"}},
  };
  for (const auto& e : table)
    if (name == e.name) return e.s;
  return std::nullopt;
}

// An OpenCL vector type name ("float4", "const int3"): its scalar and lane count (3 lanes take
// the room of 4).
std::optional<std::pair<OpenClScalar, std::size_t>> opencl_vector(std::string name) {
  std::size_t digits = name.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(name[digits - 1]))) --digits;
  if (digits == name.size() || digits == 0) return std::nullopt;
  std::size_t lanes = std::strtoul(name.c_str() + digits, nullptr, 10);
  if (lanes != 2 && lanes != 3 && lanes != 4 && lanes != 8 && lanes != 16) return std::nullopt;
  auto s = opencl_scalar(name.substr(0, digits));
  if (!s || (s->is_float && s->size == 2)) return std::nullopt;
  return std::make_pair(*s, lanes == 3 ? std::size_t{4} : lanes);
}

// The --arg a kernel argument would take, for --list.
std::string suggest_arg(const hetmm::KernelArgInfo& a) {
  switch (a.kind) {
    case hetmm::ArgKind::global_pointer:
    case hetmm::ArgKind::constant_pointer: {
      std::string pointee = a.type_name;
      if (!pointee.empty() && pointee.back() == '*') pointee.pop_back();
      if (auto s = opencl_scalar(pointee); s && !(s->is_float && s->size == 2))
        return std::string("buf:") + s->suggest + ":COUNT[:INIT]";
      if (auto v = opencl_vector(pointee))
        return std::string("buf:") + v->first.suggest + ":COUNT[:INIT] (" +
               std::to_string(v->second) + " per " + pointee + ")";
      return "buf:u8:BYTES[:INIT]";
    }
    case hetmm::ArgKind::local_pointer:
      return "local:BYTES";
    case hetmm::ArgKind::value: {
      if (auto s = opencl_scalar(a.type_name); s && !(s->is_float && s->size == 2))
        return std::string(s->suggest) + ":VALUE";
      if (auto v = opencl_vector(a.type_name))
        return std::string(v->first.suggest) + ":V1,...,V" + std::to_string(v->second);
      return "TYPE:V,...[+TYPE:V,...] (" + std::to_string(a.size) + " bytes)";
    }
  }
  return "?";
}

// ---- parsing values --------------------------------------------------------------------------

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t p = s.find(sep, start);
    out.emplace_back(s.substr(start, p == std::string_view::npos ? s.npos : p - start));
    if (p == std::string_view::npos) return out;
    start = p + 1;
  }
}

// Parses one value of type t into out (t's size bytes, little-endian as the host).
void parse_value(Type t, const std::string& text, std::byte* out, const std::string& where) {
  const TypeDesc& d = desc(t);
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  auto bad = [&](const char* why) {
    throw Usage{where + ": '" + text + "' is not " + why + " " + d.name};
  };
  if (text.empty()) bad("a value of type");
  if (d.is_float) {
    double v = std::strtod(s, &end);
    if (end == s || *end != '\0') bad("a number for");
    if (t == Type::f32) {
      float f = static_cast<float>(v);
      std::memcpy(out, &f, 4);
    } else {
      std::memcpy(out, &v, 8);
    }
    return;
  }
  if (d.is_signed) {
    long long v = std::strtoll(s, &end, 0);
    if (end == s || *end != '\0') bad("an integer for");
    long long lo = d.size == 8 ? std::numeric_limits<long long>::min() : -(1LL << (8 * d.size - 1));
    long long hi = d.size == 8 ? std::numeric_limits<long long>::max() : (1LL << (8 * d.size - 1)) - 1;
    if (errno == ERANGE || v < lo || v > hi) bad("in the range of");
    std::memcpy(out, &v, d.size);  // little-endian: the low bytes
  } else {
    if (text[0] == '-') bad("in the range of");
    unsigned long long v = std::strtoull(s, &end, 0);
    if (end == s || *end != '\0') bad("an integer for");
    unsigned long long hi =
        d.size == 8 ? std::numeric_limits<unsigned long long>::max() : (1ULL << (8 * d.size)) - 1;
    if (errno == ERANGE || v > hi) bad("in the range of");
    std::memcpy(out, &v, d.size);
  }
}

std::size_t parse_count(const std::string& text, const std::string& where) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 0);
  if (text.empty() || text[0] == '-' || end == text.c_str() || *end != '\0' || errno == ERANGE)
    throw Usage{where + ": '" + text + "' is not a count"};
  return static_cast<std::size_t>(v);
}

// ---- --arg -----------------------------------------------------------------------------------

struct ArgSpec {
  enum class Kind { buffer, local, value } kind;
  std::string text;  // as given
  Type type = Type::u8;
  std::size_t count = 0;  // buffer: elements; local: bytes
  // buffer initialisation
  enum class Init { zero, iota, rand, constant, file } init = Init::zero;
  std::uint64_t seed = 1;
  std::vector<std::byte> value;  // value: the packed bytes; constant: one element
  std::string path;              // file
  bool mixed = false;            // value: pieces of several types
};

ArgSpec parse_arg(const std::string& text, std::size_t index) {
  const std::string where = "--arg " + std::to_string(index) + " '" + text + "'";
  ArgSpec a;
  a.text = text;
  std::vector<std::string> f = split(text, ':');
  if (f[0] == "buf") {
    a.kind = ArgSpec::Kind::buffer;
    if (f.size() < 3) throw Usage{where + ": expected buf:TYPE:COUNT[:INIT]"};
    auto t = parse_type(f[1]);
    if (!t) throw Usage{where + ": unknown type '" + f[1] + "'"};
    a.type = *t;
    a.count = parse_count(f[2], where);
    if (a.count == 0) throw Usage{where + ": a buffer needs at least one element"};
    if (a.count > (std::size_t{1} << 40) / desc(a.type).size)
      throw Usage{where + ": buffer larger than 1 TiB"};
    if (f.size() == 3 || f[3] == "zero") {
      if (f.size() > 4) throw Usage{where + ": 'zero' takes no parameter"};
      a.init = ArgSpec::Init::zero;
    } else if (f[3] == "iota") {
      if (f.size() > 4) throw Usage{where + ": 'iota' takes no parameter"};
      a.init = ArgSpec::Init::iota;
    } else if (f[3] == "rand") {
      a.init = ArgSpec::Init::rand;
      a.seed = index + 1;  // buffers differ unless seeded alike
      if (f.size() > 5) throw Usage{where + ": expected rand[:SEED]"};
      if (f.size() == 5) a.seed = parse_count(f[4], where);
    } else if (f[3] == "const") {
      a.init = ArgSpec::Init::constant;
      if (f.size() != 5) throw Usage{where + ": expected const:VALUE"};
      a.value.resize(desc(a.type).size);
      parse_value(a.type, f[4], a.value.data(), where);
    } else if (f[3] == "file") {
      a.init = ArgSpec::Init::file;
      std::size_t p = text.find(":file:");
      a.path = text.substr(p + 6);  // the path may contain ':'
      if (a.path.empty()) throw Usage{where + ": expected file:PATH"};
    } else {
      throw Usage{where + ": unknown init '" + f[3] +
                  "' (zero, iota, rand[:SEED], const:VALUE, file:PATH)"};
    }
    return a;
  }
  if (f[0] == "local") {
    a.kind = ArgSpec::Kind::local;
    if (f.size() != 2) throw Usage{where + ": expected local:BYTES"};
    a.count = parse_count(f[1], where);
    if (a.count == 0) throw Usage{where + ": __local memory of 0 bytes"};
    return a;
  }
  if (!parse_type(f[0]))
    throw Usage{where + ": expected buf:TYPE:COUNT[:INIT], local:BYTES or TYPE:VALUE, with TYPE "
                        "one of i8 u8 i16 u16 i32 u32 i64 u64 f32 f64"};
  // TYPE:V[,V...], pieces joined by '+TYPE:' concatenated (a struct, its padding explicit).
  a.kind = ArgSpec::Kind::value;
  std::vector<std::string> pieces;
  std::size_t start = 0;
  for (std::size_t p = text.find('+'); p != std::string::npos; p = text.find('+', p + 1)) {
    std::size_t colon = text.find(':', p);
    if (colon != std::string::npos && parse_type(std::string_view(text).substr(p + 1, colon - p - 1))) {
      pieces.push_back(text.substr(start, p - start));
      start = p + 1;
    }
  }
  pieces.push_back(text.substr(start));
  for (const std::string& piece : pieces) {
    std::size_t colon = piece.find(':');
    auto t = parse_type(std::string_view(piece).substr(0, colon));
    if (!t || colon == std::string::npos || colon + 1 == piece.size())
      throw Usage{where + ": expected TYPE:VALUE[,VALUE...][+TYPE:VALUE...]"};
    if (pieces.size() == 1) a.type = *t;
    std::vector<std::string> values = split(std::string_view(piece).substr(colon + 1), ',');
    std::size_t size = desc(*t).size;
    std::size_t at = a.value.size();
    if (at + values.size() * size > 128) throw Usage{where + ": a value is at most 128 bytes"};
    a.value.resize(at + values.size() * size);
    for (std::size_t i = 0; i < values.size(); ++i)
      parse_value(*t, values[i], a.value.data() + at + i * size, where);
  }
  a.mixed = pieces.size() > 1;
  return a;
}

// Checks an --arg against the kernel's signature; throws Usage naming the kernel's type.
void check_arg(const ArgSpec& s, const hetmm::KernelArgInfo& a, std::size_t i,
               const std::string& kernel) {
  std::string what = "argument " + std::to_string(i) + (a.name.empty() ? "" : " (" + a.name + ")") +
                     " of " + kernel + " is " + hetmm::to_string(a.kind) + " '" + a.type_name +
                     "' of " + std::to_string(a.size) + " bytes";
  std::string hint = "; pass --arg " + suggest_arg(a);
  switch (a.kind) {
    case hetmm::ArgKind::global_pointer:
    case hetmm::ArgKind::constant_pointer:
      if (s.kind != ArgSpec::Kind::buffer)
        throw Usage{what + ", got '" + s.text + "'" + hint};
      {
        std::string pointee = a.type_name;
        if (!pointee.empty() && pointee.back() == '*') pointee.pop_back();
        auto k = opencl_scalar(pointee);
        const TypeDesc& d = desc(s.type);
        if (k && (k->size != d.size || k->is_float != d.is_float))
          std::fprintf(stderr, "hetmm run: warning: %s, buffer of %s given\n", what.c_str(),
                       d.name);
      }
      return;
    case hetmm::ArgKind::local_pointer:
      if (s.kind != ArgSpec::Kind::local) throw Usage{what + ", got '" + s.text + "'" + hint};
      return;
    case hetmm::ArgKind::value: {
      if (s.kind != ArgSpec::Kind::value) throw Usage{what + ", got '" + s.text + "'" + hint};
      const TypeDesc& d = desc(s.type);
      if (s.value.size() != a.size)
        throw Usage{what + ", got '" + s.text + "' of " + std::to_string(s.value.size()) +
                    " bytes" + hint};
      auto k = opencl_scalar(a.type_name);
      if (k && !s.mixed && k->is_float != d.is_float)
        throw Usage{what + ", got '" + s.text + "' (" + (d.is_float ? "floating point" : "integer") +
                    " bits would be reinterpreted)" + hint};
      return;
    }
  }
}

// ---- buffers ---------------------------------------------------------------------------------

// A buffer in ordinary process memory: hetmm's devices take the plain pointer.
struct Buffer {
  Type type;
  std::size_t count = 0;
  std::vector<std::uint64_t> storage;  // 8-byte aligned at least
  std::byte* data() { return reinterpret_cast<std::byte*>(storage.data()); }
  const std::byte* data() const { return reinterpret_cast<const std::byte*>(storage.data()); }
  std::size_t bytes() const { return count * desc(type).size; }
};

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <class F>
void fill(Buffer& b, F&& element) {  // element(i) -> double or integer
  std::byte* p = b.data();
  const std::size_t sz = desc(b.type).size;
  for (std::size_t i = 0; i < b.count; ++i, p += sz) {
    auto v = element(i);
    switch (b.type) {
#define HETMM_STORE(tag, T)              \
  case Type::tag: {                      \
    T x = static_cast<T>(v);             \
    std::memcpy(p, &x, sizeof x);        \
    break;                               \
  }
      HETMM_STORE(i8, std::int8_t)
      HETMM_STORE(u8, std::uint8_t)
      HETMM_STORE(i16, std::int16_t)
      HETMM_STORE(u16, std::uint16_t)
      HETMM_STORE(i32, std::int32_t)
      HETMM_STORE(u32, std::uint32_t)
      HETMM_STORE(i64, std::int64_t)
      HETMM_STORE(u64, std::uint64_t)
      HETMM_STORE(f32, float)
      HETMM_STORE(f64, double)
#undef HETMM_STORE
    }
  }
}

Buffer make_buffer(const ArgSpec& s) {
  Buffer b;
  b.type = s.type;
  b.count = s.count;
  b.storage.assign((b.bytes() + 7) / 8, 0);  // zero
  const TypeDesc& d = desc(b.type);
  switch (s.init) {
    case ArgSpec::Init::zero:
      break;
    case ArgSpec::Init::iota:
      if (d.is_float)
        fill(b, [](std::size_t i) { return static_cast<double>(i); });
      else
        fill(b, [](std::size_t i) { return static_cast<std::uint64_t>(i); });
      break;
    case ArgSpec::Init::rand: {
      std::uint64_t state = s.seed;
      if (d.is_float)
        fill(b, [&](std::size_t) { return static_cast<double>(splitmix64(state) >> 11) * 0x1p-53; });
      else
        fill(b, [&](std::size_t) { return splitmix64(state) % 100; });
      break;
    }
    case ArgSpec::Init::constant:
      for (std::size_t i = 0; i < b.count; ++i)
        std::memcpy(b.data() + i * d.size, s.value.data(), d.size);
      break;
    case ArgSpec::Init::file: {
      std::ifstream in(s.path, std::ios::binary);
      if (!in) throw Usage{"--arg '" + s.text + "': cannot open " + s.path};
      in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.bytes()));
      if (static_cast<std::size_t>(in.gcount()) != b.bytes())
        throw Usage{"--arg '" + s.text + "': " + s.path + " holds " +
                    std::to_string(in.gcount()) + " bytes, the buffer needs " +
                    std::to_string(b.bytes())};
      break;
    }
  }
  return b;
}

std::string format_element(const Buffer& b, std::size_t i) {
  const std::byte* p = b.data() + i * desc(b.type).size;
  char buf[64];
  switch (b.type) {
#define HETMM_FMT(tag, T, fmt, cast)                 \
  case Type::tag: {                                  \
    T x;                                             \
    std::memcpy(&x, p, sizeof x);                    \
    std::snprintf(buf, sizeof buf, fmt, cast(x));    \
    break;                                           \
  }
    HETMM_FMT(i8, std::int8_t, "%d", static_cast<int>)
    HETMM_FMT(u8, std::uint8_t, "%u", static_cast<unsigned>)
    HETMM_FMT(i16, std::int16_t, "%d", static_cast<int>)
    HETMM_FMT(u16, std::uint16_t, "%u", static_cast<unsigned>)
    HETMM_FMT(i32, std::int32_t, "%" PRId32, )
    HETMM_FMT(u32, std::uint32_t, "%" PRIu32, )
    HETMM_FMT(i64, std::int64_t, "%" PRId64, )
    HETMM_FMT(u64, std::uint64_t, "%" PRIu64, )
    HETMM_FMT(f32, float, "%.9g", static_cast<double>)
    HETMM_FMT(f64, double, "%.17g", )
#undef HETMM_FMT
  }
  return buf;
}

// ---- NDRange and the rest of the command line --------------------------------------------------

hetmm::NDRange parse_range(const std::string& text, const char* option, bool allow_zero) {
  std::vector<std::string> f = split(text, ',');
  if (f.empty() || f.size() > 3)
    throw Usage{std::string(option) + " '" + text + "': expected X[,Y[,Z]]"};
  std::size_t v[3] = {1, 1, 1};
  for (std::size_t i = 0; i < f.size(); ++i) {
    v[i] = parse_count(f[i], std::string(option) + " '" + text + "'");
    if (v[i] == 0 && !allow_zero)
      throw Usage{std::string(option) + " '" + text + "': a size of 0"};
  }
  return hetmm::NDRange{v[0], v[1], v[2], static_cast<unsigned>(f.size())};
}

// "N:REST" for --out and --print.
std::pair<std::size_t, std::string> parse_indexed(const std::string& text, const char* option) {
  std::size_t p = text.find(':');
  std::string n = text.substr(0, p);
  std::size_t index = parse_count(n, std::string(option) + " '" + text + "'");
  return {index, p == std::string::npos ? std::string() : text.substr(p + 1)};
}

hetmm::LinkProfile link_profile(const std::string& name) {
  if (name == "pcie4") return hetmm::LinkProfile::pcie4();
  if (name == "pcie5") return hetmm::LinkProfile::pcie5();
  if (name == "nvlink-c2c") return hetmm::LinkProfile::nvlink_c2c();
  return hetmm::LinkProfile::none();
}

const char* short_kind(hetmm::ArgKind k) {
  switch (k) {
    case hetmm::ArgKind::global_pointer: return "__global";
    case hetmm::ArgKind::constant_pointer: return "__constant";
    case hetmm::ArgKind::local_pointer: return "__local";
    case hetmm::ArgKind::value: return "value";
  }
  return "?";
}

// --explain: the JIT's account of the kernel's work-item loops, indented under a heading.
void print_vectorization(const hetmm::KernelInfo& k) {
  std::printf("compiled (%s):\n", k.name.c_str());
  std::string text = k.vectorization.empty() ? std::string("no report (built without the JIT)\n")
                                             : k.vectorization;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::printf("  %.*s\n", static_cast<int>(end - at), text.data() + at);
    at = end + 1;
  }
}

void print_signature(const hetmm::KernelInfo& k) {
  std::printf("%s(", k.name.c_str());
  for (std::size_t i = 0; i < k.args.size(); ++i)
    std::printf("%s%s%s%s", i ? ", " : "", k.args[i].type_name.c_str(),
                k.args[i].name.empty() ? "" : " ", k.args[i].name.c_str());
  std::printf(")");
  if (k.uses_barriers) std::printf("  [barriers]");
  if (k.required_local[0] != 0)
    std::printf("  [reqd_work_group_size(%zu,%zu,%zu)]", k.required_local[0],
                k.required_local[1], k.required_local[2]);
  std::printf("\n");
  for (std::size_t i = 0; i < k.args.size(); ++i) {
    const auto& a = k.args[i];
    std::printf("  %2zu %-12s %-10s %-16s %3zu bytes   --arg %s\n", i,
                a.name.empty() ? "-" : a.name.c_str(), short_kind(a.kind),
                a.type_name.c_str(), a.size, suggest_arg(a).c_str());
  }
}

// The DeviceStats counters, by name, for the table.
struct Counter {
  const char* name;
  std::uint64_t hetmm::DeviceStats::*field;
};
constexpr Counter kCounters[] = {
    {"kernels", &hetmm::DeviceStats::kernels},
    {"tlb_hits", &hetmm::DeviceStats::tlb_hits},
    {"tlb_misses", &hetmm::DeviceStats::tlb_misses},
    {"faults", &hetmm::DeviceStats::faults},
    {"fault_batches", &hetmm::DeviceStats::fault_batches},
    {"faults_flushed", &hetmm::DeviceStats::faults_flushed},
    {"fault_rounds", &hetmm::DeviceStats::fault_rounds},
    {"pages_to_device", &hetmm::DeviceStats::pages_to_device},
    {"pages_to_system", &hetmm::DeviceStats::pages_to_system},
    {"pages_evicted", &hetmm::DeviceStats::pages_evicted},
    {"cpu_faults", &hetmm::DeviceStats::cpu_faults},
    {"invalidations", &hetmm::DeviceStats::invalidations},
    {"link_transfers", &hetmm::DeviceStats::link_transfers},
    {"link_bytes", &hetmm::DeviceStats::link_bytes},
    {"in_place_bytes", &hetmm::DeviceStats::in_place_bytes},
    {"local_bytes", &hetmm::DeviceStats::local_bytes},
};

int run(const hetmm::Options& base, const RunArgs& args) {
  // Everything about the command line that needs no compiled program, first.
  std::vector<ArgSpec> specs;
  for (std::size_t i = 0; i < args.args.size(); ++i) specs.push_back(parse_arg(args.args[i], i));
  std::optional<hetmm::NDRange> global;
  hetmm::NDRange local{0, 1, 1, 0};
  if (!args.global.empty()) global = parse_range(args.global, "--global", false);
  if (!args.local.empty()) {
    local = parse_range(args.local, "--local", false);
    if (global && local.dims != global->dims)
      throw Usage{"--local '" + args.local + "' has " + std::to_string(local.dims) +
                  " dimensions, --global '" + args.global + "' " + std::to_string(global->dims)};
  }
  std::vector<std::pair<std::size_t, std::string>> outs, prints;
  for (const std::string& o : args.outs) {
    outs.push_back(parse_indexed(o, "--out"));
    if (outs.back().second.empty()) throw Usage{"--out '" + o + "': expected N:PATH"};
  }
  for (const std::string& p : args.prints) {
    prints.push_back(parse_indexed(p, "--print"));
    if (!prints.back().second.empty())
      parse_count(prints.back().second, "--print '" + p + "'");
  }
  for (const auto& [n, what] : outs)
    if (n >= specs.size() || specs[n].kind != ArgSpec::Kind::buffer)
      throw Usage{"--out " + std::to_string(n) + ": argument " + std::to_string(n) +
                  " is not a buffer (buf:...)"};
  for (const auto& [n, what] : prints)
    if (n >= specs.size() || specs[n].kind != ArgSpec::Kind::buffer)
      throw Usage{"--print " + std::to_string(n) + ": argument " + std::to_string(n) +
                  " is not a buffer (buf:...)"};

  // Load (and compile) the program.
  auto t0 = Clock::now();
  hetmm::Program prog = hetmm::Program::from_file(args.file, args.options);
  double compile_ms = ms_since(t0);
  std::vector<std::string> names = prog.kernel_names();

  if (args.list || args.kernel.empty()) {
    std::printf("%s: %zu kernel%s (loaded in %.1f ms%s%s)\n", args.file.c_str(), names.size(),
                names.size() == 1 ? "" : "s", compile_ms, args.options.empty() ? "" : ", options ",
                args.options.c_str());
    for (const std::string& n : names) {
      std::printf("\n");
      print_signature(prog.kernel(n));
      if (args.explain) print_vectorization(prog.kernel(n));
    }
    if (args.list) return 0;
    // Without --kernel: a listing, unless launch options say a launch was meant.
    if (!args.global.empty() || !args.args.empty() || !args.outs.empty() || !args.prints.empty()) {
      std::fprintf(stderr, "\nhetmm run: give --kernel NAME to launch one\n");
      return 2;
    }
    return 0;
  }
  if (std::find(names.begin(), names.end(), args.kernel) == names.end()) {
    std::string all;
    for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
    throw Usage{args.file + " has no kernel '" + args.kernel + "' (it has: " + all + ")"};
  }
  const hetmm::KernelInfo& info = prog.kernel(args.kernel);
  if (!global) throw Usage{"--global X[,Y[,Z]] is required to launch"};
  if (specs.size() != info.args.size()) {
    std::fprintf(stderr, "hetmm run: %s takes %zu argument%s, %zu --arg given:\n  ",
                 info.name.c_str(), info.args.size(), info.args.size() == 1 ? "" : "s",
                 specs.size());
    std::fflush(stdout);
    print_signature(info);
    return 2;
  }
  for (std::size_t i = 0; i < specs.size(); ++i) check_arg(specs[i], info.args[i], i, info.name);

  // Buffers in process memory, initialised by the CPU; then the launch arguments.
  std::vector<std::optional<Buffer>> buffers(specs.size());
  std::vector<hetmm::detail::LaunchArg> launch_args;
  std::size_t buffer_bytes = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const ArgSpec& s = specs[i];
    switch (s.kind) {
      case ArgSpec::Kind::buffer:
        buffers[i] = make_buffer(s);
        buffer_bytes += buffers[i]->bytes();
        launch_args.push_back(hetmm::detail::make_launch_arg(static_cast<void*>(buffers[i]->data())));
        break;
      case ArgSpec::Kind::local:
        launch_args.push_back(hetmm::detail::make_launch_arg(hetmm::LocalMemory{s.count}));
        break;
      case ArgSpec::Kind::value: {
        hetmm::detail::LaunchArg a{};
        a.kind = hetmm::detail::LaunchArg::Kind::value;
        a.size = s.value.size();  // == the kernel argument's size (checked)
        std::memcpy(a.bytes.data(), s.value.data(), s.value.size());
        launch_args.push_back(a);
        break;
      }
    }
  }

  hetmm::Options opt = base;
  opt.policy = args.policy == "uvm"        ? hetmm::PolicyProfile::uvm
               : args.policy == "in_place" ? hetmm::PolicyProfile::in_place
                                           : hetmm::PolicyProfile::hetmm;
  opt.link = link_profile(args.link);
  hetmm::Runtime rt(opt);
  hetmm::Device& dev = rt.device(0);

  const unsigned repeat = args.repeat;
  std::vector<double> launch_ms;
  hetmm::DeviceStats s0 = dev.stats(), s1{};
  for (unsigned r = 0; r < repeat; ++r) {
    auto t = Clock::now();
    dev.launch_program(prog, info.name, *global, local, launch_args);
    dev.synchronize();
    launch_ms.push_back(ms_since(t));
    if (r == 0) s1 = dev.stats();
  }
  hetmm::DeviceStats s2 = dev.stats();

  auto range = [](const hetmm::NDRange& n) {
    // Appended piece by piece: `"," + std::to_string(...)` draws GCC 12's -Wrestrict false
    // positive in std::string's operator+(const char*, string&&) at -O3 (GCC bugs 105329, 105651).
    std::string s = std::to_string(n.x);
    if (n.dims >= 2) {
      s += ',';
      s += std::to_string(n.y);
    }
    if (n.dims >= 3) {
      s += ',';
      s += std::to_string(n.z);
    }
    return s;
  };
  std::printf("hetmm run: %s from %s, global %s, local %s, %zu argument%s (%.1f MiB of "
              "buffers)\n",
              info.name.c_str(), args.file.c_str(), range(*global).c_str(),
              args.local.empty() ? "auto" : range(local).c_str(), specs.size(),
              specs.size() == 1 ? "" : "s", static_cast<double>(buffer_bytes) / (1 << 20));
  std::printf("tracking %s, policy %s, link %s\n\n", hetmm::to_string(rt.tracking()),
              hetmm::to_string(opt.policy), args.link.c_str());
  std::printf("load + compile  %10.3f ms (cached when compiled before; HETMM_CACHE_DIR=off: "
              "cold)\n", compile_ms);
  if (args.explain) print_vectorization(info);
  std::printf("first launch    %10.3f ms (launch + synchronize)\n", launch_ms[0]);
  if (repeat > 1) {
    double sum = 0, lo = launch_ms[1];
    for (std::size_t i = 1; i < launch_ms.size(); ++i) {
      sum += launch_ms[i];
      lo = std::min(lo, launch_ms[i]);
    }
    std::printf("launches 2..%-3u %10.3f ms mean, %.3f ms min\n", repeat,
                sum / static_cast<double>(repeat - 1), lo);
  }

  if (repeat > 1)
    std::printf("\n%-16s %14s %14s\n", "device 0", "first launch",
                ("all " + std::to_string(repeat)).c_str());
  else
    std::printf("\n%-16s %14s\n", "device 0", "first launch");
  for (const Counter& c : kCounters) {
    std::uint64_t d1 = s1.*c.field - s0.*c.field, d2 = s2.*c.field - s0.*c.field;
    if (repeat > 1)
      std::printf("%-16s %14" PRIu64 " %14" PRIu64 "\n", c.name, d1, d2);
    else
      std::printf("%-16s %14" PRIu64 "\n", c.name, d1);
  }
  auto hit_rate = [](const hetmm::DeviceStats& a, const hetmm::DeviceStats& b) {
    double h = static_cast<double>(b.tlb_hits - a.tlb_hits);
    double m = static_cast<double>(b.tlb_misses - a.tlb_misses);
    return h + m > 0 ? 100.0 * h / (h + m) : 0.0;
  };
  if (repeat > 1)
    std::printf("%-16s %13.2f%% %13.2f%%\n", "tlb hit rate", hit_rate(s0, s1), hit_rate(s0, s2));
  else
    std::printf("%-16s %13.2f%%\n", "tlb hit rate", hit_rate(s0, s1));
  if (args.link != "none") {
    if (repeat > 1)
      std::printf("%-16s %11.3f ms %11.3f ms\n", "modeled time",
                  (s1.modeled_seconds - s0.modeled_seconds) * 1e3,
                  (s2.modeled_seconds - s0.modeled_seconds) * 1e3);
    else
      std::printf("%-16s %11.3f ms\n", "modeled time",
                  (s1.modeled_seconds - s0.modeled_seconds) * 1e3);
  }
  if (s2.throttle_seconds > s0.throttle_seconds)
    std::printf("%-16s %11.3f ms\n", "throttled", (s2.throttle_seconds - s0.throttle_seconds) * 1e3);

  // The CPU reads the buffers back (pages come home as it touches them).
  for (const auto& [n, count_text] : prints) {
    const Buffer& b = *buffers[n];
    std::size_t count = count_text.empty() ? 16 : parse_count(count_text, "--print");
    count = std::min(count, b.count);
    std::printf("\nargument %zu (%s, %zu x %s), first %zu:\n", n,
                info.args[n].type_name.c_str(), b.count, desc(b.type).name, count);
    for (std::size_t i = 0; i < count; ++i) {
      std::printf("%s%s", i % 8 == 0 ? "  " : " ", format_element(b, i).c_str());
      if (i % 8 == 7 || i + 1 == count) std::printf("\n");
    }
  }
  for (const auto& [n, path] : outs) {
    Buffer& b = *buffers[n];
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (out) out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.bytes()));
    out.close();
    if (!out) {
      std::fprintf(stderr, "hetmm run: cannot write %s\n", path.c_str());
      return 2;
    }
    std::printf("argument %zu: %zu bytes written to %s\n", n, b.bytes(), path.c_str());
  }
  return 0;
}

}  // namespace

const char* run_arg_help() {
  return R"(Arguments, one --arg per kernel argument, in order:
  buf:TYPE:COUNT[:INIT]   a buffer of COUNT elements in ordinary process memory, passed as a
                          pointer (for __global and __constant pointers). INIT is one of
                            zero           all zeros (the default)
                            iota           element i is i
                            rand[:SEED]    floats uniform in [0,1), integers in [0,100);
                                           SEED defaults to the argument's index + 1
                            const:VALUE    every element VALUE
                            file:PATH      the first COUNT elements of a raw binary file
  local:BYTES             __local memory of BYTES bytes per work-group (for __local pointers)
  TYPE:VALUE[,VALUE...]   a value of exactly the kernel argument's size; several values pack a
                          vector (float4: f32:1,2,3,4; float3 takes 4 values, like its 16 bytes);
                          pieces joined by + pack a struct, padding written out (f32:0.5+i32:-1,1)
  TYPE is i8 u8 i16 u16 i32 u32 i64 u64 f32 f64; integers may be written in hex (0x...).
--out N:PATH writes buffer argument N (0-based) to a raw file after the run; --print N[:COUNT]
prints its first COUNT (16) elements. Kernel signatures: `hetmm run FILE --list`.
Example (C = A * B for 256 x 256 floats, 5 launches):
  hetmm run tests/spirv/kernels/matmul.cl --kernel matmul --global 256,256 --local 16,16 \
    --arg buf:f32:65536:rand --arg buf:f32:65536:rand --arg buf:f32:65536 \
    --arg i32:256 --arg i32:256 --arg i32:256 --repeat 5 --print 2:8 --out 2:c.bin)";
}

int cmd_run(const hetmm::Options& opt, const RunArgs& args) {
  if (args.repeat == 0) {
    std::fprintf(stderr, "hetmm run: --repeat must be at least 1\n");
    return 2;
  }
  try {
    return run(opt, args);
  } catch (const Usage& u) {
    std::fflush(stdout);
    std::fprintf(stderr, "hetmm run: %s\n", u.message.c_str());
    return 2;
  } catch (const hetmm::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "hetmm run: %s\n", e.what());
    return 1;
  }
}
