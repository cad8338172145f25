// What hetmm says when a device touches memory it may not: each error names the address.
// Run: build/hetmm-example-errors (installed: bin/hetmm-example-errors)
#include <hetmm/hetmm.hpp>

#include <cstdio>
#include <sys/mman.h>

int main() {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  auto* ro = static_cast<int*>(mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  int one = 1;
  int failures = 0;
  try {
    dev.write(ro, &one, sizeof one);
  } catch (const hetmm::Error& e) {
    std::printf("write to read-only memory: %s\n", e.what());
    failures += e.code() == hetmm::Errc::permission;
  }
  dev.launch(1, [ro](hetmm::Thread& t) { t.store(ro, 5); });
  try {
    dev.synchronize();
  } catch (const hetmm::Error& e) {
    std::printf("kernel store to read-only memory: %s\n", e.what());
    failures += e.code() == hetmm::Errc::permission;
  }
  munmap(ro, 4096);
  return failures == 2 ? 0 : 1;
}
