// Layer spirv: includes every layer.
// Internal to the MMU rewrite (mmu_pass.cpp and the mmu_*.cpp files beside it): the IR it
// shares between its parts. The invariants the generated code keeps (J1-J8) are in
// kernel_context.hpp; each function's reasons are at its definition.
#pragma once

#include "device/device_backend.hpp"
#include "spirv/context_ir.hpp"
#include "spirv/kernel_context.hpp"
#include "spirv/passes.hpp"

#include <llvm/Analysis/AssumptionCache.h>
#include <llvm/Analysis/LoopInfo.h>
#include <llvm/Analysis/ScalarEvolution.h>
#include <llvm/Analysis/ScalarEvolutionExpressions.h>
#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/Analysis/TargetTransformInfo.h>
#include <llvm/Analysis/ValueTracking.h>
#include <llvm/ADT/SmallPtrSet.h>
#include <llvm/ADT/Triple.h>
#include <llvm/IR/Dominators.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Operator.h>
#include <llvm/IR/PatternMatch.h>
#include <llvm/Transforms/Utils/BasicBlockUtils.h>
#include <llvm/Transforms/Utils/Cloning.h>
#include <llvm/Transforms/Utils/LoopUtils.h>
#include <llvm/Transforms/Utils/LowerMemIntrinsics.h>
#include <llvm/Transforms/Utils/ScalarEvolutionExpander.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace hetmm::spirv::mmu {

using namespace llvm;
namespace pte = hetmm::device::pte;

struct Runtime {
  FunctionCallee load, store, atomic, refill, range, local_range;
};

// The TLB probe before `b`'s insertion point: whether the access may run in place (system
// memory, J1) or in a device frame (local), and the frame's host address.
struct Probe {
  Value* in_place;    // i1
  Value* local;       // i1
  Value* host;        // i64: the frame address of va when local
  Value* dev_epoch;   // i64: the shootdown epoch the probe saw
  Value* dev_epoch_ptr;
  Value* epoch_ok;    // i1: the TLB holds translations of that epoch
};

// A block entry read for [lo, last] (J2, J4): `covers` when the entry is lo's block's, of
// this epoch, and its run (block_run: first | last << 32, page indices) holds every page of
// [lo, last] (one block); the entry's bits; the run's process addresses, [run_lo, run_lo +
// run_len), for kept answers (J6). In-place entries and runs of frames alike have runs.
struct BlockEntry {
  Value* covers;
  Value* bits;
  Value* block;
  Value* run_lo;
  Value* run_len;
};

// The block-TLB probe (J2), on a page-TLB miss: does va's block entry hold a run of pages
// mapped in place (the whole block, or the part of it a buffer or the heap covers), with the
// needed right in this epoch, covering [lo, last]? Then the access runs in place.
struct InPlaceProbe {
  Value* hit;
  Value* run_lo;
  Value* run_len;
};

// The block-TLB probe for a range in device frames (J4): [lo, last] in one block whose entry
// says its pages are in one run of frames with the needed right (the run: block_run).
struct LocalProbe {
  Value* hit;           // i1: the range lies in a run of frames with the right
  Value* delta;         // i64: frame address - process address there
  Value* not_in_place;  // i1: the block entry says the range is in frames (so not in place)
  Value* in_place;      // i1: the block entry says the range is in place (so not in frames)
  Value* run_lo;        // i64: where hit, the process addresses the run covers: [run_lo,
  Value* run_len;       //      run_lo + run_len), all at `delta`
};

// The page TLB's entry for [lo, last] when both lie in one page: hit when it holds that page in
// this epoch with (bits & mask) == want; delta = frame address - process address there.
struct PageEntry {
  Value* hit;
  Value* delta;
  Value* same;  // i1: the entry holds that page in this epoch
  Value* bits;  // i64: its PTE
};

// A run of pages an access or a check found in its block entry, kept (J6): process addresses
// [lo, lo + len), at `delta` for a run of frames. A probed access of a held loop keeps the run
// of frames its last probe found: while the loop holds `active`, the worker's block entries are
// those of the published epoch (J5), so the run stays as the entry said; its next access in the
// run is a compare. Emptied (len 0) at every entry of the loop.
struct KeptRun {
  AllocaInst* lo;
  AllocaInst* len;
  AllocaInst* delta;
};

// A probed access outside held loops keeps the run of frames its last probe found, with the
// epoch it found it in (rewrite): valid while the epoch has not moved.
struct KeptFrames {
  KeptRun run;
  AllocaInst* epoch;  // i64; ~0 (never an epoch) until a run is kept
};

// A range checked for the device-frame version of a loop: the access, its range (expanded in the
// in-place check's block, which dominates what follows) and whether it writes.
struct LocalRange {
  std::vector<Instruction*> insts;  // the accesses the range covers
  Value* lo;
  Value* hi;
  bool write;
  bool invariant = false;  // the same range at every entry of the loop (its parent's invariant)
  const SCEV* lo_s = nullptr;  // lo and hi before expansion (expand_bounds)
  const SCEV* hi_s = nullptr;
  Value* skip = nullptr;  // i1: the accesses do not run in this loop entry (skip_terms)
};

// A loop entered again and again over the same range (the centroids of k-means, a filter's
// taps: invariant in the enclosing work-item loop) keeps the last passing answer of its check in
// the function's frame, with the epoch it was found in: within one epoch nothing invalidated
// (a page's residency or a frame changes only with an invalidation, which bumps the epoch), so
// the answer holds, and the check is a load and a compare. Only passing answers are kept: a
// range may become mappable without an invalidation.
struct CheckCache {
  AllocaInst* epoch;   // i64: the epoch of the kept answer; ~0 (never an epoch) when none
  AllocaInst* lo;      // i64: the range it is for (an invariant of the parent loop may still
  AllocaInst* hi;      //      change with the loop around that: the next row of a matmul)
  AllocaInst* answer;  // i64: the answer (in place: 1; frames: the delta)
};

// A gather's address, `base[ext(idx)]`: the element's GEP (one index), the extension (zext,
// sext or none) and the index's load, a plain load in loop l.
struct GatherIndex {
  GetElementPtrInst* gep;
  CastInst* ext;
  LoadInst* load;
};

// A gather `base[idx[i]]` keeps its probe, and its loads, each a likely cache miss behind the
// probe's branches, barely overlap (5x the bare loop). In the in-place copy of the loop (J1:
// the ranges were found in place), the index a few iterations ahead is read (clamped to the
// index's checked range, so the read stays in it) and its element prefetched: a prefetch never
// faults, and a stale or foreign address costs nothing but the prefetch.
// In the frame version (J5: `frames`), the index ahead is read on its frame (its range's delta)
// and the element's frame found from its block entry, both only while the loop holds `active`
// (after an escape a frame may be gone).
struct FramePrefetch {
  Value* ctx;
  AllocaInst* held;
  std::function<Value*(Instruction*)> delta_of;  // a ranged access's delta in the clone, or null
  const KeptRun* kept = nullptr;                 // the gathered access's kept run (rewrite_held)
};

// An access of a frame loop that also has probed accesses (J5), rewritten once every loop is
// versioned (rewrite_held).
struct HeldAccess {
  Instruction* inst;  // in the clone
  Value* delta;       // a ranged access: its range's delta; a probed one: null
  AllocaInst* held;   // i1: the loop still holds `active` (J5)
  KeptRun kept{};     // a probed access's run (J5)
};

// The block entries' answer for [lo, last] in device frames (J4): its part in lo's block, and
// the part that crosses into the next block (a row of a matrix that does not start at a block),
// each within its block's run. One delta serves both where they are equal: a run of frames
// across chunks that lie side by side, which frame placement arranges
// (device/sim/frame_pool.hpp). Emitted at b, which is left after it.
struct FrameRangeProbe {
  Value* both;        // i1: each part lies in a run of frames the worker knows, with the right
  Value* same_delta;  // i1: at one delta
  Value* delta;       // i64: the first part's delta
  Value* in_place;    // i1: lo's block entry says its part is in place (so not in frames)
  Value* run_lo;      // i64: where both at one delta, the process addresses of the run(s) of
  Value* run_end;     //      frames that hold [lo, last]: [run_lo, run_end), all at `delta`
};

// A loop's checks once for the loop around it (the nest check). A loop's own checks run at each
// of its entries: for a work-group's x loop, once per row of work-items, so a 64x4 group of a
// stencil paid them 4 times and a 16x16 tile 16 times, often as much as the row's work. Where
// every range of the loop is affine (or invariant) in the enclosing loop too, the union of its
// values over that loop's iterations is checked once, in that loop's preheader: in place, and
// where not, in device frames. Each entry of the inner loop then tests the answer (and its own
// no-wrap predicate) and checks its own range only where the nest check failed.
// An answer holds for the nest as a row's does for its row: an in-place answer may go stale,
// which J1 tolerates, and a frame answer is used only under a grace period published with the
// epoch read before the nest check read any PTE (J4): an entry that finds the epoch moved runs
// probed.
struct NestCheck {
  Value* in_place = nullptr;    // i1: every range in place (and the nest's no-wrap predicate)
  Value* frames = nullptr;      // i1: every range in one run of frames (null: not checked)
  Value* epoch = nullptr;       // i64: the epoch read before the checks (acquire)
  std::vector<Value*> deltas;   // per range group: its run's delta where `frames`
  Value* gathers_ok = nullptr;  // i1: every J7 gather of the loop in place for the nest
};

// What version_local made: the frame clone of a loop and what its accesses run on.
struct FrameVersion {
  ValueToValueMapTy vmap;          // the loop's values -> the clone's
  std::vector<Value*> deltas;      // per range (group): its run's delta in the clone
  Value* epoch = nullptr;          // i64: the epoch whose grace period the clone holds
  AllocaInst* held = nullptr;      // i1 (J5), with probed accesses only
  std::vector<KeptRun> kept_runs;  // per probed access (J5)
};

struct StridedExit {
  const SCEVAddRecExpr* iv;  // D, in its own type
  const SCEV* d0;            // D's first value, widened to i64 as the compare reads it
  const SCEV* step;          // s, widened
  const SCEV* dmax;          // n - 1 + s, in i64
  const SCEV* top;           // D's type's greatest value (signed or not, as compared), in i64
  bool is_signed;
  SmallVector<const SCEVPredicate*, 4> assumed;  // checked at the loop's entry
};

// The loop-invariant conditions under which an access's block never runs in a loop entry: each
// term (v, negate) skips it when v (or !v) holds. The boundary branch of a stencil, `if (x == 0
// || y == 0 || z == 0 || ...) { out[i] = in[i]; return; }`, guards its taps with the terms y
// == 0, z == 0, ... of the x loop: in a boundary row no tap runs, so their range (which reaches a
// plane before the array) needs no check there. Found on the dominating branches inside the
// loop whose edge to the access is the only way in: an or-chain taken false or an and-chain
// taken true, whose invariant operands decide it for the whole entry.
using Guard = std::vector<std::pair<Value*, bool>>;

// The ranges a loop's checks cover: the accesses of one kind (read or write) through one base
// pointer share one check over the union of their ranges, so that a 3x3 convolution checks its
// input once, not once per tap. Their distances are rarely constants to SCEV (32-bit indices
// sign-extended, without the no-wrap flags SPIR-V 1.0 cannot carry), so the union is computed at
// run time (umin / umax). The cost: accesses far apart in one array (a[i] and a[i + n/2]) check
// a union that can span blocks whose frames are not one run (inline, the frame check takes two
// adjacent blocks; hetmm_jit_local_range up to 64 at one delta), and run probed where two
// checks would each have passed.
struct AccessRange {
  Instruction* inst;
  const SCEV* first;  // the address at the first and at the last iteration (i64)
  const SCEV* last;
  std::uint64_t bytes;
  const SCEV* base;  // the pointer the address is based on (ScalarEvolution::getPointerBase)
  bool affine = true;  // else a butterfly's partner (xor_index_range): checked on its own, as
                       // its union with i's range may span the array
  Guard skip{};        // where the access never runs (skip_terms): its range needs no check
};

struct RangeGroup {
  const SCEV* lo;
  const SCEV* hi;
  bool write;
  std::vector<Instruction*> insts;
  SmallVector<const SCEV*, 8> los, his;  // the terms of lo's umin and hi's umax
  Guard skip{};                          // its accesses' (one guard a group)
};

// J7: a gather whose index is a ranged load of the same loop (spmv's x[cols[j]], a lookup
// src[idx[i]]) keeps its probe in the in-place copy, its addresses being data. Where the loop is
// short and nothing in it can change the index, the in-place copy first scans the index's range
// for its smallest and largest value (a loop LLVM vectorises): every element the gather reads
// lies in [&base[min], &base[max]], one range check, and a copy of its own runs with the
// gather as a plain load (and unrolls, or vectorises into gathers, as PoCL's does). The scan
// reads the index where that copy will, in place (its checks passed: J1); the loop has no
// atomics and no calls, and its stores lie outside the index's range (checked with the scan).
// A writer racing with the launch (another group, the host) is a data race in OpenCL's model;
// an index it changed still lands in process memory, where a stale address faults home or fails
// and recovers (J1), as any in-place access does.
struct ScanPlan {
  Instruction* inst;  // the gather (a load)
  GatherIndex index;
  const SCEVAddRecExpr* at;  // the index's address in the loop
  // The index as the GEP reads it: sign-extended, or as it is (GEP indices are signed).
  bool signed_index() const { return index.ext == nullptr || isa<SExtInst>(index.ext); }
};

// J8: a work-item loop around kernel loops (spmv's rows around a row's nonzeros, k-means' points
// around the centroids) touches some arrays directly, once per work-item (row_ptr[r], y[r],
// points[i]), and probed each such access. Where the address is affine in the work-item loop,
// the range a group touches is checked once in the loop's preheader, in place (J1), and each
// access branches on that answer. The loads among them that bound a kernel loop (a CSR row's
// first and last nonzero) are scanned there on demand for their least and greatest value over
// the group (scan_item_load), so that the nest check covers the kernel loop's ranges for the
// whole group although they depend on data.
// A work-item loop's direct access whose group lies in device frames (J8 on device): the
// group's delta, found in the loop's preheader in `epoch` before any publish; valid where `ok`.
// The access publishes that epoch, re-checks it and runs at the delta (rewrite), unprobed.
struct ItemFrames {
  Value* ok;     // i1
  Value* delta;  // i64
  Value* epoch;  // i64
};

struct ItemLoop {
  Loop* loop = nullptr;
  std::unique_ptr<PredicatedScalarEvolution> pse;
  std::vector<AccessRange> ranges;
  Value* ok = nullptr;  // in the preheader: every range in place
  struct Scan {
    LoadInst* load;
    bool is_signed;
    Value* min;
    Value* max;
  };
  std::vector<Scan> scans;
};

// The indices J7 scans at a loop's entry: one scan per index load and signedness (x[cols[j]]
// and y[cols[j]] share one), over the loop's iterations, where the loop is short and none of
// its stores lands in an index's range.
struct ScannedIndex {
  LoadInst* load;
  bool is_signed;          // sext, or a GEP index used as it is (GEPs sign-extend)
  Value* first = nullptr;  // i64: the index's process address in the first iteration
  std::int64_t step = 0;
  Value* min = nullptr;    // the scan's answers
  Value* max = nullptr;
};

struct IndexScans {
  Value* count = nullptr;  // i64: the loop's iterations
  Value* go = nullptr;     // i1: at most kScanMax, and no store into an index's range
  std::vector<ScannedIndex> indices;
  std::vector<std::size_t> index_of;  // per plan
};

// mmu_probes.cpp: the inline probes and kept runs.
bool device_space(unsigned as);
bool needs_mmu(Value* ptr);
Runtime declare_runtime(Module& m);
BlockEntry read_block_entry(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, Value* epoch_ok);
InPlaceProbe emit_block_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, bool write,
                              Value* epoch_ok);
LocalProbe emit_local_block_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, bool write,
                                  Value* epoch_ok);
void emit_publish(IRBuilder<>& b, Value* value, Value* active);
Probe emit_epochs(IRBuilder<>& b, Value* ctx,
                  AtomicOrdering order = AtomicOrdering::Monotonic);
PageEntry emit_page_entry(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, std::uint64_t want,
                          std::uint64_t mask, Value* epoch_ok);
void emit_page_probe(IRBuilder<>& b, Value* ctx, Value* va, std::uint64_t bytes, bool write,
                     unsigned as, Probe& p);
Value* ctx_of(Function& f);
AllocaInst* entry_alloca(Function* f, Type* t);
AllocaInst* entry_i64(Function* f, std::uint64_t value);
Value* to_i64(IRBuilder<>& b, Value* v, const DataLayout& dl);
Value* from_i64(IRBuilder<>& b, Value* v, Type* t, const DataLayout& dl);
std::uint32_t atomic_op(AtomicRMWInst::BinOp op);
KeptRun kept_in_place(Function* f);
Value* in_kept_run(IRBuilder<>& b, Value* lo, Value* last, const KeptRun& kept);
void keep_joined(IRBuilder<>& b, const KeptRun& kept, Value* run_lo, Value* run_len,
                 Value* delta);
void keep_run(IRBuilder<>& b, const KeptRun& kept, Value* hit, Value* run_lo, Value* run_len);
std::uint64_t probe_span(const Instruction* inst, std::uint64_t bytes);
Value* emit_known_local(IRBuilder<>& b, Value* ctx, Value* va, Value* epoch_ok);
Value* range_in_kept_run(IRBuilder<>& b, Value* lo, Value* hi, const KeptRun& kept);

// mmu_pass.cpp: one access rewritten.
void rewrite(Instruction* inst, Value* ptr, Value* range_ok, const Runtime& rt,
             const DataLayout& dl, bool keep, const ItemFrames* item = nullptr);
void expand_mem_intrinsics(Function& f, const TargetTransformInfo& tti);

// mmu_loop_checks.cpp: loop range checks and versions.
void register_one_block_loop(BasicBlock* body, BasicBlock* done, Loop* parent, LoopInfo& li);
bool version_loop(Loop* l, Value* ok, DominatorTree& dt, LoopInfo& li, ScalarEvolution& se,
                  ValueToValueMapTy& vmap);
Value* emit_range_check(Instruction* where, Value* ctx, Value* epoch_ok, Value* lo, Value* hi,
                        bool write, Value* ok, const Runtime& rt, DominatorTree& dt,
                        LoopInfo& li, const KeptRun* kept_run = nullptr,
                        bool keep_called = false);
Value* unless_skipped(Instruction* at, Value* skip, DominatorTree& dt, LoopInfo& li,
                      const std::function<Value*(Instruction*)>& check);
bool calls_only_intrinsics(Loop* l);
void expand_bounds(std::vector<LocalRange>& ranges, ScalarEvolution& se, LoopInfo& li,
                   Instruction* at);
CheckCache make_check_cache(Function* f);
Value* cached_check(Instruction* where, Value* epoch, Value* lo, Value* hi, DominatorTree& dt,
                    LoopInfo& li, const std::function<Value*(Instruction*)>& compute);
Value* through_addrspace_casts(Value* p);
std::vector<RangeGroup> group_ranges(ScalarEvolution& se, const std::vector<AccessRange>& ranges);
Value* emit_in_place_union(Instruction* where, Value* ctx, const Probe& epochs,
                           const std::vector<LocalRange>& ranges, Value* ok, const Runtime& rt,
                           DominatorTree& dt, LoopInfo& li, const char* name);
std::optional<NestCheck> nest_check(Loop* l, const std::vector<RangeGroup>& groups,
                                    bool frames_ok, Value* ctx, const Runtime& rt,
                                    ScalarEvolution& se, DominatorTree& dt, LoopInfo& li,
                                    SCEVExpander& expander, ItemLoop* item,
                                    const std::vector<ScanPlan>& scans);
std::map<Instruction*, Value*> range_checks(Function& f, const Runtime& rt,
                                            const std::vector<std::pair<Instruction*, Value*>>& work,
                                            std::vector<std::pair<Instruction*, Value*>>& cloned,
                                            std::set<Instruction*>& cold,
                                            std::map<Instruction*, ItemFrames>& item_frames);

// mmu_index_ranges.cpp: index ranges beyond affine recurrences.
const SCEV* same_scev_phi(ScalarEvolution& se, Value* v);
std::pair<const SCEV*, const SCEV*> xor_index_range(Value* ptr, Loop* l, const SCEV* btc,
                                                    ScalarEvolution& se,
                                                    SCEVExpander& expander);
const SCEV* widen_as_compared(ScalarEvolution& se, const SCEV* v, Type* to, bool is_signed);
std::optional<StridedExit> strided_exit(Loop* l, ScalarEvolution& se);
void narrow_counters(Loop* l);
std::pair<const SCEV*, const SCEV*> strided_range(const StridedExit& e, const SCEV* at, Loop* l,
                                                  ScalarEvolution& se,
                                                  SmallVectorImpl<const SCEVPredicate*>& assumed);
std::pair<const SCEV*, const SCEV*> quotient_index_range(const SCEV* at, Loop* l,
                                                         const SCEV* btc, ScalarEvolution& se,
                                                         SCEVExpander& expander,
                                                         PredicatedScalarEvolution& pse);
const SCEV* address_scev(ScalarEvolution& se, Value* ptr);

// mmu_guards.cpp: guards.
Guard skip_terms(Instruction* inst, Loop* l, DominatorTree& dt);
// Keeps each term's first place: the order in which the IR meets them, not their addresses, so
// that a kernel compiles to the same code every time.
void drop_repeated_terms(Guard& g);
Value* emit_skip(Instruction* at, const Guard& g);

// mmu_frames.cpp: loops on device frames (J4, J5).
FrameRangeProbe emit_frame_run_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last,
                                     bool write, DominatorTree& dt, LoopInfo& li);
FrameRangeProbe emit_frame_range_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last,
                                       bool write, Value* epoch_ok, DominatorTree& dt,
                                       LoopInfo& li);
Value* frame_delta(IRBuilder<>& b, const LocalRange& r, Value* ctx, Value* epoch_ok,
                   const Runtime& rt, DominatorTree& dt, LoopInfo& li);
Value* kept_frame_delta(IRBuilder<>& b, const LocalRange& r, Value* ctx, Value* epoch,
                        Value* epoch_ok, const Runtime& rt, DominatorTree& dt, LoopInfo& li);
bool version_local(Loop* l, Value* ctx, Value* pred_ok, std::vector<LocalRange> ranges,
                   const NestCheck* nest,
                   const std::vector<std::pair<Instruction*, Value*>>& probed,
                   std::vector<HeldAccess>& held_out, FrameVersion& out, const Runtime& rt,
                   DominatorTree& dt, LoopInfo& li, ScalarEvolution& se);
Value* range_delta(const FrameVersion& fv, const std::vector<LocalRange>& ranges,
                   const Instruction* inst);
void rewrite_held(const HeldAccess& h, const DataLayout& dl,
                  std::vector<std::pair<Instruction*, Value*>>& probed_out);

// mmu_gathers.cpp: gathers (J7, J8).
std::optional<GatherIndex> gather_index(Value* ptr, Loop* l);
void prefetch_gathered(Instruction* inst, Value* ptr, Loop* l,
                       const std::vector<std::pair<Instruction*, Value*>>& probed,
                       ValueToValueMapTy& vmap, PredicatedScalarEvolution& pse,
                       ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt,
                       LoopInfo& li, const FramePrefetch* frames = nullptr);
std::pair<Value*, Value*> emit_scan(Instruction* then, Value* first, std::int64_t step,
                                    Value* count, LoadInst* like, bool is_signed, LoopInfo& li);
std::pair<Value*, Value*> gathered_range(IRBuilder<>& b, const ScanPlan& p, Value* min, Value* max);
Value* check_gathered(Instruction* at, const ScanPlan& p, Value* min, Value* max, Value* ok,
                      Value* ctx, Value* epoch_ok, const Runtime& rt, DominatorTree& dt,
                      LoopInfo& li);
std::vector<ScanPlan> plan_scans(Loop* l, const std::vector<std::pair<Instruction*, Value*>>& probed,
                                 const std::vector<AccessRange>& ranges,
                                 PredicatedScalarEvolution& pse, ScalarEvolution& se);
std::map<Loop*, ItemLoop> item_loop_checks(
    const std::vector<std::pair<Instruction*, Value*>>& work, Value* ctx, const Runtime& rt,
    ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt, LoopInfo& li,
    std::map<Instruction*, Value*>& checks, std::map<Instruction*, ItemFrames>& item_frames);
std::optional<std::pair<Value*, Value*>> scan_item_load(ItemLoop& item, LoadInst* load,
                                                        bool is_signed, ScalarEvolution& se,
                                                        SCEVExpander& expander,
                                                        DominatorTree& dt, LoopInfo& li);
Value* nest_gathers(const NestCheck& n, const std::vector<RangeGroup>& groups,
                    const std::vector<LocalRange>& spans, const std::vector<ScanPlan>& scans,
                    Value* ctx, const Runtime& rt, const Probe& epochs, DominatorTree& dt,
                    LoopInfo& li);
bool scans_expandable(Instruction* at, const std::vector<ScanPlan>& plans,
                      const std::vector<AccessRange>& ranges, PredicatedScalarEvolution& pse,
                      SCEVExpander& expander);
IndexScans plan_index_scans(Instruction* at, const std::vector<ScanPlan>& plans,
                            const std::vector<AccessRange>& ranges, PredicatedScalarEvolution& pse,
                            ScalarEvolution& se, SCEVExpander& expander);
Value* scan_gathers(Loop* fast, const std::vector<ScanPlan>& plans,
                    const std::vector<AccessRange>& ranges, Value* ctx, const Runtime& rt,
                    PredicatedScalarEvolution& pse, ScalarEvolution& se, SCEVExpander& expander,
                    DominatorTree& dt, LoopInfo& li, Value* nest_ok);
void scan_frame_gathers(FrameVersion& fv, Loop* l, const std::vector<ScanPlan>& plans,
                        const std::vector<LocalRange>& local, const std::vector<AccessRange>& ranges,
                        Value* ctx, PredicatedScalarEvolution& pse, ScalarEvolution& se,
                        SCEVExpander& expander, DominatorTree& dt, LoopInfo& li);

}  // namespace hetmm::spirv::mmu
