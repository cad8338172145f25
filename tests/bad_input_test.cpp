// Bad input over every public entry point. Each case checks the typed error docs/API.md
// ("Errors") defines, that the message names the address and the length (as the library
// prints them: "%p" and "N bytes", the failing page as "0x%lx"), and that a failed call
// changes no byte of process memory and no output buffer.
#include "test_support.hpp"

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace hetmm::test {
namespace {

// ---- helpers ---------------------------------------------------------------------------------

std::string hex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}
std::string page_hex(const void* p) {  // the failing page, as page_reason prints it
  char buf[32];
  std::snprintf(buf, sizeof buf, "page 0x%lx",
                static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p) & ~(kPage - 1)));
  return buf;
}

// What a Device operation's message must name: the device, the address and the length.
std::vector<std::string> names(const void* addr, std::size_t len, std::size_t device = 0) {
  return {"device " + std::to_string(device) + ": ", hex(addr), std::to_string(len) + " bytes"};
}

// Runs f: passes when it throws hetmm::Error with `code` and a message holding every needle.
template <class F>
::testing::AssertionResult raises(Errc code, const std::vector<std::string>& needles, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    std::string m = e.what();
    if (e.code() != code)
      return ::testing::AssertionFailure()
             << "got " << to_string(e.code()) << ", want " << to_string(code) << ": " << m;
    for (const auto& n : needles)
      if (m.find(n) == std::string::npos)
        return ::testing::AssertionFailure() << "the message lacks \"" << n << "\": " << m;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not a hetmm::Error: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "not a std::exception";
  }
  return ::testing::AssertionFailure() << "no error, want " << to_string(code);
}
template <class F>
::testing::AssertionResult raises(Errc code, F&& f) {
  return raises(code, {}, static_cast<F&&>(f));
}

std::byte* at(std::uintptr_t a) { return reinterpret_cast<std::byte*>(a); }
std::uintptr_t addr_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

bool all_bytes(const void* p, std::size_t len, std::byte b) {
  auto* q = static_cast<const std::byte*>(p);
  for (std::size_t i = 0; i < len; ++i)
    if (q[i] != b) return false;
  return true;
}

// Below vm.mmap_min_addr nothing can ever be mapped: a hole no allocation can fill.
std::byte* const kNeverMapped = at(0x2000);

// `pages` pages at a fixed low address, mapped then unmapped: memory the program freed. The
// kernel hands out addresses top-down, far above, so nothing refills the range meanwhile (a
// freed range up there could be reused by the very staging buffer of the call under test).
std::byte* freed_low_range(std::uintptr_t at, std::size_t pages, std::uint32_t seed) {
  void* want = reinterpret_cast<void*>(at);
  void* p = ::mmap(want, pages * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p != want) {
    if (p != MAP_FAILED) ::munmap(p, pages * kPage);
    return nullptr;
  }
  fill_pattern(p, pages * kPage, seed);
  return static_cast<std::byte*>(p);
}

int memfd(std::size_t len) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "hetmm-bad-input", 0));
  if (fd >= 0 && ftruncate(fd, static_cast<off_t>(len)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Every tracking mode; named so that --gtest_filter='BadInput*' selects these too
// (HETMM_BOTH_MODES would prefix the names with "Modes/").
class BadInput : public Tracked {};
INSTANTIATE_TEST_SUITE_P(BadInput, BadInput,
                         ::testing::Values(Tracking::userfaultfd, Tracking::mprotect),
                         tracking_name);

// ---- Runtime(options), device(i) -------------------------------------------------------------

TEST(BadInputRuntime, OptionsOutOfRange) {
  auto with = [](auto set) {
    Options o;
    o.workers = 1;
    o.device_memory = 4u << 20;
    set(o);
    return o;
  };
  EXPECT_TRUE(raises(Errc::invalid_argument, {"devices", "got 0"},
                     [&] { Runtime rt(with([](Options& o) { o.devices = 0; })); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"devices", "got 33"},
                     [&] { Runtime rt(with([](Options& o) { o.devices = 33; })); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"devices"},
                     [&] { Runtime rt(with([](Options& o) { o.devices = SIZE_MAX; })); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"device_memory", "4095"},
                     [&] { Runtime rt(with([](Options& o) { o.device_memory = 4095; })); }));
  // Beyond 2^32 frames of 4 KiB, and far beyond what the host could map for the frame lists.
  EXPECT_TRUE(raises(Errc::invalid_argument, {"device_memory"}, [&] {
    Runtime rt(with([](Options& o) { o.device_memory = SIZE_MAX & ~(kPage - 1); }));
  }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"device_memory"}, [&] {
    Runtime rt(with([](Options& o) { o.device_memory = (std::size_t{1} << 44) + kPage; }));
  }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"workers", std::to_string(UINT_MAX)},
                     [&] { Runtime rt(with([](Options& o) { o.workers = UINT_MAX; })); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"tracking"}, [&] {
    Runtime rt(with([](Options& o) { o.tracking = static_cast<Tracking>(7); }));
  }));
}

TEST(BadInputRuntime, OptionsAtTheirLimitsWork) {
  Options o;
  o.devices = 32;
  o.workers = 1;
  o.device_memory = 4u << 20;
  o.tracking = Tracking::mprotect;
  Runtime rt(o);
  EXPECT_EQ(rt.device_count(), 32u);
  Mapping m(2 * kPage);
  fill_pattern(m.get(), m.size(), 3);
  EXPECT_EQ(rt.device(31).migrate_to_device(m.get(), m.size()).pages, 2u);
  EXPECT_TRUE(rt.location(m.get()) == Location::device(31));
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 3));
}

TEST(BadInputRuntime, ZeroDeviceMemoryMapsInPlaceAndCannotMigrate) {
  Options o;
  o.workers = 1;
  o.device_memory = 0;
  Runtime rt(o);
  auto& dev = rt.device(0);
  EXPECT_EQ(dev.memory_capacity(), 0u);
  Mapping m(2 * kPage);
  fill_pattern(m.get(), m.size(), 4);
  std::vector<std::byte> out(m.size());
  dev.read(m.get(), out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 4));
  EXPECT_TRUE(raises(Errc::out_of_memory, names(m.get(), m.size()),
                     [&] { dev.migrate_to_device(m.get(), m.size()); }));
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 4));
}

TEST(BadInputRuntime, DeviceIndexOutOfRange) {
  Options o;
  o.devices = 2;
  o.workers = 1;
  o.device_memory = 4u << 20;
  Runtime rt(o);
  EXPECT_TRUE(
      raises(Errc::invalid_argument, {"no device 2", "there are 2"}, [&] { rt.device(2); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"no device " + std::to_string(SIZE_MAX)},
                     [&] { rt.device(SIZE_MAX); }));
  EXPECT_EQ(rt.device(1).index(), 1u);
}

TEST(BadInputRuntime, TooManyRuntimesIsBusyAndASlotFreesUp) {
  Options o;
  o.workers = 1;
  o.device_memory = 4u << 20;
  o.tracking = Tracking::mprotect;
  std::vector<std::unique_ptr<Runtime>> live;
  for (int i = 0; i < 16; ++i) live.push_back(std::make_unique<Runtime>(o));
  EXPECT_TRUE(raises(Errc::busy, {"at most 16"}, [&] { Runtime extra(o); }));
  // The runtimes that exist are unharmed by the refused one.
  Mapping m(kPage);
  fill_pattern(m.get(), kPage, 5);
  live.back()->device(0).migrate_to_device(m.get(), kPage);
  EXPECT_TRUE(check_pattern(m.get(), kPage, 5));
  live.pop_back();
  Runtime again(o);
  EXPECT_EQ(again.device(0).migrate_to_device(m.get(), kPage).pages, 1u);
  EXPECT_TRUE(check_pattern(m.get(), kPage, 5));
}

// ---- allocate, deallocate, location ----------------------------------------------------------

TEST_P(BadInput, AllocateZeroOrHuge) {
  Runtime rt(options());
  EXPECT_TRUE(raises(Errc::invalid_argument, {"allocate", "zero length"}, [&] { rt.allocate(0); }));
  for (std::size_t len : {SIZE_MAX, std::size_t{1} << 62, (std::size_t{1} << 46) + 1}) {
    EXPECT_TRUE(raises(Errc::invalid_argument, {"allocate", std::to_string(len) + " bytes"},
                       [&] { rt.allocate(len); }));
  }
  // The smallest allocation is a whole zeroed page.
  auto* p = static_cast<std::byte*>(rt.allocate(1));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kPage, 0u);
  EXPECT_TRUE(all_bytes(p, kPage, std::byte{0}));
  rt.deallocate(p);
}

TEST_P(BadInput, DeallocateForeignOrTwice) {
  Runtime rt(options());
  Runtime other(options());
  rt.deallocate(nullptr);  // like free(nullptr): nothing to do
  auto* p = static_cast<std::byte*>(rt.allocate(4 * kPage));
  fill_pattern(p, 4 * kPage, 6);
  const std::vector<std::string> live = {"deallocate", "not a live allocation"};
  auto with = [&](const void* q) {
    auto v = live;
    v.push_back(hex(q));
    return v;
  };
  void* heap = std::malloc(64);
  EXPECT_TRUE(raises(Errc::invalid_argument, with(heap), [&] { rt.deallocate(heap); }));
  std::free(heap);
  int local = 0;
  EXPECT_TRUE(raises(Errc::invalid_argument, with(&local), [&] { rt.deallocate(&local); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, with(p + kPage), [&] { rt.deallocate(p + kPage); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, with(p + 1), [&] { rt.deallocate(p + 1); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, with(p), [&] { other.deallocate(p); }));
  // Refused calls left the allocation alone: still mapped, same data, still p's to free.
  EXPECT_TRUE(check_pattern(p, 4 * kPage, 6));
  rt.device(0).migrate_to_device(p, 4 * kPage);
  rt.deallocate(p);
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  EXPECT_TRUE(raises(Errc::invalid_argument, with(p), [&] { rt.deallocate(p); }));
  // Another runtime's allocation is that runtime's to free.
  void* q = other.allocate(kPage);
  EXPECT_TRUE(raises(Errc::invalid_argument, with(q), [&] { rt.deallocate(q); }));
  other.deallocate(q);
}

TEST_P(BadInput, LocationOfNullHoleAndNonUserAddresses) {
  Runtime rt(options());
  EXPECT_TRUE(raises(Errc::invalid_argument, {"location", hex(nullptr), "null address"},
                     [&] { rt.location(nullptr); }));
  // A hole holds no device data: it is reported as system memory, not an error.
  EXPECT_TRUE(rt.location(kNeverMapped) == Location::system());
  Mapping m(kPage);
  fill_and_migrate(rt.device(0), m, 7);
  ASSERT_TRUE(rt.location(m.get()) == Location::device(0));
  // Beyond the 57-bit address space: refused, not aliased onto the page above.
  std::byte* alias = at(addr_of(m.get()) | (std::uintptr_t{1} << 60));
  EXPECT_TRUE(
      raises(Errc::invalid_argument, {"location", hex(alias)}, [&] { rt.location(alias); }));
  EXPECT_TRUE(rt.location(m.get()) == Location::device(0));
  EXPECT_TRUE(check_pattern(m.get(), kPage, 7));
}

// ---- Device operations: malformed arguments --------------------------------------------------

// The five range operations, each on [addr, addr+len) with a buffer that is large enough.
struct RangeOp {
  const char* name;
  std::function<void(Device&, std::byte*, std::size_t)> run;
};
std::vector<RangeOp> range_ops(std::vector<std::byte>& buf) {
  return {
      {"read", [&buf](Device& d, std::byte* a, std::size_t n) { d.read(a, buf.data(), n); }},
      {"write", [&buf](Device& d, std::byte* a, std::size_t n) { d.write(a, buf.data(), n); }},
      {"migrate_to_device",
       [](Device& d, std::byte* a, std::size_t n) { d.migrate_to_device(a, n); }},
      {"migrate_to_system",
       [](Device& d, std::byte* a, std::size_t n) { d.migrate_to_system(a, n); }},
      {"snapshot", [](Device& d, std::byte* a, std::size_t n) { d.snapshot(a, n); }},
  };
}

TEST_P(BadInput, NullZeroLengthAndWrappingRanges) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  Mapping m(2 * kPage);
  fill_pattern(m.get(), m.size(), 8);
  std::vector<std::byte> buf(2 * kPage, std::byte{0x5a});
  const std::uintptr_t top = ~std::uintptr_t{0}, limit = std::uintptr_t{1} << 57;
  struct Case {
    std::byte* addr;
    std::size_t len;
    const char* why;
  };
  const Case cases[] = {
      {nullptr, 16, "null address"},
      {nullptr, 0, "null address"},
      {m.get(), 0, "zero length"},
      {m.get() + 3, 0, "zero length"},
      {at(top - 8), 16, "range wraps"},  // addr + len wraps
      {at(top - 10), 5, "range wraps"},  // the page holding the end wraps
      {m.get(), SIZE_MAX, "range wraps"},
      {at(limit), 1, "beyond the user address space"},
      {at(limit - kPage), 2 * kPage, "beyond the user address space"},
      {at(limit - 1), 2, "beyond the user address space"},
      // Would alias m's pages in the mirror's 57-bit tables.
      {at(addr_of(m.get()) | (std::uintptr_t{1} << 60)), kPage, "beyond the user address space"},
  };
  for (const auto& op : range_ops(buf)) {
    for (const Case& c : cases) {
      auto want = names(c.addr, c.len);
      want.push_back(c.why);
      want.push_back(op.name);
      EXPECT_TRUE(raises(Errc::invalid_argument, want, [&] { op.run(dev, c.addr, c.len); }))
          << op.name << " " << c.why;
    }
  }
  EXPECT_TRUE(raises(Errc::invalid_argument, {"device 0: ", "null output buffer", hex(m.get())},
                     [&] { dev.read(m.get(), nullptr, 16); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"device 0: ", "null input buffer", hex(m.get())},
                     [&] { dev.write(m.get(), nullptr, 16); }));
  // Nothing moved and nothing changed.
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 8));
  EXPECT_TRUE(all_bytes(buf.data(), buf.size(), std::byte{0x5a}));
  // Up to the end of the 57-bit space is well formed: there it is simply a hole.
  std::byte* last = at(limit - kPage);
  EXPECT_TRUE(raises(Errc::fault, names(last, kPage), [&] { dev.read(last, buf.data(), kPage); }));
  EXPECT_TRUE(raises(Errc::fault, names(last, kPage), [&] { dev.migrate_to_device(last, kPage); }));
}

TEST_P(BadInput, HugeLengthsAreTypedErrors) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  Mapping m(kPage);
  fill_pattern(m.get(), kPage, 9);
  std::vector<std::byte> buf(kPage, std::byte{0x5a});
  const std::size_t huge = std::size_t{1} << 50;  // no host can stage this
  EXPECT_TRUE(raises(Errc::out_of_memory, names(m.get(), huge),
                     [&] { dev.read(m.get(), buf.data(), huge); }));
  EXPECT_TRUE(raises(Errc::out_of_memory, names(m.get(), huge),
                     [&] { dev.write(m.get(), buf.data(), huge); }));
  EXPECT_TRUE(
      raises(Errc::out_of_memory, names(m.get(), huge), [&] { dev.snapshot(m.get(), huge); }));
  // migrate_to_device validates first: the hole after the mapping is a fault, nothing moved.
  EXPECT_TRUE(
      raises(Errc::fault, names(m.get(), huge), [&] { dev.migrate_to_device(m.get(), huge); }));
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(all_bytes(buf.data(), buf.size(), std::byte{0x5a}));
  EXPECT_TRUE(check_pattern(m.get(), kPage, 9));
}

// ---- unaligned -------------------------------------------------------------------------------

TEST_P(BadInput, UnalignedAddressesWorkOnEveryOperation) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  Mapping m(4 * kPage);
  fill_pattern(m.get(), m.size(), 10);
  std::vector<std::byte> expect(m.get(), m.get() + m.size());
  // A read and a write that straddle page boundaries at odd addresses.
  std::vector<std::byte> out(2 * kPage + 3);
  EXPECT_EQ(dev.read(m.get() + kPage - 1, out.data(), out.size()).pages, 4u);
  EXPECT_EQ(std::memcmp(out.data(), m.get() + kPage - 1, out.size()), 0);
  const char msg[] = "odd bytes";
  dev.write(m.get() + 2 * kPage - 5, msg, sizeof msg);
  std::memcpy(expect.data() + 2 * kPage - 5, msg, sizeof msg);
  EXPECT_EQ(std::memcmp(m.get(), expect.data(), m.size()), 0);
  // One byte in the middle of a page migrates that page, and only it.
  EXPECT_EQ(dev.migrate_to_device(m.get() + kPage + 7, 1).pages, 1u);
  EXPECT_EQ(dev.memory_used(), kPage);
  EXPECT_TRUE(rt.location(m.get() + kPage) == Location::device(0));
  EXPECT_TRUE(rt.location(m.get()) == Location::system());
  // Two bytes across a boundary cover two pages.
  auto snap = dev.snapshot(m.get() + 2 * kPage - 1, 2);
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_TRUE(snap[0].location == Location::device(0));
  EXPECT_TRUE(snap[1].location == Location::system());
  EXPECT_EQ(dev.migrate_to_device(m.get() + 3 * kPage - 1, 2).pages, 2u);
  EXPECT_EQ(dev.memory_used(), 3 * kPage);
  // Device-resident data read and written at odd addresses.
  std::vector<std::byte> mid(kPage + 1);
  dev.read(m.get() + kPage + 3, mid.data(), mid.size());
  EXPECT_EQ(std::memcmp(mid.data(), expect.data() + kPage + 3, mid.size()), 0);
  const char again[] = "on the device";
  dev.write(m.get() + 3 * kPage - 2, again, sizeof again);
  std::memcpy(expect.data() + 3 * kPage - 2, again, sizeof again);
  EXPECT_EQ(dev.migrate_to_system(m.get() + kPage + 1, 3 * kPage - 1).pages, 3u);
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_EQ(std::memcmp(m.get(), expect.data(), m.size()), 0);
}

// ---- unmapped, freed ------------------------------------------------------------------------

// Read, write and migrate_to_device of [addr, addr+len) fail with fault; the failing page is
// named; no output byte is written. migrate_to_system and snapshot never fault: a hole holds
// none of the device's pages, and a snapshot reports it as an error page.
void expect_hole(Runtime& rt, std::byte* addr, std::size_t len, std::byte* bad_page) {
  auto& dev = rt.device(0);
  std::size_t used = dev.memory_used();
  std::vector<std::byte> out(len, std::byte{0x77});
  auto want = names(addr, len);
  want.push_back(page_hex(bad_page));
  EXPECT_TRUE(raises(Errc::fault, want, [&] { dev.read(addr, out.data(), len); }));
  EXPECT_TRUE(all_bytes(out.data(), out.size(), std::byte{0x77})) << "a failed read wrote out";
  EXPECT_TRUE(raises(Errc::fault, want, [&] { dev.write(addr, out.data(), len); }));
  EXPECT_TRUE(raises(Errc::fault, want, [&] { dev.migrate_to_device(addr, len); }));
  EXPECT_EQ(dev.memory_used(), used);
  EXPECT_EQ(dev.migrate_to_system(addr, len).pages, 0u);
  auto snap = dev.snapshot(addr, len);
  std::size_t bad = (addr_of(bad_page) - (addr_of(addr) & ~(kPage - 1))) / kPage;
  ASSERT_LT(bad, snap.size());
  EXPECT_TRUE(snap[bad].error && !snap[bad].readable);
}

TEST_P(BadInput, UnmappedAddresses) {
  Runtime rt(options());
  expect_hole(rt, kNeverMapped, 2 * kPage, kNeverMapped);
  expect_hole(rt, kNeverMapped + 13, 1, kNeverMapped);
  // The device keeps working.
  Mapping m(kPage);
  fill_pattern(m.get(), kPage, 11);
  std::vector<std::byte> out(kPage);
  rt.device(0).read(m.get(), out.data(), kPage);
  EXPECT_TRUE(check_pattern(out.data(), kPage, 11));
}

TEST_P(BadInput, HalfMappedHalfHoleChangesNothing) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  std::byte* h = low_hole_mapping();  // pages 0 and 2 mapped, page 1 a hole
  ASSERT_NE(h, nullptr);
  fill_pattern(h, kPage, 12);
  fill_pattern(h + 2 * kPage, kPage, 13);
  expect_hole(rt, h, 3 * kPage, h + kPage);
  expect_hole(rt, h + kPage - 3, 6, h + kPage);  // unaligned, two bytes on each side
  // The write changed neither mapped page, the migration moved neither.
  EXPECT_TRUE(check_pattern(h, kPage, 12));
  EXPECT_TRUE(check_pattern(h + 2 * kPage, kPage, 13));
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(rt.location(h) == Location::system());
  auto snap = dev.snapshot(h, 3 * kPage);
  EXPECT_TRUE(!snap[0].error && snap[1].error && !snap[2].error);
  // Device-resident data before the hole: still exact after a failed read and write.
  dev.migrate_to_device(h, kPage);
  ASSERT_EQ(dev.memory_used(), kPage);
  std::vector<std::byte> in(2 * kPage, std::byte{0x11});
  EXPECT_TRUE(
      raises(Errc::fault, names(h, 2 * kPage), [&] { dev.write(h, in.data(), in.size()); }));
  EXPECT_TRUE(check_pattern(h, kPage, 12));
  munmap(h, 3 * kPage);
}

TEST_P(BadInput, MunmappedMemory) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  // Used by the device (mapped, then migrated), then unmapped by the program.
  std::byte* p = freed_low_range(0x20000000, 4, 14);
  ASSERT_NE(p, nullptr);
  std::vector<std::byte> out(4 * kPage);
  dev.read(p, out.data(), out.size());
  dev.migrate_to_device(p + 2 * kPage, 2 * kPage);
  ASSERT_EQ(dev.memory_used(), 2 * kPage);
  ASSERT_EQ(munmap(p, 4 * kPage), 0);
  EXPECT_EQ(wait_for_used(dev, 0), 0u);
  // No stale device mapping serves the freed range.
  expect_hole(rt, p, 4 * kPage, p);
  expect_hole(rt, p + 2 * kPage + 1, kPage, p + 2 * kPage);
  EXPECT_TRUE(rt.location(p + 2 * kPage) == Location::system());
}

TEST_P(BadInput, DeallocatedMemory) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  auto* p = static_cast<std::byte*>(rt.allocate(4 * kPage));
  fill_pattern(p, 4 * kPage, 15);
  dev.migrate_to_device(p, 4 * kPage);
  rt.deallocate(p);
  EXPECT_EQ(dev.memory_used(), 0u);
  // Keep the range from being reused (by the staging buffer of the very call under test, say)
  // with an inaccessible reservation, as a guarded allocator would: still nothing to access.
  void* guard =
      mmap(p, 4 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_EQ(guard, static_cast<void*>(p));
  expect_hole(rt, p, 4 * kPage, p);
  expect_hole(rt, p + kPage + 5, 10, p + kPage);
  munmap(guard, 4 * kPage);
}

// ---- foreign memory: shared anonymous, memfd -------------------------------------------------

TEST_P(BadInput, SharedAndFileMemoryIsReadWritableButDoesNotMigrate) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  const std::size_t len = 3 * kPage;
  int fd = memfd(len);
  ASSERT_GE(fd, 0);
  Mapping shared_anon(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  Mapping shared_file(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  Mapping private_file(len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
  ASSERT_NE(shared_anon.get(), nullptr);
  ASSERT_NE(shared_file.get(), nullptr);
  ASSERT_NE(private_file.get(), nullptr);
  std::uint32_t seed = 16;
  for (Mapping* m : {&shared_anon, &shared_file, &private_file}) {
    SCOPED_TRACE(m == &shared_anon   ? "MAP_SHARED anonymous"
                 : m == &shared_file ? "MAP_SHARED memfd"
                                     : "MAP_PRIVATE memfd");
    std::vector<std::byte> in(len - 3);
    fill_pattern(in.data(), in.size(), ++seed);
    dev.write(m->get() + 3, in.data(), in.size());  // unaligned, across pages
    EXPECT_EQ(std::memcmp(m->get() + 3, in.data(), in.size()), 0);
    std::vector<std::byte> out(in.size());
    dev.read(m->get() + 3, out.data(), out.size());
    EXPECT_EQ(out, in);
    auto want = names(m->get() + 1, len - 1);
    want.push_back(page_hex(m->get()));
    want.push_back("nothing that can migrate");
    EXPECT_TRUE(
        raises(Errc::not_found, want, [&] { dev.migrate_to_device(m->get() + 1, len - 1); }));
    EXPECT_EQ(dev.memory_used(), 0u);
    EXPECT_EQ(dev.migrate_to_system(m->get(), len).pages, 0u);
    EXPECT_TRUE(rt.location(m->get()) == Location::system());
    EXPECT_EQ(std::memcmp(m->get() + 3, in.data(), in.size()), 0);
  }
  // The file saw the writes through the shared mapping (the private one's stayed private).
  std::vector<std::byte> back(len - 3), expect(len - 3);
  ASSERT_EQ(pread(fd, back.data(), back.size(), 3), static_cast<ssize_t>(back.size()));
  fill_pattern(expect.data(), expect.size(), 18);
  EXPECT_EQ(back, expect);
  close(fd);
}

// A read's fault round maps the neighbours of the range on the device (fault-ahead), and the
// call's own staging buffer is often one of them. Once freed, the kernel hands its addresses to
// the next mapping: no device mapping of the old one may survive, or a write into a read-only
// mapping there gets past the permission check and fails as a `fault` instead.
TEST_P(BadInput, FreedStagingMemoryLeavesNoDeviceMappingBehind) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  int fd = memfd(8 * kPage);
  ASSERT_GE(fd, 0);
  for (std::size_t pages = 1; pages <= 4; ++pages) {
    const std::size_t len = pages * kPage;
    Mapping m(len);
    fill_pattern(m.get(), len, 27);
    std::vector<std::byte> out(len);
    dev.read(m.get(), out.data(), len);
    Mapping ro(len, PROT_READ, MAP_SHARED, fd);
    ASSERT_NE(ro.get(), nullptr);
    EXPECT_TRUE(raises(Errc::permission, names(ro.get(), len),
                       [&] { dev.write(ro.get(), out.data(), len); }))
        << pages << " pages";
    Mapping none(len, PROT_NONE);
    EXPECT_TRUE(
        raises(Errc::fault, names(none.get(), len), [&] { dev.read(none.get(), out.data(), len); }))
        << pages << " pages";
  }
  std::vector<std::byte> file(8 * kPage);
  ASSERT_EQ(pread(fd, file.data(), file.size(), 0), static_cast<ssize_t>(file.size()));
  EXPECT_TRUE(all_bytes(file.data(), file.size(), std::byte{0}));
  close(fd);
}

// ---- read-only, PROT_NONE ---------------------------------------------------------------------

TEST_P(BadInput, ReadOnlyMemory) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  Mapping m(4 * kPage);
  fill_pattern(m.get(), m.size(), 20);
  ASSERT_EQ(mprotect(m.get() + 2 * kPage, 2 * kPage, PROT_READ), 0);
  std::byte* ro = m.get() + 2 * kPage;
  std::vector<std::byte> out(2 * kPage);
  dev.read(ro + 1, out.data(), out.size() - 1);
  EXPECT_EQ(std::memcmp(out.data(), ro + 1, out.size() - 1), 0);
  // A write into it, and a write that starts in writable memory and runs into it: permission,
  // and neither part of the range changed.
  std::vector<std::byte> in(3 * kPage, std::byte{0x33});
  auto want = names(ro + 5, 8);
  want.push_back(page_hex(ro));
  want.push_back("read-only");
  EXPECT_TRUE(raises(Errc::permission, want, [&] { dev.write(ro + 5, in.data(), 8); }));
  EXPECT_TRUE(raises(Errc::permission, names(m.get() + kPage, 3 * kPage),
                     [&] { dev.write(m.get() + kPage, in.data(), 3 * kPage); }));
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 20));
  // Private read-only memory migrates, and stays read-only on the device.
  EXPECT_EQ(dev.migrate_to_device(ro, 2 * kPage).pages, 2u);
  EXPECT_EQ(dev.memory_used(), 2 * kPage);
  auto snap = dev.snapshot(ro, 2 * kPage);
  EXPECT_TRUE(snap[0].readable && !snap[0].writable && snap[0].location == Location::device(0));
  EXPECT_TRUE(
      raises(Errc::permission, names(ro + kPage, 4), [&] { dev.write(ro + kPage, in.data(), 4); }));
  dev.launch(1, [p = reinterpret_cast<std::uint32_t*>(ro)](Thread& t) { t.store(p, 1u); });
  EXPECT_TRUE(raises(Errc::permission, {"store", "4 bytes"}, [&] { dev.synchronize(); }));
  dev.read(ro, out.data(), out.size());
  EXPECT_TRUE(check_pattern(m.get(), 2 * kPage, 20));
  EXPECT_EQ(std::memcmp(out.data(), ro, out.size()), 0);  // the CPU reads bring it home
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 20));
  // A shared read-only file mapping: readable, not writable, not migratable.
  int fd = memfd(kPage);
  ASSERT_GE(fd, 0);
  Mapping file(kPage, PROT_READ, MAP_SHARED, fd);
  ASSERT_NE(file.get(), nullptr);
  EXPECT_TRUE(
      raises(Errc::permission, names(file.get(), 4), [&] { dev.write(file.get(), in.data(), 4); }));
  dev.read(file.get(), out.data(), kPage);
  EXPECT_TRUE(all_bytes(out.data(), kPage, std::byte{0}));
  EXPECT_TRUE(raises(Errc::not_found, names(file.get(), kPage),
                     [&] { dev.migrate_to_device(file.get(), kPage); }));
  close(fd);
}

TEST_P(BadInput, ProtNoneMemory) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  Mapping m(4 * kPage);
  fill_pattern(m.get(), m.size(), 21);
  ASSERT_EQ(mprotect(m.get() + 2 * kPage, kPage, PROT_NONE), 0);
  expect_hole(rt, m.get() + 2 * kPage, kPage, m.get() + 2 * kPage);
  // A range with a PROT_NONE page in the middle: nothing read, written or moved.
  expect_hole(rt, m.get() + 1, 4 * kPage - 2, m.get() + 2 * kPage);
  EXPECT_EQ(dev.memory_used(), 0u);
  ASSERT_EQ(mprotect(m.get() + 2 * kPage, kPage, PROT_READ | PROT_WRITE), 0);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 21));
  // Made PROT_NONE while on the device: device accesses fault, and it still comes home.
  dev.migrate_to_device(m.get(), 4 * kPage);
  ASSERT_EQ(mprotect(m.get() + kPage, kPage, PROT_NONE), 0);
  std::vector<std::byte> out(kPage, std::byte{0x77});
  EXPECT_TRUE(raises(Errc::fault, names(m.get() + kPage, kPage),
                     [&] { dev.read(m.get() + kPage, out.data(), kPage); }));
  EXPECT_TRUE(all_bytes(out.data(), kPage, std::byte{0x77}));
  EXPECT_EQ(dev.migrate_to_system(m.get(), 4 * kPage).pages, 4u);
  EXPECT_EQ(dev.memory_used(), 0u);
  ASSERT_EQ(mprotect(m.get() + kPage, kPage, PROT_READ | PROT_WRITE), 0);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 21));
}

// ---- release, kernels --------------------------------------------------------------------------

TEST_P(BadInput, UseAfterRelease) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  dev.release();  // nothing there: fine
  Mapping m(8 * kPage);
  fill_and_migrate(dev, m, 22);
  dev.release();
  dev.release();
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(rt.location(m.get()) == Location::system());
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 22));
  // Everything works again afterwards, bad input included.
  EXPECT_EQ(dev.migrate_to_device(m.get(), m.size()).pages, 8u);
  std::vector<std::byte> out(m.size());
  dev.read(m.get(), out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 22));
  dev.launch(8, [p = m.as<std::uint32_t>()](Thread& t) {
    t.atomic_add(p + t.id() * (kPage / 4), std::uint32_t{1});
  });
  dev.synchronize();
  EXPECT_TRUE(
      raises(Errc::fault, names(kNeverMapped, 8), [&] { dev.read(kNeverMapped, out.data(), 8); }));
  dev.release();
  std::vector<std::byte> expect(m.size());
  fill_pattern(expect.data(), expect.size(), 22);
  for (std::size_t i = 0; i < 8; ++i)
    reinterpret_cast<std::uint32_t*>(expect.data())[i * kPage / 4] += 1;
  EXPECT_EQ(std::memcmp(m.get(), expect.data(), m.size()), 0);
  EXPECT_GE(dev.stats().kernels, 1u);
}

TEST_P(BadInput, ApiCallsFromInsideAKernelAreRefused) {
  Runtime rt(options());
  Runtime* r = &rt;
  Device* dev = &rt.device(0);
  Mapping m(2 * kPage);
  fill_pattern(m.get(), m.size(), 23);
  std::byte* p = m.get() + 1;
  const std::size_t n = 100;
  std::vector<std::byte> buf(n);
  std::vector<std::byte>* scratch = &buf;
  void* live = rt.allocate(kPage);
  const std::vector<std::string> inside = {"not callable from inside a kernel"};
  auto with = [&](std::vector<std::string> v) {
    v.push_back(inside[0]);
    return v;
  };
  struct Call {
    const char* name;
    std::function<void()> call;
    std::vector<std::string> needles;
  };
  std::vector<Call> calls = {
      {"read", [=] { dev->read(p, scratch->data(), n); }, with(names(p, n))},
      {"write", [=] { dev->write(p, scratch->data(), n); }, with(names(p, n))},
      {"migrate_to_device", [=] { dev->migrate_to_device(p, n); }, with(names(p, n))},
      {"migrate_to_system", [=] { dev->migrate_to_system(p, n); }, with(names(p, n))},
      {"snapshot", [=] { dev->snapshot(p, n); }, with(names(p, n))},
      {"launch", [=] { dev->launch(1, [](Thread&) {}); }, with({"launch"})},
      {"synchronize", [=] { dev->synchronize(); }, with({"synchronize"})},
      {"release", [=] { dev->release(); }, with({"release"})},
      {"allocate", [=] { r->allocate(kPage); }, with({"allocate", "4096 bytes"})},
      {"deallocate", [=] { r->deallocate(live); }, with({"deallocate", hex(live)})},
      {"location", [=] { r->location(p); }, with({"location", hex(p)})},
  };
  for (const Call& c : calls) {
    dev->launch(1, [&c](Thread&) { c.call(); });
    EXPECT_TRUE(raises(Errc::invalid_argument, c.needles, [&] { dev->synchronize(); })) << c.name;
  }
  // Queries are fine from a kernel.
  std::atomic<std::size_t> seen{0};
  dev->launch(1, [&](Thread&) {
    seen = dev->stats().kernels + dev->memory_capacity() + dev->memory_used() + r->device_count() +
           r->device(0).index();
  });
  dev->synchronize();
  EXPECT_GT(seen.load(), 0u);
  // Nothing happened: the allocation is live, the data home and exact, the device usable.
  EXPECT_EQ(dev->memory_used(), 0u);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 23));
  rt.deallocate(live);
  EXPECT_EQ(dev->migrate_to_device(m.get(), m.size()).pages, 2u);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 23));
}

TEST_P(BadInput, KernelsThatThrowZeroThreadsAndThreadMisuse) {
  Runtime rt(options());
  auto& dev = rt.device(0);
  // What a kernel throws comes back as it is, once.
  dev.launch(64, [](Thread& t) {
    if (t.id() == 3) throw 42;
  });
  try {
    dev.synchronize();
    ADD_FAILURE() << "the kernel's int was not rethrown";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
  dev.synchronize();
  dev.launch(1, [](Thread&) { throw Error(Errc::busy, "the kernel's own"); });
  EXPECT_TRUE(raises(Errc::busy, {"the kernel's own"}, [&] { dev.synchronize(); }));
  dev.launch(1, [](Thread&) { throw std::logic_error("logic"); });
  EXPECT_THROW(dev.synchronize(), std::logic_error);
  dev.launch(2, std::function<void(Thread&)>());  // an empty kernel: calling it throws
  EXPECT_THROW(dev.synchronize(), std::bad_function_call);
  // Zero threads: nothing runs, nothing to report.
  std::atomic<int> ran{0};
  std::uint64_t kernels = dev.stats().kernels;
  dev.launch(0, [&ran](Thread&) { ++ran; });
  dev.synchronize();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(dev.stats().kernels, kernels);
  // A Thread used outside a kernel.
  std::uint64_t x = 0;
  Thread outside(nullptr, 0, 1);
  EXPECT_TRUE(raises(Errc::invalid_argument, {"outside a kernel"}, [&] { outside.load(&x); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"outside a kernel"},
                     [&] { outside.store(&x, std::uint64_t{1}); }));
  EXPECT_TRUE(raises(Errc::invalid_argument, {"outside a kernel"},
                     [&] { outside.atomic_add(&x, std::uint64_t{1}); }));
  EXPECT_EQ(x, 0u);
  // atomic_add at an address not aligned to its size.
  alignas(8) std::byte words[16] = {};
  auto* odd = reinterpret_cast<std::uint32_t*>(words + 1);
  dev.launch(1, [odd](Thread& t) { t.atomic_add(odd, std::uint32_t{1}); });
  EXPECT_TRUE(raises(Errc::invalid_argument, {"atomic_add", "4 bytes", "not aligned"},
                     [&] { dev.synchronize(); }));
  EXPECT_TRUE(all_bytes(words, sizeof words, std::byte{0}));
  // Kernel accesses to a hole, PROT_NONE and null: fault at synchronize, the device usable.
  Mapping none(kPage, PROT_NONE);
  for (const void* bad :
       {static_cast<const void*>(kNeverMapped), static_cast<const void*>(none.get()),
        static_cast<const void*>(nullptr)}) {
    dev.launch(4, [bad](Thread& t) { t.load(static_cast<const std::uint32_t*>(bad) + t.id()); });
    EXPECT_TRUE(raises(Errc::fault, {"load", "4 bytes"}, [&] { dev.synchronize(); })) << bad;
  }
  std::uint32_t y = 1;
  dev.launch(1, [&y](Thread& t) { t.store(&y, t.load(&y) + 1); });
  dev.synchronize();
  EXPECT_EQ(y, 2u);
}

// ---- several runtimes ------------------------------------------------------------------------

TEST_P(BadInput, CallsAfterAnotherRuntimeWasDestroyed) {
  auto first = std::make_unique<Runtime>(options());
  Runtime second(options());
  Mapping a(4 * kPage), b(4 * kPage);
  fill_and_migrate(first->device(0), a, 24);
  fill_and_migrate(second.device(0), b, 25);
  void* mine = first->allocate(kPage);
  first.reset();  // every page of the first runtime home
  EXPECT_TRUE(check_pattern(a.get(), a.size(), 24));
  // The second runtime is unaffected: its pages, its CPU fault-back, its errors.
  auto& dev = second.device(0);
  EXPECT_EQ(dev.memory_used(), 4 * kPage);
  std::vector<std::byte> out(4 * kPage);
  dev.read(b.get(), out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 25));
  EXPECT_TRUE(check_pattern(b.get(), kPage, 25));  // a CPU touch comes home
  EXPECT_EQ(dev.migrate_to_device(a.get(), a.size()).pages, 4u);
  dev.launch(4, [p = a.as<std::uint32_t>()](Thread& t) { t.load(p + t.id() * kPage / 4); });
  dev.synchronize();
  EXPECT_TRUE(check_pattern(a.get(), a.size(), 24));
  EXPECT_TRUE(raises(Errc::invalid_argument, {hex(mine)}, [&] { second.deallocate(mine); }));
  EXPECT_TRUE(
      raises(Errc::fault, names(kNeverMapped, 4), [&] { dev.migrate_to_device(kNeverMapped, 4); }));
  munmap(mine, kPage);  // the first runtime's allocations outlive it (never deallocated)
  // And a runtime made afterwards works next to it.
  Runtime third(options());
  EXPECT_EQ(third.device(0).migrate_to_device(a.get(), a.size()).pages, 4u);
  EXPECT_TRUE(check_pattern(a.get(), a.size(), 24));
  EXPECT_TRUE(check_pattern(b.get(), b.size(), 25));
}

TEST_P(BadInput, PagesAnotherLiveRuntimeHoldsAreNeverLost) {
  // docs/API.md: runtimes "should not manage the same pages", and no error is defined for it.
  // What must hold regardless: a call either works on the exact data or fails with a typed
  // error, and no byte is lost.
  Runtime one(options()), two(options());
  Mapping m(4 * kPage);
  fill_and_migrate(one.device(0), m, 26);
  std::vector<std::byte> out(m.size(), std::byte{0x77});
  try {
    two.device(0).read(m.get(), out.data(), out.size());
    EXPECT_TRUE(check_pattern(out.data(), out.size(), 26));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::fault) << e.what();
    EXPECT_TRUE(all_bytes(out.data(), out.size(), std::byte{0x77}));
  }
  try {
    two.device(0).migrate_to_device(m.get(), m.size());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::fault) << e.what();
  }
  two.device(0).release();
  one.device(0).release();
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 26));
}

}  // namespace
}  // namespace hetmm::test
