#include "spirv/kernel_cache.hpp"

#include "os/program_path.hpp"

#include <elf.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

namespace hetmm::spirv {
namespace {

constexpr const char* kMagic = "hetmm-program-cache 4";

// The GNU build ID of the object this code is linked into (libhetmm.so, or a static program):
// a hash of its contents, so any change to the code generator or the runtime ABI that kernel
// code is compiled against gives new keys. Empty when the linker wrote none.
std::string own_build_id() {
  struct Search {
    std::uintptr_t self;
    std::string id;
  } search{reinterpret_cast<std::uintptr_t>(&own_build_id), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        bool mine = false;
        for (int i = 0; i < info->dlpi_phnum && !mine; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          mine = ph.p_type == PT_LOAD && s->self >= lo && s->self < lo + ph.p_memsz;
        }
        if (!mine) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
          const unsigned char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const unsigned char* name = p + sizeof(ElfW(Nhdr));
            const unsigned char* desc = name + ((n->n_namesz + 3) & ~3u);
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0 && desc + n->n_descsz <= end) {
              static const char kHex[] = "0123456789abcdef";
              for (unsigned k = 0; k < n->n_descsz; ++k) {
                s->id += kHex[desc[k] >> 4];
                s->id += kHex[desc[k] & 15];
              }
              return 1;
            }
            p = desc + ((n->n_descsz + 3) & ~3u);
          }
        }
        return 1;
      },
      &search);
  return search.id;
}

std::string cache_dir() {
  if (const char* d = std::getenv("HETMM_CACHE_DIR"); d != nullptr && *d != '\0')
    return std::strcmp(d, "off") == 0 ? std::string() : std::string(d);
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0')
    return std::string(x) + "/hetmm";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return std::string(h) + "/.cache/hetmm";
  return {};
}

bool make_dirs(const std::string& path) {
  for (std::size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') {
      std::string prefix = path.substr(0, i);
      if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
  return true;
}

std::uint64_t fnv(const void* data, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// Strings as <length>:<bytes>, so names with spaces or newlines survive.
void put(std::ostream& out, const std::string& s) { out << s.size() << ':' << s << ' '; }
bool get(std::istream& in, std::string& s) {
  std::size_t n;
  char colon;
  if (!(in >> n >> colon) || colon != ':' || n > (1u << 20)) return false;
  s.resize(n);
  return static_cast<bool>(in.read(s.data(), static_cast<std::streamsize>(n)));
}

// The build stamp in every key: hetmm's build ID (the compile time of this file without one).
const std::string& build_stamp() {
  static const std::string build = [] {
    std::string id = own_build_id();
    return id.empty() ? std::string(__DATE__ " " __TIME__) : id;
  }();
  return build;
}

// A program on PATH as "size mtime", or "" when it is not there.
std::string tool_stamp(const char* name) {
  std::string file = os::find_program(name);
  struct stat st {};
  if (file.empty() || stat(file.c_str(), &st) != 0) return {};
  return std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// Writes `path` whole or not at all: into a temporary name beside it (this process's), then
// renamed, so that readers in other processes never see half a file. False when it could not.
bool write_whole(const std::string& path, const std::function<void(std::ostream&)>& fill) {
  std::size_t slash = path.rfind('/') + 1;  // hidden: ".<name>.<pid>" beside it
  std::string tmp =
      path.substr(0, slash) + "." + path.substr(slash) + "." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    fill(out);
    out.close();
    if (out.fail()) {
      unlink(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) == 0) return true;
  unlink(tmp.c_str());
  return false;
}

constexpr const char* kSourceMagic = "hetmm-source-cache 1";

}  // namespace

std::string source_cache_key(std::string_view source, std::string_view front_end_options) {
  if (source.find("#include") != std::string_view::npos ||
      source.find("# include") != std::string_view::npos)
    return {};
  std::string clang = tool_stamp("clang-15"), translator = tool_stamp("llvm-spirv-15");
  if (clang.empty() || translator.empty()) return {};
  std::string rest = std::string(front_end_options) + '\n' + clang + '\n' + translator + '\n' +
                     kSourceMagic + '\n' + build_stamp();
  char buf[80];
  std::snprintf(buf, sizeof buf, "src-%016llx%016llx-%016llx",
                static_cast<unsigned long long>(fnv(source.data(), source.size())),
                static_cast<unsigned long long>(
                    fnv(source.data(), source.size(), 0x9e3779b97f4a7c15ull)),
                static_cast<unsigned long long>(fnv(rest.data(), rest.size())));
  return buf;
}

bool source_cache_read(const std::string& key, std::vector<std::uint32_t>& words,
                       SourceSignatures& signatures) {
  std::string dir = cache_dir();
  if (dir.empty() || key.empty()) return false;
  std::ifstream in(dir + "/" + key + ".spv", std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line) || line != kSourceMagic) return false;
  std::size_t kernels = 0, bytes = 0;
  if (!(in >> kernels) || kernels > 4096) return false;
  SourceSignatures sig;
  for (std::size_t k = 0; k < kernels; ++k) {
    std::string name;
    std::size_t args = 0;
    if (!get(in, name) || !(in >> args) || args > 1024) return false;
    std::vector<SourceArg>& list = sig[name];
    for (std::size_t a = 0; a < args; ++a) {
      SourceArg arg;
      if (!get(in, arg.type) || !get(in, arg.qualifiers)) return false;
      list.push_back(std::move(arg));
    }
  }
  char newline = 0;
  if (!(in >> bytes) || bytes == 0 || bytes % 4 != 0 || bytes > (std::size_t{1} << 30) ||
      !in.get(newline) || newline != '\n')
    return false;
  std::vector<std::uint32_t> w(bytes / 4);
  if (!in.read(reinterpret_cast<char*>(w.data()), static_cast<std::streamsize>(bytes)))
    return false;
  words = std::move(w);
  signatures = std::move(sig);
  return true;
}

void source_cache_write(const std::string& key, const std::vector<std::uint32_t>& words,
                        const SourceSignatures& signatures) {
  std::string dir = cache_dir();
  if (dir.empty() || key.empty() || !make_dirs(dir)) return;
  write_whole(dir + "/" + key + ".spv", [&](std::ostream& out) {
    out << kSourceMagic << '\n' << signatures.size() << '\n';
    for (const auto& [name, args] : signatures) {
      put(out, name);
      out << args.size() << ' ';
      for (const SourceArg& a : args) {
        put(out, a.type);
        put(out, a.qualifiers);
      }
      out << '\n';
    }
    out << words.size() * 4 << '\n';
    out.write(reinterpret_cast<const char*>(words.data()),
              static_cast<std::streamsize>(words.size() * 4));
  });
}

std::string cache_key(const std::uint32_t* words, std::size_t count, std::string_view options,
                      std::string_view host_cpu) {
  std::uint64_t h = fnv(words, count * 4);
  // Two independent hashes of the module make an accidental collision vanishingly unlikely.
  std::uint64_t h2 = fnv(words, count * 4, 0x9e3779b97f4a7c15ull);
  // A rebuilt hetmm may emit other code: its build ID is part of the key (the compile time of
  // this file stands in when there is none).
  std::string rest = std::string(options) + '\n' + std::string(host_cpu) + '\n' + kMagic +
                     '\n' + build_stamp();
  std::uint64_t h3 = fnv(rest.data(), rest.size());
  char buf[80];
  std::snprintf(buf, sizeof buf, "%016llx%016llx-%016llx-%zu", static_cast<unsigned long long>(h),
                static_cast<unsigned long long>(h2), static_cast<unsigned long long>(h3), count);
  return buf;
}

bool cache_read(const std::string& key, detail::CompiledProgram& program, std::string& object) {
  std::string dir = cache_dir();
  if (dir.empty()) return false;
  std::ifstream meta(dir + "/" + key + ".meta", std::ios::binary);
  std::ifstream obj(dir + "/" + key + ".o", std::ios::binary);
  if (!meta || !obj) return false;
  std::string line;
  if (!std::getline(meta, line) || line != kMagic) return false;
  std::size_t nkernels = 0;
  int mmu = 0;
  if (!(meta >> program.static_local_bytes >> mmu >> program.mmu_accesses >> nkernels) ||
      nkernels > 4096)
    return false;
  program.mmu = mmu != 0;
  program.kernels.clear();
  for (std::size_t k = 0; k < nkernels; ++k) {
    detail::CompiledProgram::Kernel kernel;
    KernelInfo& info = kernel.info;
    std::size_t nargs = 0;
    int barriers = 0, joins = 0;
    if (!get(meta, info.name) ||
        !(meta >> barriers >> kernel.wi_private_bytes >> joins >> info.required_local[0] >>
          info.required_local[1] >> info.required_local[2] >> nargs) ||
        nargs > 1024)
      return false;
    info.uses_barriers = barriers != 0;
    kernel.joins_x_groups = joins != 0;
    for (std::size_t a = 0; a < nargs; ++a) {
      KernelArgInfo arg;
      int kind = 0;
      if (!get(meta, arg.name) || !get(meta, arg.type_name) || !(meta >> kind >> arg.size) ||
          kind < 0 || kind > static_cast<int>(ArgKind::value))
        return false;
      arg.kind = static_cast<ArgKind>(kind);
      info.args.push_back(std::move(arg));
    }
    if (!get(meta, info.vectorization)) return false;
    program.kernels.push_back(std::move(kernel));
  }
  std::ostringstream bytes;
  bytes << obj.rdbuf();
  object = bytes.str();
  return !object.empty();
}

void cache_write(const std::string& key, const detail::CompiledProgram& program,
                 std::string_view object) {
  std::string dir = cache_dir();
  if (dir.empty() || !make_dirs(dir)) return;  // a cache that cannot be written is no error
  // The object first: a reader that finds the .meta finds a complete .o.
  if (!write_whole(dir + "/" + key + ".o", [&](std::ostream& obj) {
        obj.write(object.data(), static_cast<std::streamsize>(object.size()));
      }))
    return;
  write_whole(dir + "/" + key + ".meta", [&](std::ostream& meta) {
    meta << kMagic << '\n'
         << program.static_local_bytes << ' ' << (program.mmu ? 1 : 0) << ' '
         << program.mmu_accesses << ' ' << program.kernels.size() << '\n';
    for (const auto& k : program.kernels) {
      put(meta, k.info.name);
      meta << (k.info.uses_barriers ? 1 : 0) << ' ' << k.wi_private_bytes << ' '
           << (k.joins_x_groups ? 1 : 0) << ' ' << k.info.required_local[0] << ' ' << k.info.required_local[1] << ' '
           << k.info.required_local[2] << ' ' << k.info.args.size() << '\n';
      for (const auto& a : k.info.args) {
        put(meta, a.name);
        put(meta, a.type_name);
        meta << static_cast<int>(a.kind) << ' ' << a.size << '\n';
      }
      put(meta, k.info.vectorization);
    }
  });
}

}  // namespace hetmm::spirv
