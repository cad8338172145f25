// Layer os: includes base.
// Finding a program on PATH, as posix_spawnp and a shell would.
#pragma once

#include <string>

namespace hetmm::os {

// The path of the first executable regular file named `name` in $PATH's directories (PATH
// unset: /usr/bin:/bin), or "" when there is none.
std::string find_program(const char* name);

}  // namespace hetmm::os
