// The table and the JSON object (the chart is in chart.cpp).
#include "report.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <thread>
#include <tuple>

#include "json.hpp"

namespace hetmm::bench {
namespace {

__attribute__((format(printf, 2, 3))) void appendf(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  out += buf;
}

using Key = std::tuple<std::string, double, Mode>;  // workload, factor, mode

std::map<Key, const Result*> index(const Outcome& o) {
  std::map<Key, const Result*> m;
  for (const Result& r : o.results) m[{r.workload, r.factor, r.mode}] = &r;
  return m;
}

// The modeled time of a verified run, or NaN.
double modeled(const std::map<Key, const Result*>& m, const std::string& w, double f, Mode mode) {
  auto it = m.find({w, f, mode});
  if (it == m.end() || !it->second->verified) return kNotMeasured;
  return it->second->modeled_s;
}

std::string factor_text(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", f);
  return buf;
}

std::string ratio_text(double x) {
  if (!std::isfinite(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", x);
  return buf;
}

}  // namespace

Summary summarize(const Outcome& outcome) {
  Summary s;
  auto m = index(outcome);
  double log_sum = 0;
  for (const Result& r : outcome.results) {
    if (!r.verified) {
      s.all_verified = false;
      ++s.failed;
    }
    if (r.mode != Mode::on_demand_hetmm) continue;
    double hetmm = modeled(m, r.workload, r.factor, Mode::on_demand_hetmm);
    double uvm = modeled(m, r.workload, r.factor, Mode::on_demand_uvm);
    double in_place = modeled(m, r.workload, r.factor, Mode::in_place);
    if (r.factor >= 1.5 && hetmm > 0 && uvm > 0) {
      log_sum += std::log(uvm / hetmm);
      ++s.uvm_hetmm_pairs;
      s.uvm_over_hetmm_runs.emplace_back(r.workload + " x" + factor_text(r.factor), uvm / hetmm);
    }
    if (hetmm > 0 && in_place > 0) {
      double x = hetmm / in_place;
      if (!(x <= s.worst_hetmm_over_in_place)) {
        s.worst_hetmm_over_in_place = x;
        s.worst_at = r.workload + " x" + factor_text(r.factor);
      }
    }
  }
  if (s.uvm_hetmm_pairs > 0)
    s.uvm_over_hetmm_geomean = std::exp(log_sum / static_cast<double>(s.uvm_hetmm_pairs));
  if (s.uvm_hetmm_pairs > 1) {
    auto largest = std::max_element(s.uvm_over_hetmm_runs.begin(), s.uvm_over_hetmm_runs.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
    s.largest_uvm_over_hetmm_at = largest->first;
    s.uvm_over_hetmm_geomean_without_largest =
        std::exp((log_sum - std::log(largest->second)) / static_cast<double>(s.uvm_hetmm_pairs - 1));
  }
  return s;
}

std::string format_table(const Config& config, const Outcome& outcome, const Summary& summary,
                         const std::optional<Micro>& micro) {
  std::string out;
  appendf(out,
          "hetmm bench: device memory %.1f MiB, link %s (%g GB/s, %g us per transfer, %g us per "
          "fault batch, local %g GB/s), %u workers, tracking %s\n\n",
          static_cast<double>(config.device_memory) / (1 << 20), config.link_name.c_str(),
          config.link.bandwidth_gbs, config.link.latency_us, config.link.fault_us,
          config.link.local_bandwidth_gbs, config.workers, to_string(outcome.tracking));
  appendf(out, "%-9s %6s %-16s %8s %9s %11s %9s %-8s %8s %8s %8s %8s\n", "workload", "factor",
          "mode", "MiB", "wall ms", "modeled ms", "/in-place", "verified", "to dev", "to sys",
          "evicted", "faults");
  auto m = index(outcome);
  for (const Result& r : outcome.results) {
    double in_place = modeled(m, r.workload, r.factor, Mode::in_place);
    appendf(out, "%-9s %6s %-16s %8.1f %9.1f %11.3f %9s %-8s %8llu %8llu %8llu %8llu\n",
            r.workload.c_str(), factor_text(r.factor).c_str(), to_string(r.mode),
            static_cast<double>(r.bytes) / (1 << 20), r.wall_s * 1e3, r.modeled_s * 1e3,
            ratio_text(r.verified && in_place > 0 ? r.modeled_s / in_place : kNotMeasured).c_str(),
            r.verified ? "yes" : "NO", static_cast<unsigned long long>(r.counters.pages_to_device),
            static_cast<unsigned long long>(r.counters.pages_to_system),
            static_cast<unsigned long long>(r.counters.pages_evicted),
            static_cast<unsigned long long>(r.counters.faults));
    if (!r.error.empty()) appendf(out, "    error: %s\n", r.error.c_str());
  }
  if (!outcome.skipped.empty())
    appendf(out, "(%zu explicit runs left out: the working set does not fit in device memory)\n",
            outcome.skipped.size());
  appendf(
      out,
      "\nmodeled uvm / hetmm, geometric mean over factor >= 1.5 (%zu runs): %s (goal >= 1.5x)\n",
      summary.uvm_hetmm_pairs, ratio_text(summary.uvm_over_hetmm_geomean).c_str());
  if (summary.uvm_hetmm_pairs > 1)
    appendf(out, "  without its largest term (%s): %s; per run:",
            summary.largest_uvm_over_hetmm_at.c_str(),
            ratio_text(summary.uvm_over_hetmm_geomean_without_largest).c_str());
  for (std::size_t i = 0; i < summary.uvm_over_hetmm_runs.size(); ++i)
    appendf(out, "%s %s %s", i % 6 == 0 ? "\n   " : ",",
            summary.uvm_over_hetmm_runs[i].first.c_str(),
            ratio_text(summary.uvm_over_hetmm_runs[i].second).c_str());
  if (!summary.uvm_over_hetmm_runs.empty()) out += "\n";
  appendf(out, "modeled hetmm / in-place, worst: %s%s%s (goal <= 1.10x)\n",
          ratio_text(summary.worst_hetmm_over_in_place).c_str(),
          summary.worst_at.empty() ? "" : " at ", summary.worst_at.c_str());
  appendf(out, "verified: %s (%zu results)\n",
          summary.all_verified ? "all" : (std::to_string(summary.failed) + " FAILED").c_str(),
          outcome.results.size());
  if (micro) {
    const Micro& x = *micro;
    appendf(out, "\nmicro-costs (same run; sweep of %.0f MiB)\n",
            static_cast<double>(x.sweep_bytes) / (1 << 20));
    appendf(out,
            "  %-24s %8s  goal >= 0.5   fault-driven sweep %.2f GB/s (%.0f%% of pages moved) "
            "vs memcpy %.2f GB/s\n",
            "migration_over_memcpy", ratio_text(x.migration_over_memcpy).c_str(), x.migration_gbs,
            x.migrated_fraction * 100, x.memcpy_gbs);
    appendf(out, "  %-24s %8s  goal >= 0.8   prefetch %.2f GB/s vs memcpy %.2f GB/s\n",
            "prefetch_over_memcpy", ratio_text(x.prefetch_over_memcpy).c_str(), x.prefetch_gbs,
            x.memcpy_gbs);
    appendf(out,
            "  %-24s %8s  goal <= 1.5   CPU fault-back %.1f us vs bare userfaultfd %.1f us "
            "(medians)\n",
            "cpu_faultback_over_uffd", ratio_text(x.cpu_faultback_over_uffd).c_str(),
            x.faultback_us, x.bare_uffd_us);
    appendf(out,
            "  %-24s %8s  goal <= 3     Thread::load %.2f ns vs raw loop %.2f ns per element\n",
            "mmu_hit_over_raw", ratio_text(x.mmu_hit_over_raw).c_str(), x.load_ns, x.raw_load_ns);
    appendf(out,
            "  %-24s %8s  goal <= 1.2   read_span %.3f ns vs the same loop on the CPU %.3f ns "
            "per element\n",
            "span_over_raw", ratio_text(x.span_over_raw).c_str(), x.span_ns, x.raw_sum_ns);
    appendf(out,
            "  %-24s %8.1f us     one cold page, worker miss to replay (1 MiB mirrored); "
            "1 GiB: %.1f us, 16 GiB sparse: %.1f us\n",
            "device_fault_us", x.device_fault_us, x.device_fault_us_1g, x.device_fault_us_16g);
    appendf(out, "  %-24s %8.0f /s     %zu cold pages in distinct blocks, %u workers at once\n",
            "faults_per_s_many", x.faults_per_s_many, x.many_faults, x.many_workers);
    for (const std::string& n : x.notes) appendf(out, "  note: %s\n", n.c_str());
  }
  appendf(out, "\n%.1f s\n", outcome.seconds);
  return out;
}

std::string format_json(const Config& config, const Outcome& outcome, const Summary& summary,
                        const std::optional<Micro>& micro) {
  JsonWriter j;
  j.begin_object();
  j.field("tool", "hetmm bench");
  j.key("config").begin_object(true);
  j.field("device_mib", static_cast<double>(config.device_memory) / (1 << 20));
  j.field("device_bytes", std::uint64_t{config.device_memory});
  j.field("link", config.link_name);
  j.key("link_profile").begin_object(true);
  j.field("bandwidth_gbs", config.link.bandwidth_gbs).field("latency_us", config.link.latency_us);
  j.field("fault_us", config.link.fault_us)
      .field("local_bandwidth_gbs", config.link.local_bandwidth_gbs);
  j.end_object();
  j.field("workers", std::uint64_t{config.workers});
  j.field("tracking", to_string(outcome.tracking));
  j.field("seed", std::uint64_t{config.seed});
  j.field("spans", config.spans);
  j.field("quick", config.quick);
  j.field("size", config.size);
  j.key("factors").begin_array(true);
  for (double f : config.factors) j.value(f);
  j.end_array();
  j.end_object();
  utsname u{};
  ::uname(&u);
  j.key("machine").begin_object(true);
  j.field("hardware_threads", std::uint64_t{std::thread::hardware_concurrency()});
  j.field("kernel", std::string(u.sysname) + " " + u.release);
  j.end_object();

  j.key("results").begin_array();
  for (const Result& r : outcome.results) {
    j.begin_object(true);
    j.field("workload", r.workload).field("mode", to_string(r.mode)).field("factor", r.factor);
    j.field("bytes", std::uint64_t{r.bytes})
        .field("wall_s", r.wall_s)
        .field("modeled_s", r.modeled_s);
    j.field("verified", r.verified);
    if (!r.error.empty()) j.field("error", r.error);
    const Counters& c = r.counters;
    j.field("pages_to_device", c.pages_to_device).field("pages_to_system", c.pages_to_system);
    j.field("pages_evicted", c.pages_evicted).field("faults", c.faults);
    j.field("fault_batches", c.fault_batches).field("faults_flushed", c.faults_flushed);
    j.field("cpu_faults", c.cpu_faults);
    j.field("link_transfers", c.link_transfers).field("link_bytes", c.link_bytes);
    j.field("in_place_bytes", c.in_place_bytes).field("local_bytes", c.local_bytes);
    j.end_object();
  }
  j.end_array();
  j.field("skipped_runs",
          "explicit runs whose working set exceeds device memory are left out of "
          "results and listed in skipped");
  j.key("skipped").begin_array();
  for (const Skipped& s : outcome.skipped) {
    j.begin_object(true);
    j.field("workload", s.workload).field("mode", to_string(s.mode)).field("factor", s.factor);
    j.field("reason", s.reason);
    j.end_object();
  }
  j.end_array();

  j.key("summary").begin_object();
  j.field("uvm_over_hetmm_geomean", summary.uvm_over_hetmm_geomean);
  j.field("uvm_over_hetmm_runs", std::uint64_t{summary.uvm_hetmm_pairs});
  j.field("uvm_over_hetmm_geomean_without_largest",
          summary.uvm_over_hetmm_geomean_without_largest);
  j.field("largest_uvm_over_hetmm_at", summary.largest_uvm_over_hetmm_at);
  j.key("uvm_over_hetmm_per_run").begin_object();
  for (const auto& [run, ratio] : summary.uvm_over_hetmm_runs) j.field(run, ratio);
  j.end_object();
  j.field("worst_hetmm_over_in_place", summary.worst_hetmm_over_in_place);
  j.field("worst_hetmm_over_in_place_at", summary.worst_at);
  j.field("all_verified", summary.all_verified);
  j.field("failed", std::uint64_t{summary.failed});
  j.field("goal_uvm_over_hetmm_met", summary.uvm_over_hetmm_geomean >= 1.5);
  j.field("goal_hetmm_over_in_place_met", summary.worst_hetmm_over_in_place <= 1.1);
  j.end_object();

  if (micro) {
    const Micro& x = *micro;
    j.key("micro").begin_object();
    j.field("migration_over_memcpy", x.migration_over_memcpy);
    j.field("prefetch_over_memcpy", x.prefetch_over_memcpy);
    j.field("cpu_faultback_over_uffd", x.cpu_faultback_over_uffd);
    j.field("mmu_hit_over_raw", x.mmu_hit_over_raw);
    j.field("span_over_raw", x.span_over_raw);
    j.field("device_fault_us", x.device_fault_us);
    j.field("faults_per_s_many_workers", x.faults_per_s_many);
    j.key("device_fault_us_by_mirrored").begin_object(true);
    j.field("1MiB", x.device_fault_us).field("1GiB", x.device_fault_us_1g);
    j.field("16GiB_sparse", x.device_fault_us_16g);
    j.end_object();
    j.key("details").begin_object(true);
    j.field("sweep_bytes", std::uint64_t{x.sweep_bytes}).field("memcpy_gbs", x.memcpy_gbs);
    j.field("migration_gbs", x.migration_gbs).field("migrated_fraction", x.migrated_fraction);
    j.field("prefetch_gbs", x.prefetch_gbs);
    j.field("faultback_us", x.faultback_us).field("bare_uffd_us", x.bare_uffd_us);
    j.field("load_ns", x.load_ns).field("raw_load_ns", x.raw_load_ns);
    j.field("span_ns", x.span_ns).field("raw_sum_ns", x.raw_sum_ns);
    j.field("many_workers", std::uint64_t{x.many_workers}).field("many_faults", std::uint64_t{x.many_faults});
    j.end_object();
    j.key("notes").begin_array();
    for (const std::string& n : x.notes) j.value(n);
    j.end_array();
    j.end_object();
  } else {
    j.key("micro").null();
  }
  j.field("seconds", outcome.seconds);
  j.end_object();
  return j.str();
}

}  // namespace hetmm::bench
