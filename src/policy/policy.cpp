#include "policy/policy.hpp"

#include "os/arena.hpp"
#include "policy/hetmm_policy.hpp"
#include "policy/uvm_policy.hpp"

namespace hetmm::policy {

Policy* make_policy(PolicyProfile profile, const UvmParameters& params) {
  switch (profile) {
    case PolicyProfile::uvm: {
      auto* p = os::arena_new<UvmPolicy>();
      p->params_ = params;
      return p;
    }
    case PolicyProfile::in_place: return os::arena_new<InPlacePolicy>();
    case PolicyProfile::hetmm: break;
  }
  auto* p = os::arena_new<HetmmPolicy>();
  p->params_ = params;
  return p;
}

void destroy_policy(Policy* p) {
  if (p == nullptr) return;
  switch (p->profile()) {
    case PolicyProfile::uvm: os::arena_delete(static_cast<UvmPolicy*>(p)); return;
    case PolicyProfile::in_place: os::arena_delete(static_cast<InPlacePolicy*>(p)); return;
    case PolicyProfile::hetmm: os::arena_delete(static_cast<HetmmPolicy*>(p)); return;
  }
}

}  // namespace hetmm::policy
