// Memory the program unmaps and maps anew at the same address is never read from a stale device
// copy. This process reaches hetmm only through libOpenCL, which dlopen's the ICD, so hetmm's
// interposed munmap/mmap are NOT in effect here: the runtime must learn of the change some other
// way (userfaultfd events) before the next kernel reads the address. Each case runs a kernel
// over the old contents first, so pages may have moved to device memory (clEnqueueSVMMigrateMem
// asks for that explicitly), then replaces the mapping and checks a second kernel sees the new
// contents.
#include "cl_test_support.hpp"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace cltest {
namespace {

constexpr size_t kPages = 16;

class Hmm : public ClTest {
 protected:
  void SetUp() override {
    ClTest::SetUp();
    if (HasFatalFailure()) return;
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    bytes_ = kPages * page_;
    n_ = bytes_ / sizeof(cl_int);
    copy_ = MakeKernel(kCommonSource, "copy_int");
    add_ = MakeKernel(kCommonSource, "add_value");
    ASSERT_TRUE(copy_ && add_);
    out_ = MakeBuffer(CL_MEM_READ_WRITE, bytes_);
    ASSERT_TRUE(out_);
    mem_ = static_cast<cl_int*>(
        mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem_, MAP_FAILED);
  }
  void TearDown() override {
    ClTest::TearDown();
    if (mem_ != nullptr && mem_ != MAP_FAILED) munmap(mem_, bytes_);
  }

  void Fill(cl_int* p, cl_int base) {
    for (size_t i = 0; i < n_; ++i) p[i] = base + static_cast<cl_int>(i);
  }

  void MigrateToDevice() {
    const void* ptrs[] = {mem_};
    const size_t sizes[] = {bytes_};
    Event e;
    ASSERT_OK(clEnqueueSVMMigrateMem(queue_, 1, ptrs, sizes, 0, 0, nullptr, e.out()));
    EXPECT_OK(clWaitForEvents(1, e.ptr()));
  }

  // Copies mem_ into out_ with a kernel and checks it read base + i everywhere (zeros when
  // zeros is set: what a fresh or discarded anonymous page holds).
  void ExpectKernelReads(cl_int base, const char* when, bool zeros = false) {
    ASSERT_OK(clSetKernelArgSVMPointer(copy_, 0, mem_));
    ASSERT_OK(clSetKernelArg(copy_, 1, sizeof(cl_mem), out_.ptr()));
    ASSERT_CL(CL_COMPLETE, Run1D(copy_, n_));
    std::vector<cl_int> got(n_);
    ASSERT_OK(clEnqueueReadBuffer(queue_, out_, CL_TRUE, 0, bytes_, got.data(), 0, nullptr,
                                  nullptr));
    size_t wrong = 0, first = n_;
    auto expected = [&](size_t i) { return zeros ? 0 : base + static_cast<cl_int>(i); };
    for (size_t i = 0; i < n_; ++i)
      if (got[i] != expected(i)) {
        if (wrong++ == 0) first = i;
      }
    EXPECT_EQ(wrong, 0u) << when << ": " << wrong << " of " << n_ << " ints stale; first at ["
                         << first << "] = " << (first < n_ ? got[first] : 0) << ", expected "
                         << (first < n_ ? expected(first) : 0);
  }

  // Adds v to every int of mem_ with a kernel (device-side writes: dirty device copies).
  void KernelAdds(cl_int v) {
    ASSERT_OK(clSetKernelArgSVMPointer(add_, 0, mem_));
    ASSERT_OK(clSetKernelArg(add_, 1, sizeof v, &v));
    ASSERT_CL(CL_COMPLETE, Run1D(add_, n_));
  }

  // Replaces the mapping: munmap, then a fresh anonymous mapping at the same address.
  void Remap(bool fixed_without_munmap = false) {
    if (!fixed_without_munmap) {
      ASSERT_EQ(munmap(mem_, bytes_), 0);
    }
    void* again = mmap(mem_, bytes_, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    ASSERT_EQ(again, static_cast<void*>(mem_));
  }

  size_t page_ = 0, bytes_ = 0, n_ = 0;
  Kernel copy_, add_;
  Mem out_;
  cl_int* mem_ = nullptr;
};

TEST_F(Hmm, RemappedAfterMigrationToDevice) {
  Fill(mem_, 1000);
  MigrateToDevice();
  ExpectKernelReads(1000, "before the remap");
  Remap();
  Fill(mem_, 500000);
  ExpectKernelReads(500000, "after munmap + mmap MAP_FIXED");
}

TEST_F(Hmm, RemappedWithoutMigration) {
  Fill(mem_, 2000);
  ExpectKernelReads(2000, "before the remap");
  Remap();
  Fill(mem_, 600000);
  ExpectKernelReads(600000, "after munmap + mmap MAP_FIXED");
}

TEST_F(Hmm, RemappedAndLeftZero) {
  // No host write after the remap: the kernel must see the new mapping's zeros.
  Fill(mem_, 3000);
  MigrateToDevice();
  ExpectKernelReads(3000, "before the remap");
  Remap();
  ExpectKernelReads(0, "after the remap (fresh zero pages)", /*zeros=*/true);
}

TEST_F(Hmm, DeviceWrittenPagesRemapped) {
  // The device wrote last, so its copy is the newest one the old mapping had; it must still
  // not come back into the new mapping, on the device or on the host.
  Fill(mem_, 0);
  MigrateToDevice();
  KernelAdds(7000);
  ExpectKernelReads(7000, "after the kernel's writes");
  Remap();
  for (size_t i = 0; i < n_; ++i) ASSERT_EQ(mem_[i], 0) << "host sees old data at " << i;
  Fill(mem_, 800000);
  ExpectKernelReads(800000, "after the remap of device-written pages");
}

TEST_F(Hmm, MapFixedOverALiveMapping) {
  // mmap MAP_FIXED replaces the old pages without a munmap call.
  Fill(mem_, 4000);
  MigrateToDevice();
  ExpectKernelReads(4000, "before the remap");
  Remap(/*fixed_without_munmap=*/true);
  Fill(mem_, 900000);
  ExpectKernelReads(900000, "after mmap MAP_FIXED over the old mapping");
}

TEST_F(Hmm, AddressReusedByALaterMmap) {
  // The program unmaps and a later plain mmap happens to get the same address back (the kernel
  // reuses the hole): the same guarantee without MAP_FIXED.
  Fill(mem_, 5000);
  MigrateToDevice();
  ExpectKernelReads(5000, "before the remap");
  ASSERT_EQ(munmap(mem_, bytes_), 0);
  void* again = mmap(mem_, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(again, MAP_FAILED);
  if (again != mem_) {
    mem_ = static_cast<cl_int*>(again);
    GTEST_SKIP() << "mmap did not return the old address (hint not honoured)";
  }
  Fill(mem_, 300000);
  ExpectKernelReads(300000, "after munmap + mmap at the hinted address");
}

TEST_F(Hmm, DiscardedWithMadvDontneed) {
  // MADV_DONTNEED drops the pages: the next read of private anonymous memory is zeros.
  Fill(mem_, 6000);
  MigrateToDevice();
  ExpectKernelReads(6000, "before the discard");
  ASSERT_EQ(madvise(mem_, bytes_, MADV_DONTNEED), 0);
  ExpectKernelReads(0, "after MADV_DONTNEED", /*zeros=*/true);
  Fill(mem_, 700000);
  ExpectKernelReads(700000, "after refilling discarded pages");
}

TEST_F(Hmm, RemappedRepeatedly) {
  for (cl_int round = 0; round < 4; ++round) {
    Fill(mem_, round * 10000);
    if (round % 2 == 0) MigrateToDevice();
    ExpectKernelReads(round * 10000, "round before remap");
    Remap();
  }
}

}  // namespace
}  // namespace cltest

namespace cltest {
namespace {

// The dynamic linker keeps its data for dlopen'ed libraries (link maps, scope lists) in the
// program's heap, where any heap array may share a page or a migration block with it. Once
// those pages are on the device, hetmm's own service threads (userfaultfd handler, fault
// server) must still be able to bind a function lazily: if they fault on the page they are the
// ones to serve, the process hangs. This moves the pages under the ICD's link maps to the device
// and then drives the threads through paths they may not have taken yet (a kernel fault, unmap
// events); in a child under a watchdog, since the failure mode is a hang.
class HmmLoaderData : public Hmm {
 protected:
  void Body() {
    std::vector<const void*> pages;
    for (const char* lib : {"libhetmm_opencl.so.0", "libhetmm.so.0", "libOpenCL.so.1"}) {
      void* h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);  // glibc: the handle is the link map
      if (h == nullptr) continue;
      pages.push_back(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(h) &
                                                    ~std::uintptr_t{page_ - 1}));
      dlclose(h);
    }
    ASSERT_FALSE(pages.empty());
    std::vector<size_t> sizes(pages.size(), page_);
    Event e;
    ASSERT_OK(clEnqueueSVMMigrateMem(queue_, static_cast<cl_uint>(pages.size()), pages.data(),
                                     sizes.data(), 0, 0, nullptr, e.out()));
    ASSERT_OK(clWaitForEvents(1, e.ptr()));
    // A kernel reading the pages (so they are device-resident even without the prefetch).
    for (const void* p : pages) {
      ASSERT_OK(clSetKernelArgSVMPointer(copy_, 0, p));
      ASSERT_OK(clSetKernelArg(copy_, 1, sizeof(cl_mem), out_.ptr()));
      ASSERT_CL(CL_COMPLETE, Run1D(copy_, 16));
    }
    // New paths for the service threads: a faulting kernel, then unmap events.
    void* none = mmap(nullptr, page_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(none, MAP_FAILED);
    ASSERT_OK(clSetKernelArgSVMPointer(copy_, 0, none));
    EXPECT_LT(Run1D(copy_, 16), 0);
    munmap(none, page_);
    Fill(mem_, 100);
    MigrateToDevice();
    ExpectKernelReads(100, "before the remap");
    Remap();
    Fill(mem_, 200);
    ExpectKernelReads(200, "after the remap");
  }
};

TEST_F(HmmLoaderData, ServiceThreadsDoNotHangOnDeviceResidentLoaderData) {
  CLTEST_IN_CHILD(20, Body());
}

}  // namespace
}  // namespace cltest
