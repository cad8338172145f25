// Layer spirv: includes every layer.
// The on-disk cache of compiled programs: the object code and the kernels' signatures, keyed by
// a hash of the SPIR-V module, the build options, hetmm's version and the host CPU (the code is
// compiled for it). A hit skips validation, translation, the passes and code generation.
//
// Where: $HETMM_CACHE_DIR, else $XDG_CACHE_HOME/hetmm, else $HOME/.cache/hetmm;
// HETMM_CACHE_DIR=off turns it off. Entries are written to a temporary name and renamed, so
// concurrent processes never read half an entry; a corrupt or foreign entry is ignored.
#pragma once

#include "spirv/compiled_program.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace hetmm::spirv {

// The cache key (a file name stem) for a module, its options and this host.
std::string cache_key(const std::uint32_t* words, std::size_t count, std::string_view options,
                      std::string_view host_cpu);
// Fills `program` (without code) and `object` from the entry; false on a miss.
bool cache_read(const std::string& key, detail::CompiledProgram& program, std::string& object);
void cache_write(const std::string& key, const detail::CompiledProgram& program,
                 std::string_view object);

// OpenCL C sources (from_opencl_c, clBuildProgram): the SPIR-V clang-15 and llvm-spirv-15 make
// of one, with its kernels' source signatures, so that a warm start runs neither compiler. The
// key covers the source, the front end's options, hetmm's build and both compilers' files (size
// and time); "" for a source that includes files (#include), whose contents the key cannot see.
std::string source_cache_key(std::string_view source, std::string_view front_end_options);
bool source_cache_read(const std::string& key, std::vector<std::uint32_t>& words,
                       SourceSignatures& signatures);
void source_cache_write(const std::string& key, const std::vector<std::uint32_t>& words,
                        const SourceSignatures& signatures);

}  // namespace hetmm::spirv
