// Device read/write over mirrored memory: dmirror's anon_read/anon_write/file_* scenarios.
#include "test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace hetmm::test {
namespace {

class ReadWrite : public Tracked {};
HETMM_BOTH_MODES(ReadWrite);

TEST_P(ReadWrite, ColdReadTakesOneRoundThenNone) {
  Runtime rt(options());
  const std::size_t n = 64;
  Mapping m(n * kPage);
  fill_pattern(m.get(), n * kPage, 1);
  std::vector<std::byte> out(n * kPage);
  AccessResult r = rt.device(0).read(m.get(), out.data(), n * kPage);
  EXPECT_EQ(r.pages, n);
  EXPECT_EQ(r.faults, 1u);
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 1));
  r = rt.device(0).read(m.get(), out.data(), n * kPage);
  EXPECT_EQ(r.faults, 0u);
}

TEST_P(ReadWrite, UntouchedMemoryReadsZeros) {
  Runtime rt(options());
  Mapping m(16 * kPage);
  auto snap = rt.device(0).snapshot(m.get(), 16 * kPage);
  for (auto& s : snap) {
    EXPECT_TRUE(s.zero);
    EXPECT_TRUE(s.readable && s.writable && !s.error);
    EXPECT_TRUE(s.location == Location::system());
  }
  std::vector<std::byte> out(16 * kPage, std::byte{0x5a});
  rt.device(0).read(m.get(), out.data(), out.size());
  for (auto b : out) ASSERT_EQ(b, std::byte{0});
}

TEST_P(ReadWrite, ColdWriteThenCpuSeesIt) {
  Runtime rt(options());
  const std::size_t n = 32;
  Mapping m(n * kPage);
  std::vector<std::byte> in(n * kPage);
  fill_pattern(in.data(), in.size(), 7);
  AccessResult r = rt.device(0).write(m.get(), in.data(), in.size());
  EXPECT_EQ(r.pages, n);
  EXPECT_EQ(r.faults, 1u);
  EXPECT_TRUE(check_pattern(m.get(), n * kPage, 7));
  r = rt.device(0).write(m.get(), in.data(), in.size());
  EXPECT_EQ(r.faults, 0u);
}

TEST_P(ReadWrite, UnalignedByteRanges) {
  Runtime rt(options());
  Mapping m(4 * kPage);
  fill_pattern(m.get(), 4 * kPage, 3);
  std::vector<std::byte> out(kPage + 10);
  AccessResult r = rt.device(0).read(m.get() + kPage - 5, out.data(), out.size());
  EXPECT_EQ(r.pages, 3u);
  EXPECT_EQ(std::memcmp(out.data(), m.get() + kPage - 5, out.size()), 0);
  const char msg[] = "hello, device";
  rt.device(0).write(m.get() + 2 * kPage - 3, msg, sizeof msg);
  EXPECT_EQ(std::memcmp(m.get() + 2 * kPage - 3, msg, sizeof msg), 0);
}

TEST_P(ReadWrite, ProtNoneAndHolesFaultReadOnlyIsPermission) {
  Runtime rt(options());
  Mapping m(8 * kPage);
  fill_pattern(m.get(), 8 * kPage, 5);
  ASSERT_EQ(mprotect(m.get() + 2 * kPage, kPage, PROT_NONE), 0);
  std::vector<std::byte> out(8 * kPage, std::byte{0x77});
  EXPECT_EQ(error_of([&] { rt.device(0).read(m.get(), out.data(), out.size()); }), Errc::fault);
  for (auto b : out) ASSERT_EQ(b, std::byte{0x77}) << "a failed read must not touch the buffer";
  // A hole.
  if (std::byte* h = low_hole_mapping()) {
    EXPECT_EQ(error_of([&] { rt.device(0).read(h, out.data(), 3 * kPage); }), Errc::fault);
    munmap(h, 3 * kPage);
  }
  // Read-only memory: reads work, writes are refused and change nothing.
  ASSERT_EQ(mprotect(m.get() + 4 * kPage, 2 * kPage, PROT_READ), 0);
  rt.device(0).read(m.get() + 4 * kPage, out.data(), 2 * kPage);
  std::vector<std::byte> in(2 * kPage, std::byte{1});
  EXPECT_EQ(error_of([&] { rt.device(0).write(m.get() + 4 * kPage, in.data(), in.size()); }),
            Errc::permission);
  EXPECT_TRUE(check_pattern(m.get() + 4 * kPage, 2 * kPage, 5) ||
              std::memcmp(m.get() + 4 * kPage, in.data(), 0) == 0);
  // After mprotect RW the same write succeeds.
  ASSERT_EQ(mprotect(m.get() + 4 * kPage, 2 * kPage, PROT_READ | PROT_WRITE), 0);
  rt.device(0).write(m.get() + 4 * kPage, in.data(), in.size());
  EXPECT_EQ(std::memcmp(m.get() + 4 * kPage, in.data(), in.size()), 0);
}

TEST_P(ReadWrite, SharedFileMappingWritesReachTheFile) {
  Runtime rt(options());
  char path[] = "/tmp/hetmm-file-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, 4 * kPage), 0);
  Mapping m(4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  ASSERT_NE(m.get(), nullptr);
  std::vector<std::byte> in(4 * kPage);
  fill_pattern(in.data(), in.size(), 9);
  rt.device(0).write(m.get(), in.data(), in.size());
  std::vector<std::byte> back(4 * kPage);
  ASSERT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(check_pattern(back.data(), back.size(), 9));
  // And a device read sees a pwrite.
  std::vector<std::byte> more(kPage);
  fill_pattern(more.data(), kPage, 11);
  ASSERT_EQ(pwrite(fd, more.data(), kPage, kPage), static_cast<ssize_t>(kPage));
  std::vector<std::byte> out(kPage);
  rt.device(0).read(m.get() + kPage, out.data(), kPage);
  EXPECT_TRUE(check_pattern(out.data(), kPage, 11));
  close(fd);
}

TEST_P(ReadWrite, BadArguments) {
  Runtime rt(options());
  Mapping m(kPage);
  char buf[16];
  EXPECT_EQ(error_of([&] { rt.device(0).read(nullptr, buf, 16); }), Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { rt.device(0).read(m.get(), buf, 0); }), Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { rt.device(0).read(m.get(), nullptr, 16); }), Errc::invalid_argument);
  EXPECT_EQ(error_of([&] {
              rt.device(0).read(reinterpret_cast<void*>(~std::uintptr_t{0} - 8), buf, 16);
            }),
            Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { rt.device(5); }), Errc::invalid_argument);
  try {
    rt.device(0).read(nullptr, buf, 16);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16 bytes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hetmm::test
