#include "bare_uffd.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace hetmm::bench {
namespace {
constexpr std::size_t kPage = 4096;
constexpr int kUserModeOnly = 1;  // UFFD_USER_MODE_ONLY, absent from older headers
}  // namespace

BareUffdPage::BareUffdPage() {
  long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kUserModeOnly);
  if (fd < 0) {
    error_ = std::string("userfaultfd refused: ") + std::strerror(errno);
    return;
  }
  fd_ = static_cast<int>(fd);
  uffdio_api api{UFFD_API, 0, {}};
  if (::ioctl(fd_, UFFDIO_API, &api) != 0) {
    error_ = std::string("UFFDIO_API failed: ") + std::strerror(errno);
    return;
  }
  void* p = ::mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    error_ = "mmap failed";
    return;
  }
  page_ = static_cast<char*>(p);
  source_ = static_cast<char*>(p) + kPage;  // not registered: the handler copies from it
  std::memset(p, 1, 2 * kPage);
  uffdio_register reg{};
  reg.range = {reinterpret_cast<std::uint64_t>(page_), kPage};
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (::ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) {
    error_ = std::string("UFFDIO_REGISTER failed: ") + std::strerror(errno);
    return;
  }
  handler_ = std::thread([this] { serve(); });
}

BareUffdPage::~BareUffdPage() {
  stop_ = true;
  if (handler_.joinable()) handler_.join();
  if (page_ != nullptr) ::munmap(const_cast<char*>(page_), 2 * kPage);
  if (fd_ >= 0) ::close(fd_);
}

void BareUffdPage::zap() { ::madvise(const_cast<char*>(page_), kPage, MADV_DONTNEED); }

void BareUffdPage::touch() { page_[0] = static_cast<char>(page_[0] + 1); }

void BareUffdPage::serve() {
  while (!stop_.load()) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 10) <= 0) continue;
    uffd_msg msg;
    if (::read(fd_, &msg, sizeof msg) != sizeof msg) continue;
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uffdio_copy c{};
    c.dst = msg.arg.pagefault.address & ~std::uint64_t{kPage - 1};
    c.src = reinterpret_cast<std::uint64_t>(source_);
    c.len = kPage;
    ::ioctl(fd_, UFFDIO_COPY, &c);
  }
}

}  // namespace hetmm::bench
