// `hetmm bench` (tools/bench/): every workload verifies in every mode, verification catches a
// wrong result, a failing run becomes a result row, and the JSON and SVG outputs are well formed.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "micro.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "workload.hpp"

namespace hetmm::bench {
namespace {

Config tiny() {
  Config c;
  c.device_memory = 256u << 10;
  c.factors = {0.5, 2};
  c.workers = 2;
  return c;
}

class EveryWorkload : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryWorkload, VerifiesInEveryMode) {
  Config c = tiny();
  for (double f : c.factors) {
    auto w = make_workload(GetParam());
    ASSERT_NE(w, nullptr);
    auto budget = static_cast<std::size_t>(f * static_cast<double>(c.device_memory));
    w->setup(budget, c.seed);
    EXPECT_LE(w->footprint(), budget);
    for (Mode m : kAllModes) {
      if (m == Mode::explicit_copy && w->footprint() > c.device_memory) continue;
      Result r = run_one(*w, m, f, c);
      EXPECT_TRUE(r.verified) << to_string(m) << " x" << f << ": " << r.error;
      EXPECT_GT(r.modeled_s, 0) << to_string(m) << " x" << f;
    }
  }
}

TEST_P(EveryWorkload, PerElementAccessesGiveTheSameResult) {
  Config c = tiny();
  c.spans = false;
  auto w = make_workload(GetParam());
  w->setup(c.device_memory * 2, c.seed);
  for (Mode m : {Mode::in_place, Mode::on_demand_hetmm}) {
    Result r = run_one(*w, m, 2, c);
    EXPECT_TRUE(r.verified) << to_string(m) << ": " << r.error;
  }
}

TEST_P(EveryWorkload, VerificationCatchesACorruptedResult) {
  Config c = tiny();
  auto w = make_workload(GetParam());
  w->setup(c.device_memory / 2, c.seed);
  Runtime rt(runtime_options(Mode::in_place, c));
  w->bind(rt);
  w->run(rt, rt.device(0), Mode::in_place);
  EXPECT_TRUE(w->verify());
  for (Array& a : w->arrays()) {
    if (!a.copied_out()) continue;
    a.live[a.bytes / 2] ^= std::byte{0x01};  // the lowest bit of one element
    EXPECT_FALSE(w->verify()) << a.name;
    a.live[a.bytes / 2] ^= std::byte{0x01};
    EXPECT_TRUE(w->verify()) << a.name;
  }
  w->unbind(rt);
}

INSTANTIATE_TEST_SUITE_P(Bench, EveryWorkload, ::testing::ValuesIn(workload_names()),
                         [](const auto& info) { return info.param; });

// A workload whose kernel fails: the run becomes a row with the error, not an exception.
class Faulting final : public Workload {
 public:
  const char* name() const override { return "faulting"; }
  void setup(std::size_t, std::uint64_t) override { add("out", Role::output, 4096); }
  void run(Runtime&, Device& dev, Mode) override {
    dev.launch(1, [](Thread& t) { t.load(reinterpret_cast<const int*>(std::uintptr_t{8})); });
    dev.synchronize();
  }
  void hints(Runtime&, std::size_t) override {}
  bool verify() const override { return true; }
};

TEST(Bench, AFailingRunIsReportedInItsRow) {
  Faulting w;
  w.setup(0, 1);
  Result r = run_one(w, Mode::on_demand_hetmm, 1, tiny());
  EXPECT_FALSE(r.verified);
  EXPECT_NE(r.error.find("device"), std::string::npos) << r.error;
  EXPECT_FALSE(w.bound());
}

TEST(Bench, SummaryRatios) {
  Outcome o;
  auto add = [&](const char* w, double f, Mode m, double s) {
    Result r;
    r.workload = w;
    r.factor = f;
    r.mode = m;
    r.modeled_s = s;
    r.verified = true;
    o.results.push_back(r);
  };
  add("a", 2, Mode::on_demand_uvm, 4);
  add("a", 2, Mode::on_demand_hetmm, 1);
  add("a", 2, Mode::in_place, 2);
  add("b", 4, Mode::on_demand_uvm, 1);
  add("b", 4, Mode::on_demand_hetmm, 1);
  add("b", 4, Mode::in_place, 0.8);
  add("b", 1, Mode::on_demand_uvm, 9);  // factor < 1.5: not in the geometric mean
  add("b", 1, Mode::on_demand_hetmm, 1);
  Summary s = summarize(o);
  EXPECT_EQ(s.uvm_hetmm_pairs, 2u);
  EXPECT_NEAR(s.uvm_over_hetmm_geomean, 2.0, 1e-12);
  EXPECT_NEAR(s.worst_hetmm_over_in_place, 1.25, 1e-12);
  EXPECT_EQ(s.worst_at, "b x4");
  EXPECT_TRUE(s.all_verified);
  o.results[0].verified = false;
  s = summarize(o);
  EXPECT_FALSE(s.all_verified);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.uvm_hetmm_pairs, 1u);  // an unverified run's time does not count
}

// ---- a minimal JSON reader, to check the shape of what the bench prints -------------------
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Json> items;
  std::map<std::string, Json> members;
  bool has(const std::string& k) const { return kind == object && members.count(k) != 0; }
  const Json& operator[](const std::string& k) const { return members.at(k); }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : t_(text) {}
  bool parse(Json* out) {
    bool ok = value(out);
    space();
    return ok && i_ == t_.size();
  }

 private:
  void space() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
  }
  bool literal(const char* w) {
    std::string s(w);
    if (t_.compare(i_, s.size(), s) != 0) return false;
    i_ += s.size();
    return true;
  }
  bool str(std::string* out) {
    if (t_[i_] != '"') return false;
    for (++i_; i_ < t_.size(); ++i_) {
      char c = t_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '\\') {
        if (++i_ >= t_.size()) return false;
        if (t_[i_] == 'u') i_ += 4;
      }
      out->push_back(c);
    }
    return false;
  }
  bool value(Json* v) {
    space();
    if (i_ >= t_.size()) return false;
    char c = t_[i_];
    if (c == '{') {
      v->kind = Json::object;
      ++i_;
      space();
      if (t_[i_] == '}') return ++i_, true;
      for (;;) {
        space();
        std::string k;
        if (!str(&k)) return false;
        space();
        if (t_[i_++] != ':') return false;
        if (!value(&v->members[k])) return false;
        space();
        if (t_[i_] == ',') {
          ++i_;
          continue;
        }
        return t_[i_++] == '}';
      }
    }
    if (c == '[') {
      v->kind = Json::array;
      ++i_;
      space();
      if (t_[i_] == ']') return ++i_, true;
      for (;;) {
        v->items.emplace_back();
        if (!value(&v->items.back())) return false;
        space();
        if (t_[i_] == ',') {
          ++i_;
          continue;
        }
        return t_[i_++] == ']';
      }
    }
    if (c == '"') return v->kind = Json::string, str(&v->s);
    if (literal("true")) return v->kind = Json::boolean, v->b = true, true;
    if (literal("false")) return v->kind = Json::boolean, true;
    if (literal("null")) return v->kind = Json::null, true;
    std::size_t end = 0;
    try {
      v->n = std::stod(t_.substr(i_, 32), &end);
    } catch (...) {
      return false;
    }
    v->kind = Json::number;
    i_ += end;
    return end > 0;
  }
  const std::string& t_;
  std::size_t i_ = 0;
};

TEST(Bench, JsonHasTheDocumentedShape) {
  Config c = tiny();
  c.workloads = {"triad"};
  Outcome o = run_all(c);
  Micro m;
  m.migration_over_memcpy = 0.5;
  m.prefetch_over_memcpy = 0.9;
  m.cpu_faultback_over_uffd = 1.1;
  m.mmu_hit_over_raw = 2;
  // span_over_raw left unmeasured: it must come out as null
  for (const std::optional<Micro>& micro : {std::optional<Micro>(m), std::optional<Micro>()}) {
    std::string text = format_json(c, o, summarize(o), micro);
    Json j;
    ASSERT_TRUE(JsonReader(text).parse(&j)) << text;
    ASSERT_EQ(j.kind, Json::object);
    for (const char* k : {"config", "machine", "results", "skipped", "summary", "micro"})
      EXPECT_TRUE(j.has(k)) << k;
    EXPECT_EQ(j["config"]["device_mib"].n, 0.25);
    EXPECT_EQ(j["config"]["link"].s, "pcie4");
    EXPECT_EQ(j["config"]["workers"].n, 2);
    ASSERT_EQ(j["results"].kind, Json::array);
    std::set<std::string> modes;
    for (const Json& r : j["results"].items) {
      for (const char* k :
           {"workload", "mode", "factor", "wall_s", "modeled_s", "verified", "pages_to_device",
            "pages_to_system", "pages_evicted", "faults", "in_place_bytes", "local_bytes"})
        EXPECT_TRUE(r.has(k)) << k;
      EXPECT_EQ(r["workload"].s, "triad");
      EXPECT_TRUE(r["verified"].b);
      modes.insert(r["mode"].s);
    }
    EXPECT_EQ(modes, (std::set<std::string>{"explicit", "in-place", "on-demand-uvm",
                                            "on-demand-hetmm", "hinted"}));
    EXPECT_EQ(j["results"].items.size(), 9u);  // explicit at factor 2 does not fit
    ASSERT_EQ(j["skipped"].items.size(), 1u);
    EXPECT_EQ(j["skipped"].items[0]["factor"].n, 2);
    for (const char* k : {"uvm_over_hetmm_geomean", "worst_hetmm_over_in_place", "all_verified"})
      EXPECT_TRUE(j["summary"].has(k)) << k;
    EXPECT_TRUE(j["summary"]["all_verified"].b);
    if (micro) {
      for (const char* k : {"migration_over_memcpy", "prefetch_over_memcpy",
                            "cpu_faultback_over_uffd", "mmu_hit_over_raw", "span_over_raw"})
        EXPECT_TRUE(j["micro"].has(k)) << k;
      EXPECT_EQ(j["micro"]["mmu_hit_over_raw"].n, 2);
      EXPECT_EQ(j["micro"]["span_over_raw"].kind, Json::null);
    } else {
      EXPECT_EQ(j["micro"].kind, Json::null);
    }
  }
}

TEST(Bench, SvgIsBalanced) {
  Config c = tiny();
  c.workloads = {"triad", "gather"};
  c.modes = {Mode::in_place, Mode::on_demand_hetmm};
  Outcome o = run_all(c);
  o.results[0].verified = false;  // drawn with its mark
  std::string svg = format_svg(c, o);
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  std::vector<std::string> open;
  for (std::size_t i = svg.find('<'); i != std::string::npos; i = svg.find('<', i + 1)) {
    std::size_t end = svg.find('>', i);
    ASSERT_NE(end, std::string::npos);
    std::string tag = svg.substr(i + 1, end - i - 1);
    if (tag.back() == '/') continue;
    if (tag[0] == '/') {
      ASSERT_FALSE(open.empty()) << tag;
      EXPECT_EQ("/" + open.back(), tag);
      open.pop_back();
    } else {
      open.push_back(tag.substr(0, tag.find(' ')));
    }
  }
  EXPECT_TRUE(open.empty());
}

TEST(Bench, MicroRatiosAreMeasured) {
  MicroConfig mc;
  mc.sweep_bytes = 8u << 20;
  mc.fault_samples = 20;
  mc.sum_elements = 1u << 16;
  mc.reps = 1;
  mc.mirrored_mid = 16u << 20;
  mc.mirrored_large = 256u << 20;
  Micro m = measure_micro(mc);
  for (double r :
       {m.migration_over_memcpy, m.prefetch_over_memcpy, m.mmu_hit_over_raw, m.span_over_raw})
    EXPECT_GT(r, 0);
  // A device fault costs something, and many workers serve some per second.
  for (double us : {m.device_fault_us, m.device_fault_us_1g, m.device_fault_us_16g})
    EXPECT_GT(us, 0);
  EXPECT_GT(m.faults_per_s_many, 0);
  EXPECT_EQ(m.many_faults, 8u);
  // The bare userfaultfd round trip needs userfaultfd; the note says why when it is refused.
  if (std::isnan(m.cpu_faultback_over_uffd))
    EXPECT_FALSE(m.notes.empty());
  else
    EXPECT_GT(m.cpu_faultback_over_uffd, 0);
  for (const std::string& n : m.notes) EXPECT_EQ(n.find("sum is wrong"), std::string::npos) << n;
}

}  // namespace
}  // namespace hetmm::bench
