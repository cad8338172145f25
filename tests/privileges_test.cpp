// What an unprivileged process gets: run as nobody in a child process. With
// vm.unprivileged_userfaultfd = 0 (Debian's default) the automatic choice must be a
// user-mode-only userfaultfd, and a migrated page must still come home on a CPU touch.
#include "test_support.hpp"

#include <fstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hetmm::test {
namespace {

TEST(Privileges, UnprivilegedProcessGetsUserModeOnlyUserfaultfd) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to an unprivileged user";
  std::string knob;
  std::ifstream("/proc/sys/vm/unprivileged_userfaultfd") >> knob;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    prctl(PR_SET_DUMPABLE, 1);  // setuid cleared it; /proc/self would become root's
    try {
      Runtime rt;
      if (rt.tracking() != Tracking::userfaultfd) _exit(11);
      bool umo = rt.tracking_reason().find("user-mode only") != std::string::npos;
      if (knob == "0" && !umo) _exit(12);
      Mapping m(4 * kPage);
      fill_pattern(m.get(), 4 * kPage, 41);
      rt.device(0).migrate_to_device(m.get(), 4 * kPage);
      if (!check_pattern(m.get(), 4 * kPage, 41)) _exit(13);
    } catch (const Error& e) {
      _exit(14);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setuid, 11: not userfaultfd, 12: not user-mode "
                                       "only, 13: data, 14: hetmm::Error";
}

}  // namespace
}  // namespace hetmm::test
