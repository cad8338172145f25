#include <hetmm/hetmm.hpp>

#include <vector>

int main() {
  hetmm::Options opt;
  opt.device_memory = 8u << 20;
  hetmm::Runtime rt(opt);
  std::vector<int> v(4096, 1);
  rt.device(0).migrate_to_device(v.data(), v.size() * sizeof(int));
  long sum = 0;
  for (int x : v) sum += x;
  return sum == 4096 ? 0 : 1;
}
