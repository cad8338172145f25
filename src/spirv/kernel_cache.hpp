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

namespace hetmm::spirv {

// The cache key (a file name stem) for a module, its options and this host.
std::string cache_key(const std::uint32_t* words, std::size_t count, std::string_view options,
                      std::string_view host_cpu);
// Fills `program` (without code) and `object` from the entry; false on a miss.
bool cache_read(const std::string& key, detail::CompiledProgram& program, std::string& object);
void cache_write(const std::string& key, const detail::CompiledProgram& program,
                 std::string_view object);

}  // namespace hetmm::spirv
