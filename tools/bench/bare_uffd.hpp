// A page with a userfaultfd of its own, served by a handler thread with UFFDIO_COPY: the bare
// round trip (fault, copy, resume) that hetmm's CPU fault-back is judged against. Used by
// `hetmm bench` and bench/micro_bench.cpp.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace hetmm::bench {

class BareUffdPage {
 public:
  BareUffdPage();  // ok() says whether userfaultfd could be set up
  ~BareUffdPage();
  BareUffdPage(const BareUffdPage&) = delete;
  BareUffdPage& operator=(const BareUffdPage&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  void zap();    // drops the page: the next touch faults
  void touch();  // a read and a write of the page's first byte

 private:
  void serve();
  int fd_ = -1;
  volatile char* page_ = nullptr;
  char* source_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread handler_;
  std::string error_;
};

}  // namespace hetmm::bench
