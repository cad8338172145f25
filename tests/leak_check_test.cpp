// After every test: no PROT_NONE anonymous memory may be left behind by a runtime (a page
// hetmm revoked and never restored would crash the program on its next touch).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace {

class NoRevokedLeftovers : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
      // [heap] never has PROT_NONE parts unless someone left them.
      if (line.find("---p") != std::string::npos && line.find("[heap]") != std::string::npos)
        ADD_FAILURE() << info.test_suite_name() << "." << info.name()
                      << " left PROT_NONE heap memory behind: " << line;
    }
  }
};

struct Register {
  Register() { ::testing::UnitTest::GetInstance()->listeners().Append(new NoRevokedLeftovers); }
} register_listener;

}  // namespace
