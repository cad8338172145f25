#include "device/sim/sim_device.hpp"

#include "os/page.hpp"
#include "os/safe_access.hpp"
#include "os/syscalls.hpp"
#include "telemetry/event_log.hpp"

#include <algorithm>
#include <cstring>
#include <sched.h>
#include <thread>

namespace hetmm::detail {
thread_local WorkerContext* tls_worker __attribute__((tls_model("initial-exec"))) = nullptr;
}

namespace hetmm::device::sim {

using detail::WorkerContext;

SimDevice::SimDevice(std::size_t index, std::size_t memory_bytes, unsigned workers,
                     FaultResolver* resolver, base::FaultInjector* injector, bool movable_memory)
    : index_(index),
      resolver_(resolver),
      injector_(injector),
      pool_(memory_bytes, movable_memory) {
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  nworkers_ = workers;
  workers_ = static_cast<WorkerContext**>(
      os::runtime_memory()->allocate(sizeof(WorkerContext*) * nworkers_, alignof(void*)));
  for (unsigned i = 0; i < nworkers_; ++i) {
    workers_[i] = os::arena_new<WorkerContext>();
    workers_[i]->device = this;
    workers_[i]->index = i;
    // Thread's inline hit path (include/hetmm/detail/hit_path.hpp) publishes with a plain
    // store: only where the invalidator's asymmetric fence orders it.
    workers_[i]->device_epoch = asymmetric_ ? &epoch_ : detail::no_hit_epoch();
  }
}

SimDevice::~SimDevice() {
  stop();
  for (unsigned i = 0; i < nworkers_; ++i) {
    if (workers_[i]->jit_state_release != nullptr)
      workers_[i]->jit_state_release(workers_[i]->jit_state);
    os::arena_delete(workers_[i]);
  }
  os::runtime_memory()->deallocate(workers_, sizeof(WorkerContext*) * nworkers_, alignof(void*));
}

void SimDevice::start() {
  if (started_) return;
  stopping_ = false;
  faults_.restart();
  service_.start(&SimDevice::service_main, this, "hetmm-fault");
  for (unsigned i = 0; i < nworkers_; ++i)
    workers_[i]->thread.start(&SimDevice::worker_main, workers_[i], "hetmm-worker");
  started_ = true;
}

void SimDevice::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(launch_mutex_);
    stopping_ = true;
  }
  launch_cv_.notify_all();
  for (unsigned i = 0; i < nworkers_; ++i) workers_[i]->thread.join();
  faults_.stop();
  service_.join();
  // Kernels that never ran are dropped (their destructors run without the lock); their
  // launchers learn it at synchronize.
  std::deque<Launch*> dropped;
  {
    std::lock_guard lock(launch_mutex_);
    dropped.swap(queue_);
    if (!dropped.empty() && !pending_error_)
      pending_error_ = std::make_exception_ptr(Error(
          Errc::device_lost, "device " + std::to_string(index_) + " stopped with kernels queued"));
    started_ = false;
  }
  for (Launch* l : dropped) delete l;
  std::lock_guard lock(launch_mutex_);
  idle_cv_.notify_all();
}

void SimDevice::abandon_threads() {
  for (unsigned i = 0; i < nworkers_; ++i) workers_[i]->thread.abandon();
  service_.abandon();
  started_ = false;
}

namespace {
// Frames that are adjacent in memory: consecutive numbers within one 2 MiB chunk (chunks are
// separate mappings, so frame 512 does not follow frame 511 in memory).
std::size_t contiguous_run(const std::uint32_t* frames, std::size_t n) {
  std::size_t run = 1;
  while (run < n && frames[run] == frames[0] + run && frames[run] % 512 != 0) ++run;
  return run;
}
}  // namespace

bool SimDevice::copy_to_frames(const std::uint32_t* frames, std::size_t n, const void* src) {
  if (injector_->fire(base::FaultInjector::copy)) return false;
  auto* s = static_cast<const std::byte*>(src);
  for (std::size_t i = 0; i < n;) {
    std::size_t run = contiguous_run(frames + i, n - i);
    if (hetmm_safe_copy(pool_.address(frames[i]), s + i * os::kPageSize, run * os::kPageSize))
      return false;
    i += run;
  }
  return true;
}

bool SimDevice::copy_from_frames(void* dst, const std::uint32_t* frames, std::size_t n) {
  if (injector_->fire(base::FaultInjector::copy)) return false;
  auto* d = static_cast<std::byte*>(dst);
  for (std::size_t i = 0; i < n;) {
    std::size_t run = contiguous_run(frames + i, n - i);
    if (hetmm_safe_copy(d + i * os::kPageSize, pool_.address(frames[i]), run * os::kPageSize))
      return false;
    i += run;
  }
  return true;
}

void SimDevice::zero_frames(const std::uint32_t* frames, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) std::memset(pool_.address(frames[i]), 0, os::kPageSize);
}

void SimDevice::invalidate(std::uintptr_t start, std::uintptr_t end) {
  if (pt_.clear(start, end) == 0) return;  // no valid PTE: no TLB can hold one either
  stats_.invalidations.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  // No worker in a kernel: one that joins later counts itself in first (seq_cst, after this
  // load in the single order) and so reads the new epoch before any translation.
  if (running_workers_.load(std::memory_order_seq_cst) == 0) return;
  // Workers publish `active` with a plain store (worker.hpp): the heavy fence makes every
  // publish before it visible here, and every re-check after it see the new epoch.
  if (asymmetric_) os::heavy_fence();
  for (unsigned i = 0; i < nworkers_; ++i) {
    auto& active = workers_[i]->active;
    for (unsigned spins = 0;; ++spins) {
      std::uint64_t a = active.load(std::memory_order_seq_cst);
      if (a == 0 || a >= target) break;
      if (spins < 4096) __builtin_ia32_pause();
      else sched_yield();
    }
  }
}

void SimDevice::advance_access_epoch() {
  access_epoch_.fetch_add(1, std::memory_order_relaxed);
  // A shootdown epoch with nothing cleared: every worker flushes its TLB at its next access,
  // so blocks in use are walked (and marked) again in the new epoch.
  epoch_.fetch_add(1, std::memory_order_seq_cst);
}

void SimDevice::fault_and_wait(FaultRequest* r) {
  faults_.post(r);
  r->wait();
}

// ---------------------------------------------------------------------------------------------
// Fault service
// ---------------------------------------------------------------------------------------------
void SimDevice::service_main(void* arg) { static_cast<SimDevice*>(arg)->run_service(); }

void SimDevice::run_service() {
  FaultRequest* batch[FaultBuffer::kMaxBatch];
  std::size_t carried = 0;  // requests the last flush kept: they open the next batch
  for (;;) {
    std::size_t n = carried;
    if (n == 0) {
      n = faults_.drain(batch, FaultBuffer::kMaxBatch);
      if (n == 0) return;
    } else {
      n += faults_.take(batch + n, FaultBuffer::kMaxBatch - n);
    }
    injector_->maybe_stall(base::FaultInjector::service_delay);
    serve_batch(batch, n);
    carried = flush(batch);  // the served batch's slots take what opens the next one
  }
}

// The flush before the replay (UVM's BATCH_FLUSH, its default): workers that faulted while the
// batch was being served often wanted what it just mapped (two workers on one new block, a
// read then a write of a block upgraded in the same batch). Those requests are replayed with
// the batch instead of costing a batch of their own; the rest open the next one. Only requests
// that a replay settles are flushed (`replayable`: a miss in the device's page table, not an
// in-place access the CPU refused, and not an API call's range).
std::size_t SimDevice::flush(FaultRequest** keep) {
  std::size_t n = faults_.take(keep, FaultBuffer::kMaxBatch);
  std::size_t kept = 0, flushed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (keep[i]->replayable && served(*keep[i])) {
      ++flushed;
      keep[i]->complete();
    } else {
      keep[kept++] = keep[i];
    }
  }
  if (flushed > 0) {
    stats_.faults.fetch_add(flushed, std::memory_order_relaxed);
    stats_.faults_flushed.fetch_add(flushed, std::memory_order_relaxed);
  }
  return kept;
}

// Whether the device page table now maps every page of the request with the access it needs.
bool SimDevice::served(const FaultRequest& r) const {
  for (std::uintptr_t page = r.start; page < r.end; page += os::kPageSize) {
    std::uint64_t p = pt_.get(page);
    if (!(p & pte::kValid) || (r.write && !(p & pte::kWrite))) return false;
  }
  return true;
}

void SimDevice::serve_batch(FaultRequest** reqs, std::size_t n) {
  stats_.fault_batches.fetch_add(1, std::memory_order_relaxed);
  stats_.faults.fetch_add(n, std::memory_order_relaxed);
  // Sort by address; coalesce requests for the same pages keeping the most intrusive access
  // (write), and adjacent or overlapping requests of the same access. A read request merged
  // into a write range that fails with `permission` is resolved again on its own below.
  std::sort(reqs, reqs + n, [](const FaultRequest* a, const FaultRequest* b) {
    if (a->start != b->start) return a->start < b->start;
    return a->write > b->write;
  });
  FaultRange ranges[FaultBuffer::kMaxBatch];
  FaultOutcome outcomes[FaultBuffer::kMaxBatch];
  std::size_t owner[FaultBuffer::kMaxBatch];  // range of each request
  std::size_t nr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    FaultRequest* q = reqs[i];
    FaultRange* last = nr > 0 ? &ranges[nr - 1] : nullptr;
    bool same_pages = last != nullptr && q->start >= last->start && q->end <= last->end &&
                      (last->write || !q->write);
    bool adjacent = last != nullptr && last->write == q->write && q->start <= last->end;
    if (same_pages || adjacent) {
      last->end = std::max(last->end, q->end);
      last->kernel = last->kernel && q->kernel;
    } else {
      ranges[nr] = FaultRange{q->start, q->end, q->write, q->kernel, 0, 0};
      outcomes[nr] = FaultOutcome{};
      ++nr;
    }
    owner[i] = nr - 1;
  }
  // Fault ahead over the 2 MiB blocks a range touches: one round then maps what a sequential
  // kernel would otherwise fault on page by page (the mirror maps only what is cheap to map).
  for (std::size_t k = 0; k < nr; ++k) {
    ranges[k].ahead_start = os::block_down(ranges[k].start);
    ranges[k].ahead_end = os::block_up(ranges[k].end);
  }
  // Recorded before resolving, so that the moves this batch causes follow it in the log.
  if (telemetry::EventLog* log = events_) {
    std::uintptr_t lo = ranges[0].start, hi = ranges[0].end;
    for (std::size_t k = 1; k < nr; ++k) {
      lo = std::min(lo, ranges[k].start);
      hi = std::max(hi, ranges[k].end);
    }
    log->record(EventKind::fault, EventReason::device_fault, static_cast<int>(index_),
                Location::system(), Location::system(), lo, hi - lo);
  }
  resolver_->resolve(index_, ranges, outcomes, nr);
  // A range stops at its first error: requests before it are served, the one that contains it
  // fails, and the ones after it are resolved again on their own.
  for (std::size_t i = 0; i < n; ++i) {
    FaultRequest* r = reqs[i];
    const FaultOutcome& o = outcomes[owner[i]];
    bool merged_read = !r->write && ranges[owner[i]].write;
    if (o.error != 0 && o.error_addr < r->end) {
      if (o.error_addr >= r->start && !merged_read) {
        r->error = o.error;
        r->error_addr = o.error_addr;
        r->over_limit = o.over_limit;
      } else {
        FaultRange single{r->start, r->end, r->write, r->kernel};
        FaultOutcome out{};
        resolver_->resolve(index_, &single, &out, 1);
        r->error = out.error;
        r->error_addr = out.error_addr;
        r->over_limit = out.over_limit;
      }
    }
    r->complete();
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------
void SimDevice::launch(std::size_t threads, std::unique_ptr<detail::KernelBase> kernel,
                       std::function<void(std::exception_ptr)> done) {
  auto* l = new Launch;
  l->kernel = std::move(kernel);
  l->done = std::move(done);
  l->threads = threads;
  const unsigned wanted =
      static_cast<unsigned>(std::min<std::size_t>(nworkers_, std::max<std::size_t>(threads, 1)));
  l->wanted = l->workers_left = wanted;
  {
    std::lock_guard lock(launch_mutex_);
    if (stopping_ || !started_) {
      delete l;
      throw Error(Errc::device_lost, "device " + std::to_string(index_) + " is not running");
    }
    if (queue_.empty()) {
      ++launch_generation_;
      advance_access_epoch();  // a kernel starts
    }
    queue_.push_back(l);
  }
  if (wanted == nworkers_) {
    launch_cv_.notify_all();
  } else {
    for (unsigned i = 0; i < wanted; ++i) launch_cv_.notify_one();
  }
}

void SimDevice::synchronize() {
  base::lock_order::UniqueLock lock(launch_mutex_);
  idle_cv_.wait(lock.get(), [&] { return queue_.empty() && destroying_ == 0; });
  if (pending_error_) {
    std::exception_ptr e = pending_error_;
    pending_error_ = nullptr;
    lock.unlock();
    std::rethrow_exception(e);
  }
}

bool SimDevice::on_worker_thread() const {
  return detail::tls_worker != nullptr && detail::tls_worker->device == this;
}

void SimDevice::worker_main(void* arg) {
  auto* w = static_cast<WorkerContext*>(arg);
  w->device->run_worker(w);
}

void SimDevice::run_worker(WorkerContext* w) {
  detail::tls_worker = w;
  w->tid = os::sys_gettid();
  std::uint64_t done_generation = 0;
  for (;;) {
    Launch* l;
    {
      base::lock_order::UniqueLock lock(launch_mutex_);
      launch_cv_.wait(lock.get(), [&] {
        return stopping_ || (!queue_.empty() && launch_generation_ != done_generation);
      });
      if (stopping_) break;
      l = queue_.front();
      done_generation = launch_generation_;
      // Enough workers on it already: wait for the next launch.
      if (l->joined >= l->wanted) continue;
      ++l->joined;
    }
    // Before any access of the kernel (the shootdown protocol, worker.hpp).
    running_workers_.fetch_add(1, std::memory_order_seq_cst);
    // Threads are handed out in chunks so that workers rarely contend on the counter.
    std::size_t chunk = std::max<std::size_t>(1, l->threads / (std::size_t{nworkers_} * 16));
    if (chunk > 4096) chunk = 4096;
    while (!l->abort.load(std::memory_order_relaxed)) {
      std::size_t first = l->next.fetch_add(chunk, std::memory_order_relaxed);
      if (first >= l->threads) break;
      std::size_t last = std::min(l->threads, first + chunk);
      try {
        l->kernel->run_range(w, first, last, l->threads, l->abort);
      } catch (...) {
        w->active.store(0, std::memory_order_release);
        std::lock_guard lock(launch_mutex_);
        if (!l->error) l->error = std::current_exception();
        l->abort.store(true, std::memory_order_relaxed);
      }
    }
    // After the kernel's last access: a shootdown need not wait for this worker any more.
    running_workers_.fetch_sub(1, std::memory_order_release);
    // Before the kernel counts as done: the next launch reads the counts (Mirror::before_launch).
    flush_in_place_counts(w);
    Launch* finished = nullptr;
    {
      std::lock_guard lock(launch_mutex_);
      if (--l->workers_left == 0) {
        if (l->error && !l->done && !pending_error_) pending_error_ = l->error;
        queue_.pop_front();
        finished = l;
        ++destroying_;
        stats_.kernels.fetch_add(1, std::memory_order_relaxed);
        // Only a next kernel changes what idle workers wait for: waking them for nothing
        // costs each a wake-up and a context switch.
        if (!queue_.empty()) {
          ++launch_generation_;
          advance_access_epoch();  // the next kernel starts
          launch_cv_.notify_all();
        }
      }
    }
    if (finished != nullptr) {
      // The kernel's destructor is the program's code: it runs without the launch lock (it
      // may launch, synchronize or fault); synchronize waits for it all the same, and for
      // the completion callback after it.
      auto done = std::move(finished->done);
      // Only a launch with a completion takes the error here (written under the lock, final by
      // now); both go before the kernel counts as destroyed, so that no reference to the error
      // outlives what synchronize waits for.
      std::exception_ptr error = done ? finished->error : nullptr;
      delete finished;
      if (done) {
        done(std::move(error));
        done = nullptr;
      }
      std::lock_guard lock(launch_mutex_);
      --destroying_;
      idle_cv_.notify_all();
    }
  }
  detail::tls_worker = nullptr;
}

DeviceBackend::ModelInputs SimDevice::model_inputs() const {
  ModelInputs m;
  m.fault_batches = stats_.fault_batches.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < nworkers_; ++i) {
    m.in_place_bytes += __atomic_load_n(&workers_[i]->in_place_bytes, __ATOMIC_RELAXED);
    m.local_bytes += __atomic_load_n(&workers_[i]->local_bytes, __ATOMIC_RELAXED);
  }
  return m;
}

DeviceStats SimDevice::stats() const {
  DeviceStats s;
  s.fault_rounds = stats_.fault_rounds.load();
  s.faults = stats_.faults.load();
  s.fault_batches = stats_.fault_batches.load();
  s.faults_flushed = stats_.faults_flushed.load();
  s.pages_to_device = stats_.pages_to_device.load();
  s.pages_to_system = stats_.pages_to_system.load();
  s.cpu_faults = stats_.cpu_faults.load();
  s.invalidations = stats_.invalidations.load();
  s.kernels = stats_.kernels.load();
  const ModelInputs m = model_inputs();
  s.local_bytes = m.local_bytes;
  s.in_place_bytes = m.in_place_bytes;
  for (unsigned i = 0; i < nworkers_; ++i) {
    s.tlb_hits += __atomic_load_n(&workers_[i]->tlb_hits, __ATOMIC_RELAXED);
    s.tlb_misses += __atomic_load_n(&workers_[i]->tlb_misses, __ATOMIC_RELAXED);
  }
  return s;
}

}  // namespace hetmm::device::sim
