// Layer opencl: includes every layer.
#include "opencl/report.hpp"

#include "hetmm/trace.hpp"

#include <fstream>
#include <utility>
#include <vector>

namespace hetmm::opencl {
namespace {

// DeviceStats::modeled_seconds under another link: the same formula (src/api/device.cpp).
double modeled(const DeviceStats& s, const LinkProfile& l) {
  auto over = [](double bytes, double gbs) { return gbs > 0 ? bytes / (gbs * 1e9) : 0.0; };
  return static_cast<double>(s.link_transfers) * l.latency_us * 1e-6 +
         over(static_cast<double>(s.link_bytes), l.bandwidth_gbs) +
         static_cast<double>(s.fault_batches) * l.fault_us * 1e-6 +
         over(static_cast<double>(s.in_place_bytes), l.bandwidth_gbs) +
         over(static_cast<double>(s.local_bytes), l.local_bandwidth_gbs) + s.throttle_seconds;
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

std::string memory_report(hetmm::Runtime& rt, const std::string& link_name) {
  std::string out = "hetmm OpenCL report (HETMM_REPORT): tracking " +
                    std::string(to_string(rt.tracking())) + ", link " + link_name + "\n";
  const std::pair<const char*, LinkProfile> links[] = {{"pcie4", LinkProfile::pcie4()},
                                                       {"pcie5", LinkProfile::pcie5()},
                                                       {"nvlink_c2c", LinkProfile::nvlink_c2c()}};
  for (std::size_t i = 0; i < rt.device_count(); ++i) {
    DeviceStats s = rt.device(i).stats();
    char buf[1024];
    std::snprintf(
        buf, sizeof buf,
        "device %zu: %llu kernels\n"
        "  device faults %llu in %llu batches; migrations %llu pages to the device, %llu home "
        "(%llu blocks remapped in, %llu out); evicted %llu pages; CPU fault-backs %llu\n"
        "  link: %llu transfers, %s; TLB misses %llu\n",
        i, static_cast<unsigned long long>(s.kernels), static_cast<unsigned long long>(s.faults),
        static_cast<unsigned long long>(s.fault_batches),
        static_cast<unsigned long long>(s.pages_to_device),
        static_cast<unsigned long long>(s.pages_to_system),
        static_cast<unsigned long long>(s.blocks_moved_in),
        static_cast<unsigned long long>(s.blocks_moved_out),
        static_cast<unsigned long long>(s.pages_evicted),
        static_cast<unsigned long long>(s.cpu_faults),
        static_cast<unsigned long long>(s.link_transfers), mib(s.link_bytes).c_str(),
        static_cast<unsigned long long>(s.tlb_misses));
    out += buf;
    // Kernel bytes are counted by the Thread API's accesses, not by JIT-compiled kernels' inline
    // ones (their TLB hits neither): shown only when there are some.
    if (s.in_place_bytes + s.local_bytes != 0) {
      std::snprintf(buf, sizeof buf, "  kernel accesses: %s in place, %s in device memory\n",
                    mib(s.in_place_bytes).c_str(), mib(s.local_bytes).c_str());
      out += buf;
    }
    out += "  modeled time:";
    for (const auto& [name, profile] : links) {
      std::snprintf(buf, sizeof buf, " %s %.3f ms%s", name, modeled(s, profile) * 1e3,
                    &name == &links[2].first ? "\n" : ",");
      out += buf;
    }
  }
  return out;
}

void write_exit_outputs(hetmm::Runtime& rt, const std::string& trace_file, bool report,
                        const std::string& link_name) {
  try {
    if (!trace_file.empty()) {
      std::ofstream out(trace_file);
      TraceInfo info;
      info.process_name = "hetmm OpenCL";
      for (std::size_t i = 0; i < rt.device_count(); ++i)
        info.device_memory.push_back(rt.device(i).memory_capacity());
      info.events_dropped = rt.events_dropped();
      write_chrome_trace(out, rt.take_events(), info);
      if (!out) std::fprintf(stderr, "hetmm: HETMM_TRACE: cannot write %s\n", trace_file.c_str());
    }
    if (report) {
      std::fflush(stdout);  // the program's own output first
      std::fputs(memory_report(rt, link_name).c_str(), stderr);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hetmm: at exit: %s\n", e.what());
  }
}

}  // namespace hetmm::opencl
