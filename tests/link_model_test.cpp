// The link model (LinkProfile): modeled time for a small trace, computed by hand.
#include "test_support.hpp"

#include <cmath>

namespace hetmm::test {
namespace {

class LinkModel : public Tracked {};

TEST_P(LinkModel, SmallTraceMatchesHandComputedTime) {
  Options o = options();
  o.workers = 1;
  o.policy = PolicyProfile::in_place;  // the trace's in-place accesses stay in place
  o.link = LinkProfile{1.0, 10.0, 20.0, 10.0};  // 1 GB/s, 10 us, 20 us per batch, 10 GB/s
  Runtime rt(o);
  auto& dev = rt.device(0);
  auto* local = static_cast<std::uint32_t*>(rt.allocate(16 * kPage));
  auto* remote = static_cast<std::uint32_t*>(rt.allocate(4 * kPage));
  for (std::size_t i = 0; i < 16 * kPage / 4; ++i) local[i] = 1;
  for (std::size_t i = 0; i < 4 * kPage / 4; ++i) remote[i] = 2;
  dev.migrate_to_device(local, 16 * kPage);  // one run of 16 pages: 1 transfer, 65536 bytes
  std::uint64_t sum = 0;
  std::uint64_t* out = &sum;
  // 16384 local loads of 4 bytes; 4096 in-place loads of 4 bytes after one fault batch (one
  // worker, fault-ahead maps the rest of the block).
  dev.launch(1, [local, remote, out](Thread& t) {
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < 16 * kPage / 4; ++i) s += t.load(local + i);
    for (std::size_t i = 0; i < 4 * kPage / 4; ++i) s += t.load(remote + i);
    *out = s;
  });
  dev.synchronize();
  dev.migrate_to_system(local, 16 * kPage);  // one run home: 1 transfer, 65536 bytes
  EXPECT_EQ(sum, 16u * kPage / 4 + 2 * (4 * kPage / 4));
  DeviceStats s = dev.stats();
  // One run each way; a transient userfaultfd EAGAIN (the process's memory map changing under
  // a busy machine) makes a run settle in two pieces, each a transfer of its own.
  EXPECT_GE(s.link_transfers, 2u);
  EXPECT_LE(s.link_transfers, 4u);
  EXPECT_EQ(s.link_bytes, 2 * 16 * kPage);
  EXPECT_EQ(s.local_bytes, 16 * kPage);
  EXPECT_EQ(s.in_place_bytes, 4 * kPage);
  ASSERT_EQ(s.fault_batches, 1u);
  // n x 10 us + 131072 B at 1 GB/s + 1 x 20 us + 16384 B at 1 GB/s + 65536 B at 10 GB/s
  double expect = static_cast<double>(s.link_transfers) * 10e-6 + 131072e-9 + 20e-6 + 16384e-9 +
                  6553.6e-9;
  EXPECT_NEAR(s.modeled_seconds, expect, 1e-12);
  rt.deallocate(local);
  rt.deallocate(remote);
}

TEST_P(LinkModel, NoneCountsNothingAndBadProfilesAreRefused) {
  Runtime rt(options());
  Mapping m(4 * kPage);
  rt.device(0).migrate_to_device(m.get(), m.size());
  EXPECT_EQ(rt.device(0).stats().modeled_seconds, 0.0);
  Options bad = options();
  bad.link.bandwidth_gbs = -1;
  EXPECT_EQ(error_of([&] { Runtime r(bad); }), Errc::invalid_argument);
  bad.link.bandwidth_gbs = std::nan("");
  EXPECT_EQ(error_of([&] { Runtime r(bad); }), Errc::invalid_argument);
}

HETMM_BOTH_MODES(LinkModel);

}  // namespace
}  // namespace hetmm::test
