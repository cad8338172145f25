// Runtime::advise / unadvise / set_policy and the residency queries.
#include "api/runtime_impl.hpp"

#include "os/page.hpp"

#include <cstdio>

namespace hetmm {

namespace {

// Advice and queries work on whole pages: the range is widened to page bounds.
void page_bounds(const char* what, const void* addr, std::size_t len, std::uintptr_t* start,
                 std::uintptr_t* end) {
  detail::check_range(what, ~std::size_t{0}, addr, len);
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  *start = os::page_down(a);
  *end = os::page_up(a + len);
}

[[noreturn]] void fail(const char* what, const void* addr, std::size_t len, Errc code,
                       const std::string& why) {
  throw Error(code, detail::describe(what, ~std::size_t{0}, addr, len) + ": " + why);
}

int where_index(const char* what, const void* addr, std::size_t len, Advice advice,
                Location where, std::size_t devices) {
  if (!where.is_system() && where.device_index() >= devices)
    fail(what, addr, len, Errc::invalid_argument,
         "no " + where.to_string() + " (there are " + std::to_string(devices) + " devices)");
  if (advice == Advice::accessed_by && where.is_system())
    fail(what, addr, len, Errc::invalid_argument, "accessed_by names a device, not the system");
  return where.is_system() ? core::kSystem : static_cast<int>(where.device_index());
}

void apply(detail::RuntimeImpl& rt, const char* what, const void* addr, std::size_t len,
           Advice advice, Location where, bool set) {
  std::uintptr_t start, end;
  page_bounds(what, addr, len, &start, &end);
  if (static_cast<unsigned>(advice) > static_cast<unsigned>(Advice::discard))
    fail(what, addr, len, Errc::invalid_argument, "not an Advice value");
  if (!set && advice == Advice::discard)
    fail(what, addr, len, Errc::invalid_argument, "discard is an action and cannot be undone");
  int w = where_index(what, addr, len, advice, where, rt.device_count());
  rt.check_usable(what);
  core::Status status;
  rt.mirror().advise(start, end, advice, w, set, &status);
  if (status.failed) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "no mapping at 0x%lx", static_cast<unsigned long>(status.addr));
    fail(what, addr, len, status.code, buf);
  }
}

}  // namespace

void Runtime::advise(const void* addr, std::size_t len, Advice advice, Location where) {
  apply(*impl_, "advise", addr, len, advice, where, true);
}

void Runtime::unadvise(const void* addr, std::size_t len, Advice advice, Location where) {
  apply(*impl_, "unadvise", addr, len, advice, where, false);
}

void Runtime::set_policy(const void* addr, std::size_t len, PolicyProfile policy) {
  std::uintptr_t start, end;
  page_bounds("set_policy", addr, len, &start, &end);
  if (policy != PolicyProfile::hetmm && policy != PolicyProfile::uvm &&
      policy != PolicyProfile::in_place)
    fail("set_policy", addr, len, Errc::invalid_argument, "not a PolicyProfile value");
  impl_->check_usable("set_policy");
  impl_->mirror().set_policy(start, end, policy);
}

std::vector<Location> Runtime::residency(const void* addr, std::size_t len) const {
  std::uintptr_t start, end;
  page_bounds("residency", addr, len, &start, &end);
  std::size_t npages = (end - start) / os::kPageSize;
  constexpr std::size_t kMaxPages = std::size_t{1} << 28;  // 1 TiB of pages, 4 GiB of answer
  if (npages > kMaxPages)
    fail("residency", addr, len, Errc::invalid_argument, "range too large for one query");
  impl_->check_usable("residency");
  std::vector<Location> out(npages);
  impl_->mirror().residency(start, npages, out.data());
  return out;
}

RangeStats Runtime::range_stats(const void* addr, std::size_t len) const {
  std::uintptr_t start, end;
  page_bounds("range_stats", addr, len, &start, &end);
  impl_->check_usable("range_stats");
  RangeStats s;
  impl_->mirror().range_stats(start, end, s);
  return s;
}

}  // namespace hetmm
