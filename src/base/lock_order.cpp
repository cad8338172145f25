#include "base/lock_order.hpp"

#include <cstdlib>
#include <unistd.h>

namespace hetmm::base::lock_order {

const char* name(Rank r) {
  switch (r) {
    case Rank::launch: return "launch (sim device launch queue)";
    case Rank::alloc: return "alloc (runtime allocation table)";
    case Rank::state: return "state (mirror state lock)";
    case Rank::uffd_own_removes: return "uffd_own_removes (userfaultfd own REMOVE list)";
    case Rank::fault_buffer: return "fault_buffer (sim device fault buffer)";
    case Rank::arena: return "arena (runtime memory pool)";
    case Rank::telemetry: return "telemetry (event log consumer)";
  }
  return "unknown";
}

#ifndef NDEBUG
namespace {

// Fork's prepare handler may hold every runtime's state lock (16 at most) besides its own.
constexpr unsigned kMaxHeld = 32;

struct Held {
  Rank ranks[kMaxHeld];
  unsigned count;
};
thread_local Held t_held __attribute__((tls_model("initial-exec"))) = {};

// No malloc, no stdio: this runs on the fault path and in the SIGSEGV handler.
struct Message {
  char buf[256];
  unsigned len = 0;
  Message& operator<<(const char* s) {
    while (*s != '\0' && len < sizeof(buf) - 1) buf[len++] = *s++;
    return *this;
  }
  Message& operator<<(unsigned v) {
    char digits[12];
    unsigned n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof(buf) - 1) buf[len++] = digits[--n];
    return *this;
  }
  [[noreturn]] void die() {
    buf[len++] = '\n';
    for (unsigned off = 0; off < len;) {
      ssize_t w = ::write(STDERR_FILENO, buf + off, len - off);
      if (w <= 0) break;
      off += static_cast<unsigned>(w);
    }
    std::abort();
  }
};

unsigned rank_number(Rank r) { return static_cast<unsigned>(r); }

void record(Rank r) {
  Held& h = t_held;
  if (h.count == kMaxHeld)
    (Message() << "hetmm: lock order: more than " << kMaxHeld << " locks held, taking "
               << name(r)).die();
  h.ranks[h.count++] = r;
}

}  // namespace

void acquire(Rank r, bool nested) {
  Held& h = t_held;
  for (unsigned i = 0; i < h.count; ++i) {
    Rank held = h.ranks[i];
    if (held < r || (nested && held == r)) continue;
    (Message() << "hetmm: lock order violation: taking " << name(r) << " [rank "
               << rank_number(r) << "] while holding " << name(held) << " [rank "
               << rank_number(held) << "] (see src/base/lock_order.hpp)")
        .die();
  }
  record(r);
}

void acquired_try(Rank r) { record(r); }

void release(Rank r) {
  Held& h = t_held;
  for (unsigned i = h.count; i-- > 0;) {
    if (h.ranks[i] != r) continue;
    for (unsigned j = i + 1; j < h.count; ++j) h.ranks[j - 1] = h.ranks[j];
    --h.count;
    return;
  }
  (Message() << "hetmm: lock order: releasing " << name(r) << ", which this thread does not hold")
      .die();
}

unsigned held_count() { return t_held.count; }
#endif

}  // namespace hetmm::base::lock_order
