// OpenCL C to SPIR-V, like clBuildProgram: clang-15 then llvm-spirv-15, as child processes.
//
// Child processes rather than libclang: Debian's clang and translator libraries are built with
// assertions, and a bad input must never take the caller's process down. posix_spawn (vfork
// semantics) runs no pthread_atfork handlers, so the runtime's fork handling stays out of it.
// The flags are the ones ../shared/docs/spirv-compute.md found necessary on this toolchain.
#include "spirv/compiled_program.hpp"
#include "spirv/kernel_cache.hpp"

#include "os/program_path.hpp"

#include "hetmm/hetmm.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace hetmm::spirv {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") + "/hetmm-cl-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr)
      throw Error(Errc::unsupported, "OpenCL C: cannot make a temporary directory in " + tmpl +
                                         ": " + std::strerror(errno));
    path = buf.data();
  }
  ~TempDir() {
    for (const char* f : {"/source.cl", "/kernel.bc", "/kernel.spv", "/log.txt"})
      unlink((path + f).c_str());
    rmdir(path.c_str());
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_options(std::string_view options) {
  std::vector<std::string> out;
  std::istringstream in{std::string(options)};
  std::string o;
  while (in >> o) out.push_back(o);
  return out;
}

}  // namespace

int run_tool(const std::vector<std::string>& argv, const std::string& log, int* spawn_errno) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    *spawn_errno = rc;
    return -1;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool tool_on_path(const char* name) { return !os::find_program(name).empty(); }

std::vector<std::uint32_t> opencl_c_to_spirv(std::string_view source, std::string_view options,
                                             SourceSignatures* signatures) {
  std::string front_end;
  for (const std::string& o : split_options(options))
    if (!is_jit_option(o)) front_end += o + '\n';
  const std::string key = source_cache_key(source, front_end);
  {
    std::vector<std::uint32_t> words;
    SourceSignatures cached;
    if (source_cache_read(key, words, cached)) {
      if (signatures != nullptr) *signatures = std::move(cached);
      return words;
    }
  }
  TempDir dir;
  const std::string src = dir.path + "/source.cl", bc = dir.path + "/kernel.bc",
                    spv = dir.path + "/kernel.spv", log = dir.path + "/log.txt";
  {
    std::ofstream out(src, std::ios::binary);
    out.write(source.data(), static_cast<std::streamsize>(source.size()));
    if (!out) throw Error(Errc::unsupported, "OpenCL C: cannot write " + src);
  }
  std::vector<std::string> clang = {"clang-15", "-cl-std=CL2.0", "-target", "spir64-unknown-unknown",
                                    "-O2", "-Xclang", "-disable-llvm-passes", "-Dinline=",
                                    "-emit-llvm", "-c"};
  for (std::string& o : split_options(options)) {
    // hetmm's own options are for the JIT, not the front end.
    if (is_jit_option(o)) continue;
    if (o.rfind("-cl-std=", 0) == 0) clang[1] = o;
    else clang.push_back(o);
  }
  clang.insert(clang.end(), {src, "-o", bc});
  int spawn_errno = 0;
  int rc = run_tool(clang, log, &spawn_errno);
  if (rc < 0)
    throw Error(Errc::unsupported, std::string("OpenCL C: cannot run clang-15 (") +
                                       std::strerror(spawn_errno) +
                                       "); install it with: apt-get install clang-15 llvm-spirv-15");
  if (rc != 0)
    throw Error(Errc::invalid_argument, "OpenCL C: build failed:\n" + read_file(log));
  SourceSignatures found = source_signatures(read_file(bc));
  rc = run_tool({"llvm-spirv-15", "--spirv-max-version=1.0", bc, "-o", spv}, log, &spawn_errno);
  if (rc < 0)
    throw Error(Errc::unsupported, std::string("OpenCL C: cannot run llvm-spirv-15 (") +
                                       std::strerror(spawn_errno) +
                                       "); install it with: apt-get install llvm-spirv-15");
  if (rc != 0)
    throw Error(Errc::invalid_argument, "OpenCL C: translation to SPIR-V failed:\n" + read_file(log));
  std::string bytes = read_file(spv);
  if (bytes.size() % 4 != 0 || bytes.empty())
    throw Error(Errc::invalid_argument, "OpenCL C: llvm-spirv-15 produced no SPIR-V");
  std::vector<std::uint32_t> words(bytes.size() / 4);
  std::memcpy(words.data(), bytes.data(), bytes.size());
  source_cache_write(key, words, found);
  if (signatures != nullptr) *signatures = std::move(found);
  return words;
}

}  // namespace hetmm::spirv
