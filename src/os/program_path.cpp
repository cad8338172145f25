#include "os/program_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace hetmm::os {

std::string find_program(const char* name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t at = 0;
  while (at <= dirs.size()) {
    std::size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    if (end > at) {
      std::string file = dirs.substr(at, end - at) + "/" + name;
      struct stat st {};
      if (stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(file.c_str(), X_OK) == 0)
        return file;
    }
    at = end + 1;
  }
  return {};
}

}  // namespace hetmm::os
