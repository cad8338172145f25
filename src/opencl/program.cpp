// Layer opencl: includes every layer.
// Programs: OpenCL C (clang-15 to SPIR-V), SPIR-V IL, and binaries, which are the SPIR-V a
// program was built from (so CL_PROGRAM_BINARIES round-trips through clCreateProgramWithBinary,
// and SPIR-V from anywhere is a valid binary). Building JIT-compiles the SPIR-V with hetmm's
// device MMU (spirv::compile_spirv). Separate compilation links SPIR-V modules with spirv-link.
#include "opencl/device_info.hpp"
#include "opencl/objects.hpp"

#include "spirv/compiled_program.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace hetmm::opencl {
namespace {

constexpr std::uint32_t kSpirvMagic = 0x07230203;

bool is_spirv(const void* p, std::size_t bytes) {
  if (p == nullptr || bytes < 20 || bytes % 4 != 0) return false;
  std::uint32_t magic;
  std::memcpy(&magic, p, 4);
  return magic == kSpirvMagic;
}

std::vector<std::uint32_t> words_of(const void* p, std::size_t bytes) {
  std::vector<std::uint32_t> w(bytes / 4);
  std::memcpy(w.data(), p, bytes);
  return w;
}

// The program's devices: all of the context's, or the list given (each in the context).
std::vector<cl_device_id> device_list(cl_context ctx, cl_uint n, const cl_device_id* list) {
  if ((n == 0) != (list == nullptr)) fail(CL_INVALID_VALUE);
  if (n == 0) return ctx->devices;
  std::vector<cl_device_id> out;
  for (cl_uint i = 0; i < n; ++i) {
    if (find_object(list[i], Kind::device) == nullptr ||
        std::find(ctx->devices.begin(), ctx->devices.end(), list[i]) == ctx->devices.end())
      fail(CL_INVALID_DEVICE);
    out.push_back(list[i]);
  }
  return out;
}

cl_program new_program(cl_context ctx, _cl_program::Origin origin) {
  auto* p = new _cl_program;
  p->context = ctx;
  p->devices = ctx->devices;
  p->origin = origin;
  retain(ctx);
  return p;
}

// The front end's options: OpenCL C 1.2 unless the program asks for another (spec 5.8.6.5).
std::string front_end_options(const std::string& options) {
  std::string o = options;
  if (o.find("-cl-std=") == std::string::npos) o = "-cl-std=CL1.2 " + o;
  return o;
}

std::string jit_options(const std::string& options) {
  std::istringstream in(options);
  std::string o, out;
  while (in >> o)
    if (spirv::is_jit_option(o)) out += (out.empty() ? "" : " ") + o;
  return out;
}

// A scratch directory, removed with what is in it.
struct Scratch {
  std::string path;
  std::vector<std::string> files;
  Scratch() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") + "/hetmm-cl-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) fail(CL_OUT_OF_RESOURCES);
    path = buf.data();
  }
  std::string write(const std::string& name, const void* data, std::size_t n) {
    std::string f = path + "/" + name;
    std::string dir = f.substr(0, f.rfind('/'));
    // Header names may have directories ("inc/a.h"): make them.
    for (std::size_t i = path.size() + 1; i < dir.size(); ++i)
      if (dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0700);
    mkdir(dir.c_str(), 0700);
    std::ofstream out(f, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    files.push_back(f);
    return f;
  }
  ~Scratch() {
    for (auto it = files.rbegin(); it != files.rend(); ++it) unlink(it->c_str());
    // Directories made for headers: remove deepest first; failures are harmless.
    for (auto it = files.rbegin(); it != files.rend(); ++it) {
      std::string d = it->substr(0, it->rfind('/'));
      while (d.size() > path.size()) {
        rmdir(d.c_str());
        d = d.substr(0, d.rfind('/'));
      }
    }
    rmdir(path.c_str());
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Sets the build state under p->mutex.
void set_state(cl_program p, cl_build_status status, cl_program_binary_type type,
               const std::string& options, const std::string& log) {
  std::lock_guard lock(p->mutex);
  p->build_status = status;
  p->binary_type = type;
  p->options = options;
  p->log = log;
}

// Source to SPIR-V, with headers for clCompileProgram. Throws hetmm::Error with the log.
std::vector<std::uint32_t> compile_source(const std::string& source, const std::string& options,
                                          cl_uint num_headers, const cl_program* headers,
                                          const char** header_names,
                                          spirv::SourceSignatures* signatures) {
  std::string o = front_end_options(options);
  std::optional<Scratch> inc;
  if (num_headers != 0) {
    inc.emplace();
    for (cl_uint i = 0; i < num_headers; ++i)
      inc->write(header_names[i], headers[i]->source.data(), headers[i]->source.size());
    o += " -I" + inc->path;
  }
  return spirv::opencl_c_to_spirv(source, o, signatures);
}

void notify_done(void(CL_CALLBACK* fn)(cl_program, void*), cl_program p, void* data) {
  if (fn != nullptr) fn(p, data);
}

void check_can_build(cl_program p) {
  std::lock_guard lock(p->mutex);
  if (p->attached_kernels != 0 || p->build_status == CL_BUILD_IN_PROGRESS) fail(CL_INVALID_OPERATION);
}

}  // namespace
}  // namespace hetmm::opencl

using namespace hetmm::opencl;

CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithSource(cl_context ctx, cl_uint count,
                                                              const char** strings,
                                                              const size_t* lengths,
                                                              cl_int* errcode_ret) {
  return guarded_create<cl_program>(errcode_ret, [&] {
    get(ctx);
    if (count == 0 || strings == nullptr) fail(CL_INVALID_VALUE);
    std::string source;
    for (cl_uint i = 0; i < count; ++i) {
      if (strings[i] == nullptr) fail(CL_INVALID_VALUE);
      if (lengths != nullptr && lengths[i] != 0) source.append(strings[i], lengths[i]);
      else source.append(strings[i]);
    }
    cl_program p = new_program(ctx, _cl_program::Origin::source);
    p->source = std::move(source);
    register_object(p);
    return p;
  });
}

CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithIL(cl_context ctx, const void* il,
                                                          size_t length, cl_int* errcode_ret) {
  return guarded_create<cl_program>(errcode_ret, [&] {
    get(ctx);
    if (il == nullptr || length == 0 || !is_spirv(il, length)) fail(CL_INVALID_VALUE);
    cl_program p = new_program(ctx, _cl_program::Origin::il);
    p->il = words_of(il, length);
    register_object(p);
    return p;
  });
}

CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithBinary(
    cl_context ctx, cl_uint n, const cl_device_id* devices, const size_t* lengths,
    const unsigned char** binaries, cl_int* binary_status, cl_int* errcode_ret) {
  return guarded_create<cl_program>(errcode_ret, [&] {
    get(ctx);
    if (n == 0 || devices == nullptr || lengths == nullptr || binaries == nullptr)
      fail(CL_INVALID_VALUE);
    std::vector<cl_device_id> devs = device_list(ctx, n, devices);
    bool bad = false;
    for (cl_uint i = 0; i < n; ++i) {
      if (binaries[i] == nullptr || lengths[i] == 0) fail(CL_INVALID_VALUE);
      bool ok = is_spirv(binaries[i], lengths[i]);
      if (binary_status != nullptr) binary_status[i] = ok ? CL_SUCCESS : CL_INVALID_BINARY;
      bad |= !ok;
    }
    if (bad) fail(CL_INVALID_BINARY);
    cl_program p = new_program(ctx, _cl_program::Origin::binary);
    p->devices = std::move(devs);
    p->il = words_of(binaries[0], lengths[0]);
    // A binary is SPIR-V ready to build: what CL_PROGRAM_BINARIES gives of any program.
    p->binary_type = CL_PROGRAM_BINARY_TYPE_COMPILED_OBJECT;
    register_object(p);
    return p;
  });
}

CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithBuiltInKernels(cl_context ctx, cl_uint,
                                                                      const cl_device_id*,
                                                                      const char*,
                                                                      cl_int* errcode_ret) {
  return guarded_create<cl_program>(errcode_ret, [&]() -> cl_program {
    get(ctx);
    fail(CL_INVALID_VALUE);  // CL_DEVICE_BUILT_IN_KERNELS is empty
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainProgram(cl_program p) {
  return guarded([&] { retain(get(p)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseProgram(cl_program p) {
  return guarded([&] { release(get(p)); });
}

CL_API_ENTRY cl_int CL_API_CALL clBuildProgram(cl_program p, cl_uint n, const cl_device_id* devices,
                                               const char* options,
                                               void(CL_CALLBACK* notify)(cl_program, void*),
                                               void* data) {
  return guarded([&] {
    get(p);
    device_list(p->context, n, devices);
    if (notify == nullptr && data != nullptr) fail(CL_INVALID_VALUE);
    check_can_build(p);
    std::string opts = options != nullptr ? options : "";
    if (p->origin == _cl_program::Origin::source && !compiler_available())
      fail(CL_COMPILER_NOT_AVAILABLE);
    set_state(p, CL_BUILD_IN_PROGRESS, CL_PROGRAM_BINARY_TYPE_NONE, opts, "");
    try {
      hetmm::spirv::SourceSignatures signatures;
      std::vector<std::uint32_t> words =
          p->origin == _cl_program::Origin::source
              ? hetmm::spirv::opencl_c_to_spirv(p->source, front_end_options(opts), &signatures)
              : p->il;
      std::string jit = jit_options(opts);
      {
        std::lock_guard lock(p->mutex);
        for (const auto& [id, v] : p->spec_values)
          jit += " -spec-const=" + std::to_string(id) + ":" + std::to_string(v);
      }
      auto compiled = hetmm::spirv::compile_spirv(words.data(), words.size(), jit);
      std::lock_guard lock(p->mutex);
      if (p->origin == _cl_program::Origin::source) p->signatures = std::move(signatures);
      p->il = std::move(words);
      p->built.emplace(std::move(compiled));
      p->build_status = CL_BUILD_SUCCESS;
      p->binary_type = CL_PROGRAM_BINARY_TYPE_EXECUTABLE;
    } catch (const hetmm::Error& e) {
      set_state(p, CL_BUILD_ERROR, CL_PROGRAM_BINARY_TYPE_NONE, opts, e.what());
      notify_done(notify, p, data);
      fail(CL_BUILD_PROGRAM_FAILURE);
    }
    notify_done(notify, p, data);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clCompileProgram(cl_program p, cl_uint n, const cl_device_id* devices,
                                                 const char* options, cl_uint num_headers,
                                                 const cl_program* headers,
                                                 const char** header_names,
                                                 void(CL_CALLBACK* notify)(cl_program, void*),
                                                 void* data) {
  return guarded([&] {
    get(p);
    device_list(p->context, n, devices);
    if (notify == nullptr && data != nullptr) fail(CL_INVALID_VALUE);
    if ((num_headers == 0) != (headers == nullptr) || (num_headers == 0) != (header_names == nullptr))
      fail(CL_INVALID_VALUE);
    for (cl_uint i = 0; i < num_headers; ++i) {
      get(headers[i]);
      if (header_names[i] == nullptr) fail(CL_INVALID_VALUE);
    }
    if (p->origin != _cl_program::Origin::source) fail(CL_INVALID_OPERATION);
    if (!compiler_available()) fail(CL_COMPILER_NOT_AVAILABLE);
    check_can_build(p);
    std::string opts = options != nullptr ? options : "";
    set_state(p, CL_BUILD_IN_PROGRESS, CL_PROGRAM_BINARY_TYPE_NONE, opts, "");
    try {
      hetmm::spirv::SourceSignatures signatures;
      auto words = compile_source(p->source, opts, num_headers, headers, header_names, &signatures);
      std::lock_guard lock(p->mutex);
      p->signatures = std::move(signatures);
      p->il = std::move(words);
      p->built.reset();
      p->build_status = CL_BUILD_SUCCESS;
      p->binary_type = CL_PROGRAM_BINARY_TYPE_COMPILED_OBJECT;
    } catch (const hetmm::Error& e) {
      set_state(p, CL_BUILD_ERROR, CL_PROGRAM_BINARY_TYPE_NONE, opts, e.what());
      notify_done(notify, p, data);
      fail(CL_COMPILE_PROGRAM_FAILURE);
    }
    notify_done(notify, p, data);
  });
}

CL_API_ENTRY cl_program CL_API_CALL clLinkProgram(cl_context ctx, cl_uint n,
                                                  const cl_device_id* devices, const char* options,
                                                  cl_uint num_inputs, const cl_program* inputs,
                                                  void(CL_CALLBACK* notify)(cl_program, void*),
                                                  void* data, cl_int* errcode_ret) {
  cl_int link_status = CL_SUCCESS;
  cl_program linked = guarded_create<cl_program>(errcode_ret, [&] {
    get(ctx);
    std::vector<cl_device_id> devs = device_list(ctx, n, devices);
    if (notify == nullptr && data != nullptr) fail(CL_INVALID_VALUE);
    if (num_inputs == 0 || inputs == nullptr) fail(CL_INVALID_VALUE);
    std::vector<std::vector<std::uint32_t>> modules;
    hetmm::spirv::SourceSignatures signatures;
    for (cl_uint i = 0; i < num_inputs; ++i) {
      get(inputs[i]);
      if (inputs[i]->context != ctx) fail(CL_INVALID_CONTEXT);
      std::lock_guard lock(inputs[i]->mutex);
      if (inputs[i]->il.empty() || inputs[i]->build_status == CL_BUILD_ERROR) fail(CL_INVALID_OPERATION);
      modules.push_back(inputs[i]->il);
      signatures.insert(inputs[i]->signatures.begin(), inputs[i]->signatures.end());
    }
    std::string opts = options != nullptr ? options : "";
    const bool library = opts.find("-create-library") != std::string::npos;
    cl_program p = new_program(ctx, _cl_program::Origin::linked);
    p->devices = std::move(devs);
    p->signatures = std::move(signatures);
    register_object(p);
    std::string log;
    try {
      std::vector<std::uint32_t> words;
      if (modules.size() == 1) {
        words = std::move(modules[0]);
      } else {
        if (!linker_available()) fail(CL_LINKER_NOT_AVAILABLE);
        Scratch dir;
        std::vector<std::string> argv = {"spirv-link"};
        if (library) argv.push_back("--create-library");
        for (std::size_t i = 0; i < modules.size(); ++i)
          argv.push_back(dir.write("in" + std::to_string(i) + ".spv", modules[i].data(),
                                   modules[i].size() * 4));
        std::string out = dir.path + "/linked.spv", logf = dir.path + "/log.txt";
        dir.files.push_back(out);
        dir.files.push_back(logf);
        argv.insert(argv.end(), {"-o", out});
        int spawn_errno = 0;
        int rc = hetmm::spirv::run_tool(argv, logf, &spawn_errno);
        std::string bytes = slurp(out);
        if (rc != 0 || !is_spirv(bytes.data(), bytes.size()))
          throw hetmm::Error(hetmm::Errc::invalid_argument, "spirv-link failed:\n" + slurp(logf));
        words = words_of(bytes.data(), bytes.size());
      }
      if (library) {
        std::lock_guard lock(p->mutex);
        p->il = std::move(words);
        p->build_status = CL_BUILD_SUCCESS;
        p->binary_type = CL_PROGRAM_BINARY_TYPE_LIBRARY;
        p->options = opts;
      } else {
        auto compiled = hetmm::spirv::compile_spirv(words.data(), words.size(), jit_options(opts));
        std::lock_guard lock(p->mutex);
        p->il = std::move(words);
        p->built.emplace(std::move(compiled));
        p->build_status = CL_BUILD_SUCCESS;
        p->binary_type = CL_PROGRAM_BINARY_TYPE_EXECUTABLE;
        p->options = opts;
      }
    } catch (const hetmm::Error& e) {
      // The program is returned with its log, as the spec asks, with the failure reported.
      set_state(p, CL_BUILD_ERROR, CL_PROGRAM_BINARY_TYPE_NONE, opts, e.what());
      link_status = CL_LINK_PROGRAM_FAILURE;
    }
    notify_done(notify, p, data);
    return p;
  });
  if (linked != nullptr && link_status != CL_SUCCESS && errcode_ret != nullptr)
    *errcode_ret = link_status;
  return linked;
}

CL_API_ENTRY cl_int CL_API_CALL clGetProgramInfo(cl_program p, cl_program_info param, size_t size,
                                                 void* value, size_t* size_ret) {
  return guarded([&] {
    get(p);
    std::lock_guard lock(p->mutex);
    cl_int rc;
    auto need_built = [&] {
      if (!p->built) fail(CL_INVALID_PROGRAM_EXECUTABLE);
    };
    switch (param) {
      case CL_PROGRAM_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, p->refs.load()); break;
      case CL_PROGRAM_CONTEXT: rc = info(size, value, size_ret, p->context); break;
      case CL_PROGRAM_NUM_DEVICES:
        rc = info<cl_uint>(size, value, size_ret, static_cast<cl_uint>(p->devices.size()));
        break;
      case CL_PROGRAM_DEVICES: rc = info_vector(size, value, size_ret, p->devices); break;
      case CL_PROGRAM_SOURCE:
        rc = p->origin == _cl_program::Origin::source ? info_string(size, value, size_ret, p->source)
                                                      : info_bytes(size, value, size_ret, nullptr, 0);
        break;
      case CL_PROGRAM_IL:
        rc = p->origin == _cl_program::Origin::il
                 ? info_bytes(size, value, size_ret, p->il.data(), p->il.size() * 4)
                 : info_bytes(size, value, size_ret, nullptr, 0);
        break;
      case CL_PROGRAM_BINARY_SIZES: {
        std::vector<size_t> sizes(p->devices.size(), p->il.size() * 4);
        rc = info_vector(size, value, size_ret, sizes);
        break;
      }
      case CL_PROGRAM_BINARIES: {
        std::size_t n = p->devices.size() * sizeof(unsigned char*);
        if (value != nullptr) {
          if (size < n) fail(CL_INVALID_VALUE);
          auto** out = static_cast<unsigned char**>(value);
          for (std::size_t i = 0; i < p->devices.size(); ++i)
            if (out[i] != nullptr && !p->il.empty()) std::memcpy(out[i], p->il.data(), p->il.size() * 4);
        }
        if (size_ret != nullptr) *size_ret = n;
        rc = CL_SUCCESS;
        break;
      }
      case CL_PROGRAM_NUM_KERNELS:
        need_built();
        rc = info<size_t>(size, value, size_ret, p->built->kernel_names().size());
        break;
      case CL_PROGRAM_KERNEL_NAMES: {
        need_built();
        std::string names;
        for (const std::string& k : p->built->kernel_names()) names += (names.empty() ? "" : ";") + k;
        rc = info_string(size, value, size_ret, names);
        break;
      }
      case CL_PROGRAM_SCOPE_GLOBAL_CTORS_PRESENT:
      case CL_PROGRAM_SCOPE_GLOBAL_DTORS_PRESENT: rc = info<cl_bool>(size, value, size_ret, CL_FALSE); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetProgramBuildInfo(cl_program p, cl_device_id d,
                                                      cl_program_build_info param, size_t size,
                                                      void* value, size_t* size_ret) {
  return guarded([&] {
    get(p);
    get(d);
    if (std::find(p->devices.begin(), p->devices.end(), d) == p->devices.end()) fail(CL_INVALID_DEVICE);
    std::lock_guard lock(p->mutex);
    cl_int rc;
    switch (param) {
      case CL_PROGRAM_BUILD_STATUS: rc = info(size, value, size_ret, p->build_status); break;
      case CL_PROGRAM_BUILD_OPTIONS: rc = info_string(size, value, size_ret, p->options); break;
      case CL_PROGRAM_BUILD_LOG: rc = info_string(size, value, size_ret, p->log); break;
      case CL_PROGRAM_BINARY_TYPE: rc = info(size, value, size_ret, p->binary_type); break;
      case CL_PROGRAM_BUILD_GLOBAL_VARIABLE_TOTAL_SIZE: rc = info<size_t>(size, value, size_ret, 0); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetProgramReleaseCallback(cl_program p,
                                                            void(CL_CALLBACK* fn)(cl_program, void*),
                                                            void* data) {
  return guarded([&] {
    get(p);
    if (fn == nullptr) fail(CL_INVALID_VALUE);
    std::lock_guard lock(p->mutex);
    p->release_callbacks.emplace_back(fn, data);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetProgramSpecializationConstant(cl_program p, cl_uint id,
                                                                   size_t size,
                                                                   const void* value) {
  return guarded([&] {
    get(p);
    if (p->origin != _cl_program::Origin::il) fail(CL_INVALID_PROGRAM);
    if (value == nullptr) fail(CL_INVALID_VALUE);
    // The module says which SpecIds exist and their sizes; the value goes to the SPIR-V reader
    // at the next build (-spec-const=ID:VALUE, a JIT build option).
    std::size_t expected = 0;
    for (const auto& [spec_id, bytes] : hetmm::spirv::spec_constants(p->il.data(), p->il.size()))
      if (spec_id == id) expected = bytes;
    if (expected == 0) fail(CL_INVALID_SPEC_ID);
    if (size != expected || size > sizeof(std::uint64_t)) fail(CL_INVALID_VALUE);
    std::uint64_t v = 0;
    std::memcpy(&v, value, size);
    std::lock_guard lock(p->mutex);
    p->spec_values[id] = v;
  });
}
