// saxpy over std::vector memory on a software device, with the data migrated first.
// Run: build/hetmm-example-saxpy (installed: bin/hetmm-example-saxpy)
#include <hetmm/hetmm.hpp>

#include <cstdio>
#include <vector>

int main() {
  hetmm::Options opt;
  opt.device_memory = 64u << 20;
  hetmm::Runtime rt(opt);
  auto& dev = rt.device(0);

  const std::size_t n = 1 << 20;
  std::vector<float> x(n, 2.0f), y(n, 1.0f);
  dev.migrate_to_device(x.data(), n * sizeof(float));
  dev.migrate_to_device(y.data(), n * sizeof(float));

  const float a = 3.0f;
  dev.launch(n, [a, px = x.data(), py = y.data()](hetmm::Thread& t) {
    std::size_t i = t.id();
    t.store(py + i, a * t.load(px + i) + t.load(py + i));
  });
  dev.synchronize();

  std::size_t wrong = 0;
  for (float v : y) wrong += v != 7.0f;  // the CPU reads: pages come home as touched
  auto s = dev.stats();
  std::printf("saxpy on %zu floats: %s; %llu pages to device, %llu CPU fault-backs\n", n,
              wrong == 0 ? "correct" : "WRONG",
              static_cast<unsigned long long>(s.pages_to_device),
              static_cast<unsigned long long>(s.cpu_faults));
  return wrong == 0 ? 0 : 1;
}
