// Layer device: includes base, os, telemetry.
// `sim`: the software device. Its own memory (FramePool), a page table keyed by process virtual
// address, per-worker TLBs with shootdown, worker threads that run kernels, and a replayable
// fault buffer drained in batches by a service thread.
#pragma once

#include "os/arena.hpp"
#include "os/asymmetric_fence.hpp"

#include "base/fault_injector.hpp"
#include "base/lock_order.hpp"
#include "device/device_backend.hpp"
#include "device/sim/fault_buffer.hpp"
#include "device/sim/frame_pool.hpp"
#include "device/sim/page_table.hpp"
#include "device/sim/worker.hpp"
#include "os/os_thread.hpp"

#include <hetmm/hetmm.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

namespace hetmm::telemetry {
class EventLog;
}

namespace hetmm::device::sim {

struct AtomicStats {
  std::atomic<std::uint64_t> fault_rounds{0}, faults{0}, fault_batches{0}, faults_flushed{0},
      pages_to_device{0}, pages_to_system{0}, cpu_faults{0}, invalidations{0}, kernels{0};
};

class SimDevice final : public DeviceBackend, public os::RuntimeAllocated {
 public:
  // movable_memory: device memory takes whole blocks by remapping (UFFDIO_MOVE) where the
  // kernel allows it; the runtime asks for it when its tracker's userfaultfd can move pages back.
  SimDevice(std::size_t index, std::size_t memory_bytes, unsigned workers,
            FaultResolver* resolver, base::FaultInjector* injector, bool movable_memory = false);
  ~SimDevice() override;

  void start();
  void stop();
  void abandon_threads();  // in a forked child: the threads do not exist
  // Telemetry: fault batches are recorded there (null: off). Set before start().
  void set_event_log(telemetry::EventLog* log) { events_ = log; }

  // DeviceBackend
  std::size_t index() const override { return index_; }
  std::size_t alloc_frames(std::size_t n, std::uint32_t* out) override {
    if (injector_->fire(base::FaultInjector::frame_alloc)) return 0;
    return pool_.alloc(n, out);
  }
  std::size_t alloc_frames_placed(std::size_t n, std::uint32_t* out, std::size_t colour,
                                  std::uint32_t near) override {
    if (injector_->fire(base::FaultInjector::frame_alloc)) return 0;
    return pool_.alloc_placed(n, out, colour, near);
  }
  void free_frame(std::uint32_t frame) override { pool_.free(frame); }
  std::size_t capacity_bytes() const override { return pool_.capacity_bytes(); }
  std::size_t used_bytes() const override { return pool_.used_bytes(); }
  void release_memory() override { pool_.release(); }
  void* frame_host_address(std::uint32_t frame) override { return pool_.address(frame); }
  bool movable_memory() const override { return pool_.movable(); }
  bool alloc_block_frames(std::uint32_t* first, std::uint32_t near) override {
    if (injector_->fire(base::FaultInjector::frame_alloc)) return false;
    return pool_.alloc_chunk(first, near);
  }
  long move_block_in(std::uint32_t first, const void* src) override {
    // An injected copy-engine failure stops the move half way, as the kernel does at a page it
    // cannot move: the mirror copies the rest (and gives up on it when the copy fails too).
    bool half = injector_->fire(base::FaultInjector::copy);
    long moved =
        pool_.move_into_chunk(first, src, half ? FramePool::kChunkSize / 2 : FramePool::kChunkSize);
    // The kernel's count of a move that failed part way can fall short of what it moved.
    if (moved == static_cast<long>(FramePool::kChunkSize) &&
        injector_->fire(base::FaultInjector::move_miscount))
      return moved / 2;
    return moved;
  }
  void block_moved_out(std::uint32_t first) override { pool_.chunk_emptied(first); }
  bool copy_to_frames(const std::uint32_t* frames, std::size_t n, const void* src) override;
  bool copy_from_frames(void* dst, const std::uint32_t* frames, std::size_t n) override;
  void zero_frames(const std::uint32_t* frames, std::size_t n) override;
  void set_pte(std::uintptr_t va, std::uint64_t entry) override { pt_.set(va, entry); }
  std::uint64_t get_pte(std::uintptr_t va) const override { return pt_.get(va); }
  std::size_t mapped_pages() const override { return pt_.valid(); }
  void invalidate(std::uintptr_t start, std::uintptr_t end) override;
  std::uint32_t access_epoch() const override {
    return access_epoch_.load(std::memory_order_relaxed);
  }
  std::uint32_t touched_epoch(std::uintptr_t va) const override { return pt_.touched(va); }
  void advance_access_epoch() override;
  ModelInputs model_inputs() const override;
  std::uint64_t take_in_place_traffic(std::uintptr_t va) override {
    return pt_.take_in_place_traffic(va);
  }
  // A worker's in-place access of n bytes at va, for the access counters (worker.hpp).
  void count_in_place(detail::WorkerContext* w, std::uintptr_t va, std::size_t n) {
    std::uint64_t block = va >> os::kBlockShift;
    auto& c = w->in_place_counts[block & (detail::WorkerContext::kCounterSlots - 1)];
    if (c.block != block) {
      if (c.bytes != 0) pt_.add_in_place_traffic(c.block << os::kBlockShift, c.bytes);
      c.block = block;
      c.bytes = 0;
    }
    c.bytes += n;
  }
  void flush_in_place_counts(detail::WorkerContext* w) {
    for (auto& c : w->in_place_counts) {
      if (c.bytes != 0) pt_.add_in_place_traffic(c.block << os::kBlockShift, c.bytes);
      c.block = ~std::uint64_t{0};
      c.bytes = 0;
    }
  }
  // A worker's page-table walk on a TLB miss (records the block's use in this epoch).
  std::uint64_t walk(std::uintptr_t va) const {
    return pt_.walk(va, access_epoch_.load(std::memory_order_relaxed));
  }
  // The run of device frames around va's page in its block (PageTable::block_local_run).
  std::uint64_t block_local_run(std::uintptr_t va, std::size_t* first, std::size_t* last) const {
    return pt_.block_local_run(va, access_epoch_.load(std::memory_order_relaxed), first, last);
  }
  // The run of in-place pages with `need` around va's page (PageTable::block_in_place_run).
  std::uint64_t block_in_place_run(std::uintptr_t va, std::uint64_t need, std::size_t* first,
                                   std::size_t* last) const {
    return pt_.block_in_place_run(va, access_epoch_.load(std::memory_order_relaxed), need, first,
                                  last);
  }

  // Fault source: posts a request and waits for the service thread to complete it.
  void fault_and_wait(FaultRequest* r);
  std::size_t queued_faults() const { return faults_.queued(); }  // posted, not yet in a batch

  // Kernels.
  // `done` (optional) runs on the worker that finishes the kernel, after its destructor, and
  // takes the kernel's error instead of synchronize.
  void launch(std::size_t threads, std::unique_ptr<detail::KernelBase> kernel,
              std::function<void(std::exception_ptr)> done = {});
  void synchronize();
  bool on_worker_thread() const;

  DeviceStats stats() const;
  base::FaultInjector& injector() { return *injector_; }
  AtomicStats& counters() { return stats_; }
  std::uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  const std::atomic<std::uint64_t>& epoch_ref() const { return epoch_; }
  // How workers publish `active` (worker.hpp): fixed for the process (os::asymmetric_fences).
  bool asymmetric_fences() const { return asymmetric_; }

 private:
  struct Launch {
    std::unique_ptr<detail::KernelBase> kernel;
    std::size_t threads = 0;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> abort{false};
    // A launch of fewer threads than the device has workers takes only that many (each worker
    // that joins must check out before the kernel counts as done): a one-item kernel then costs
    // one worker's wake-up, not all of them. Under launch_mutex_.
    unsigned wanted = 0;        // workers that take part
    unsigned joined = 0;        // of them, those that took it
    unsigned workers_left = 0;  // of them, those not done yet
    std::exception_ptr error;   // under launch_mutex_
    std::function<void(std::exception_ptr)> done;
  };
  static void worker_main(void* arg);
  static void service_main(void* arg);
  void run_worker(detail::WorkerContext* w);
  void run_service();
  void serve_batch(FaultRequest** reqs, std::size_t n);
  std::size_t flush(FaultRequest** keep);  // keep: kMaxBatch slots; returns how many it kept
  bool served(const FaultRequest& r) const;

  std::size_t index_;
  FaultResolver* resolver_;
  base::FaultInjector* injector_;
  telemetry::EventLog* events_ = nullptr;
  FramePool pool_;
  PageTable pt_;
  FaultBuffer faults_;
  alignas(64) std::atomic<std::uint64_t> epoch_{1};
  // Workers taking part in a kernel (joined, not yet checked out): a shootdown with none skips
  // the heavy fence and the wait. Its own cache line: every join and check-out writes it.
  alignas(64) std::atomic<unsigned> running_workers_{0};
  const bool asymmetric_ = os::asymmetric_fences();
  std::atomic<std::uint32_t> access_epoch_{1};
  detail::WorkerContext** workers_;
  unsigned nworkers_;
  os::OsThread service_;
  AtomicStats stats_;

  // Launch queue: kernels run in order, one at a time, on all workers.
  base::lock_order::RankedMutex<base::lock_order::Rank::launch> launch_mutex_;  // lock order: launch
  std::condition_variable launch_cv_;   // workers wait for work
  std::condition_variable idle_cv_;     // synchronize waits for an empty queue
  std::deque<Launch*> queue_;
  std::uint64_t launch_generation_ = 0;  // bumped when the head launch changes
  unsigned destroying_ = 0;  // finished kernels whose destructors are running
  std::exception_ptr pending_error_;
  bool stopping_ = false;
  bool started_ = false;
};

}  // namespace hetmm::device::sim
