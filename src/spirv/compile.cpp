// SPIR-V to running code: validate, translate (LLVMSPIRVLib), link the built-in library,
// retarget to the host, the kernel ABI and MMU passes, optimise (O3, host CPU), JIT (ORC LLJIT).
#include "os/asymmetric_fence.hpp"
#include "spirv/builtins/builtins_blob.hpp"
#include "spirv/compiled_program.hpp"
#include "spirv/kernel_cache.hpp"
#include "spirv/passes.hpp"
#include "spirv/validate.hpp"

#include "hetmm/hetmm.hpp"

#include <LLVMSPIRVLib/LLVMSPIRVLib.h>
#include <llvm/Analysis/ValueTracking.h>
#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/JITEventListener.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/RTDyldObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/SectionMemoryManager.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DiagnosticHandler.h>
#include <llvm/IR/DiagnosticInfo.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Linker/Linker.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <dlfcn.h>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

namespace hetmm::spirv {
namespace {

using namespace llvm;

[[noreturn]] void fail(Errc code, const std::string& what) { throw Error(code, what); }

std::string message(llvm::Error err) {
  std::string s;
  handleAllErrors(std::move(err), [&](const ErrorInfoBase& e) { s += e.message(); });
  return s;
}

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    InitializeNativeTarget();
    InitializeNativeTargetAsmPrinter();
  });
}

struct BuildOptions {
  bool mmu = true;
  OptimizationLevel level = OptimizationLevel::O3;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> spec_constants;  // -spec-const=ID:VALUE
};

BuildOptions parse_options(std::string_view text) {
  BuildOptions o;
  std::istringstream in{std::string(text)};
  std::string opt;
  while (in >> opt) {
    if (opt.rfind("-spec-const=", 0) == 0) {
      // -spec-const=ID:VALUE (decimal or 0x hex): a SPIR-V specialization constant's value.
      const char* p = opt.c_str() + 12;
      char* end = nullptr;
      unsigned long long id = std::strtoull(p, &end, 0);
      if (end == p || *end != ':')
        fail(Errc::invalid_argument, "build options: '" + opt + "': expected -spec-const=ID:VALUE");
      const char* v = end + 1;
      unsigned long long value = std::strtoull(v, &end, 0);
      if (end == v || *end != '\0' || id > 0xffffffffull)
        fail(Errc::invalid_argument, "build options: '" + opt + "': expected -spec-const=ID:VALUE");
      o.spec_constants.emplace_back(static_cast<std::uint32_t>(id), value);
      continue;
    }
    if (opt == "-mmu=off") o.mmu = false;
    else if (opt == "-mmu=on") o.mmu = true;
    else if (opt == "-O0") o.level = OptimizationLevel::O0;
    else if (opt == "-O1") o.level = OptimizationLevel::O1;
    else if (opt == "-O2") o.level = OptimizationLevel::O2;
    else if (opt == "-O3") o.level = OptimizationLevel::O3;
    else if (opt.rfind("-cl-", 0) == 0 || opt == "-w" || opt == "-Werror") continue;  // OpenCL's, for the front end
    else fail(Errc::invalid_argument, "build options: unknown option '" + opt +
                                          "' (hetmm takes -mmu=on|off, -O0..-O3, -spec-const=ID:VALUE and OpenCL's -cl-*)");
  }
  return o;
}

std::unique_ptr<Module> read_module(LLVMContext& c, const std::uint32_t* words, std::size_t count,
                                    const BuildOptions& options) {
  std::string bytes(reinterpret_cast<const char*>(words), count * 4);
  std::istringstream in(bytes);
  SPIRV::TranslatorOpts opts;
  opts.enableAllExtensions();
  opts.setDesiredBIsRepresentation(SPIRV::BIsRepresentation::OpenCL12);
  for (const auto& [id, value] : options.spec_constants) opts.setSpecConst(id, value);
  Module* m = nullptr;
  std::string err;
  if (!readSpirv(c, opts, in, m, err))
    fail(Errc::invalid_argument, "SPIR-V module: cannot translate: " + err);
  return std::unique_ptr<Module>(m);
}

}  // namespace

std::vector<std::pair<std::uint32_t, std::uint32_t>> spec_constants(const std::uint32_t* words,
                                                                      std::size_t count) {
  std::string bytes(reinterpret_cast<const char*>(words), count * 4);
  std::istringstream in(bytes);
  std::vector<SpecConstInfoTy> info;
  if (!getSpecConstInfo(in, info)) return {};
  return {info.begin(), info.end()};
}

SourceSignatures source_signatures(const std::string& bitcode) {
  SourceSignatures out;
  LLVMContext c;
  auto m = parseBitcodeFile(MemoryBufferRef(StringRef(bitcode), "kernel.bc"), c);
  if (!m) {
    consumeError(m.takeError());
    return out;  // no signatures: the SPIR-V's own types are used
  }
  auto strings = [](MDNode* md, unsigned i) -> std::string {
    if (md != nullptr && i < md->getNumOperands())
      if (auto* s = dyn_cast<MDString>(md->getOperand(i))) return s->getString().str();
    return "";
  };
  for (Function& f : **m) {
    MDNode* types = f.getMetadata("kernel_arg_type");
    if (types == nullptr) continue;
    MDNode* quals = f.getMetadata("kernel_arg_type_qual");
    std::vector<SourceArg>& args = out[f.getName().str()];
    for (unsigned i = 0; i < types->getNumOperands(); ++i)
      args.push_back({strings(types, i), strings(quals, i)});
  }
  return out;
}

namespace {

std::string arg_type_name(Function& f, unsigned i) {
  if (MDNode* md = f.getMetadata("kernel_arg_type"))
    if (i < md->getNumOperands())
      if (auto* s = dyn_cast<MDString>(md->getOperand(i))) return s->getString().str();
  std::string s;
  raw_string_ostream os(s);
  f.getArg(i)->getType()->print(os);
  return os.str();
}

KernelInfo kernel_info(Function& f) {
  const DataLayout& dl = f.getParent()->getDataLayout();
  KernelInfo k;
  k.name = f.getName().str();
  MDNode* names = f.getMetadata("kernel_arg_name");
  for (unsigned i = 0; i < f.arg_size(); ++i) {
    Argument* a = f.getArg(i);
    KernelArgInfo info;
    info.name = a->getName().str();
    if (names != nullptr && i < names->getNumOperands())
      if (auto* s = dyn_cast<MDString>(names->getOperand(i))) info.name = s->getString().str();
    info.type_name = arg_type_name(f, i);
    Type* t = a->getType();
    if (a->hasByValAttr()) {
      info.kind = ArgKind::value;
      info.size = dl.getTypeAllocSize(a->getParamByValType());
    } else if (t->isPointerTy()) {
      unsigned as = t->getPointerAddressSpace();
      info.kind = as == 3 ? ArgKind::local_pointer
                  : as == 2 ? ArgKind::constant_pointer
                            : ArgKind::global_pointer;
      if (as == 0)
        fail(Errc::invalid_argument, "SPIR-V module: kernel " + k.name + " argument " +
                                         std::to_string(i) + " is a private pointer");
      info.size = sizeof(void*);
    } else {
      info.kind = ArgKind::value;
      info.size = dl.getTypeAllocSize(t);
    }
    k.args.push_back(std::move(info));
  }
  if (MDNode* md = f.getMetadata("reqd_work_group_size"))
    for (unsigned d = 0; d < 3 && d < md->getNumOperands(); ++d)
      if (auto* c = mdconst::dyn_extract<ConstantInt>(md->getOperand(d)))
        k.required_local[d] = c->getZExtValue();
  return k;
}

void link_builtins(Module& m) {
  std::size_t size = static_cast<std::size_t>(hetmm_builtins_bc_end - hetmm_builtins_bc);
  auto buffer = MemoryBufferRef(StringRef(hetmm_builtins_bc, size), "hetmm_builtins.bc");
  // Lazily: the library holds thousands of functions; the linker materialises the few used.
  Expected<std::unique_ptr<Module>> lib = getLazyBitcodeModule(buffer, m.getContext());
  if (!lib) fail(Errc::unsupported, "built-in library: " + message(lib.takeError()));
  (*lib)->setTargetTriple(m.getTargetTriple());
  (*lib)->setDataLayout(m.getDataLayout());
  if (Linker::linkModules(m, std::move(*lib), Linker::LinkOnlyNeeded))
    fail(Errc::invalid_argument, "SPIR-V module: linking the built-in library failed");
}

// The runtime entry points kernel code calls (kernel_context.hpp), defined in every JIT.
struct RuntimeSymbol {
  const char* name;
  void* address;
};
const RuntimeSymbol kRuntimeSymbols[] = {
    {"hetmm_jit_load", reinterpret_cast<void*>(&hetmm_jit_load)},
    {"hetmm_jit_store", reinterpret_cast<void*>(&hetmm_jit_store)},
    {"hetmm_jit_atomic", reinterpret_cast<void*>(&hetmm_jit_atomic)},
    {"hetmm_jit_barrier", reinterpret_cast<void*>(&hetmm_jit_barrier)},
    {"hetmm_jit_refill", reinterpret_cast<void*>(&hetmm_jit_refill)},
    {"hetmm_jit_divergence", reinterpret_cast<void*>(&hetmm_jit_divergence)},
    {"hetmm_jit_range", reinterpret_cast<void*>(&hetmm_jit_range)},
    {"hetmm_jit_local_range", reinterpret_cast<void*>(&hetmm_jit_local_range)},
};

bool is_runtime_symbol(StringRef name) {
  for (const RuntimeSymbol& r : kRuntimeSymbols)
    if (name == r.name) return true;
  return false;
}

// Built-ins nobody defines would only surface as a JIT link failure deep in ORC; name them.
void check_undefined(Module& m) {
  std::string missing;
  for (Function& f : m) {
    if (!f.isDeclaration() || f.isIntrinsic() || f.use_empty()) continue;
    std::string name = f.getName().str();
    if (is_runtime_symbol(name) || dlsym(RTLD_DEFAULT, name.c_str()) != nullptr) continue;
    missing += (missing.empty() ? "" : ", ") + name;
  }
  if (!missing.empty())
    fail(Errc::unsupported, "SPIR-V module: uses built-ins hetmm does not provide: " + missing);
}

// printf calls the C library's printf from the worker thread, as each call runs (OpenCL lets
// output appear in any order; nothing is buffered to the kernel's end). Its scalar conversions
// are C's; OpenCL's vector conversions (%v4f...) are not, and a module using one is refused
// here rather than handing printf arguments it would misread.
void check_printf(Module& m) {
  Function* printf_fn = m.getFunction("printf");
  if (printf_fn == nullptr) return;
  for (User* u : printf_fn->users()) {
    auto* call = dyn_cast<CallInst>(u);
    if (call == nullptr || call->arg_size() == 0) continue;
    auto* g = dyn_cast<GlobalVariable>(getUnderlyingObject(call->getArgOperand(0)));
    auto* data = g && g->hasInitializer() ? dyn_cast<ConstantDataSequential>(g->getInitializer())
                                          : nullptr;
    if (data == nullptr || !data->isString())
      fail(Errc::unsupported, "SPIR-V module: printf with a format that is not a string literal");
    StringRef fmt = data->getAsString();
    for (std::size_t i = 0; i < fmt.size(); ++i) {
      if (fmt[i] != '%') continue;
      std::size_t j = i + 1;
      if (j < fmt.size() && fmt[j] == '%') {
        i = j;
        continue;
      }
      while (j < fmt.size() && StringRef("-+ #0123456789.").contains(fmt[j])) ++j;
      if (j < fmt.size() && fmt[j] == 'v')
        fail(Errc::unsupported, "SPIR-V module: printf vector conversion \"" +
                                    fmt.substr(i, std::min<std::size_t>(j + 4, fmt.size()) - i).str() +
                                    "\" is not supported (scalar conversions are)");
      i = j;
    }
  }
}

// HETMM_DUMP_IR=DIR writes each module's IR after the rewrite and after optimisation
// (DIR/<stage>-<n>.ll): for looking at what the MMU pass did to a kernel.
void dump_ir(Module& m, const char* stage) {
  static std::atomic<unsigned> serial{0};
  const char* dir = std::getenv("HETMM_DUMP_IR");
  if (dir == nullptr || *dir == '\0') return;
  std::string path = std::string(dir) + "/" + stage + "-" + std::to_string(serial++) + ".ll";
  std::error_code ec;
  raw_fd_ostream out(path, ec);
  if (!ec) m.print(out, nullptr);
}

// Runs the pipeline `build` makes, with the host target's analyses.
template <class Build>
void run_pipeline(Module& m, TargetMachine& tm, Build&& build) {
  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  ModulePassManager mpm = build(pb);
  mpm.run(m, mam);
}

// Inlining and simplification only (no vectorisation): what the MMU rewrite wants to see.
void simplify(Module& m, TargetMachine& tm) {
  run_pipeline(m, tm, [](PassBuilder& pb) {
    return pb.buildModuleSimplificationPipeline(OptimizationLevel::O2, ThinOrFullLTOPhase::None);
  });
}

// The loop vectoriser's remarks, by function: what the compile report explains loops with.
class VectorizerRemarks : public DiagnosticHandler {
 public:
  explicit VectorizerRemarks(std::map<std::string, std::vector<std::string>>& out) : out_(out) {}
  bool isAnalysisRemarkEnabled(StringRef pass) const override { return pass == "loop-vectorize"; }
  bool isMissedOptRemarkEnabled(StringRef pass) const override { return pass == "loop-vectorize"; }
  bool isPassedOptRemarkEnabled(StringRef pass) const override { return pass == "loop-vectorize"; }
  // Without it, passes build only some remarks (LoopAccessAnalysis's reasons are built lazily).
  bool isAnyRemarkEnabled() const override { return true; }
  bool handleDiagnostics(const DiagnosticInfo& di) override {
    auto* remark = dyn_cast<DiagnosticInfoOptimizationBase>(&di);
    if (remark == nullptr || remark->getPassName() != "loop-vectorize") return remark != nullptr;
    out_[remark->getFunction().getName().str()].push_back(remark->getMsg());
    return true;
  }

 private:
  std::map<std::string, std::vector<std::string>>& out_;
};

void optimize(Module& m, TargetMachine& tm, OptimizationLevel level) {
  run_pipeline(m, tm, [&](PassBuilder& pb) {
    return level == OptimizationLevel::O0 ? pb.buildO0DefaultPipeline(level)
                                          : pb.buildPerModuleDefaultPipeline(level);
  });
}

orc::SymbolMap runtime_symbol_map(orc::LLJIT& jit) {
  orc::SymbolMap map;
  for (const RuntimeSymbol& r : kRuntimeSymbols)
    map[jit.mangleAndIntern(r.name)] =
        JITEvaluatedSymbol(pointerToJITTargetAddress(r.address), JITSymbolFlags::Exported);
  return map;
}

// HETMM_PERF_JIT=1: the kernels' code is described to perf (LLVM's jitdump listener writes
// jit-PID.dump in $JITDUMPDIR or the working directory): `perf record -k 1`, then `perf inject
// --jit` and `perf report` / `perf annotate` name and disassemble the JIT-compiled kernels.
JITEventListener* perf_listener() {
  static JITEventListener* listener = [] {
    const char* on = std::getenv("HETMM_PERF_JIT");
    return on != nullptr && *on != '\0' && *on != '0' ? JITEventListener::createPerfJITEventListener()
                                                       : nullptr;
  }();
  return listener;
}

// Links `object` into a fresh JIT and fills in the kernels' entry points.
void load_object(detail::CompiledProgram& program, orc::JITTargetMachineBuilder jtmb,
                 std::string_view object) {
  orc::LLJITBuilder builder;
  builder.setJITTargetMachineBuilder(std::move(jtmb));
  if (JITEventListener* perf = perf_listener())
    builder.setObjectLinkingLayerCreator([perf](orc::ExecutionSession& es, const Triple&) {
      auto layer = std::make_unique<orc::RTDyldObjectLinkingLayer>(
          es, [] { return std::make_unique<SectionMemoryManager>(); });
      layer->registerJITEventListener(*perf);
      return std::unique_ptr<orc::ObjectLayer>(std::move(layer));
    });
  auto jit = builder.create();
  if (!jit) fail(Errc::unsupported, "JIT: " + message(jit.takeError()));
  auto& dylib = (*jit)->getMainJITDylib();
  if (auto err = dylib.define(orc::absoluteSymbols(runtime_symbol_map(**jit))))
    fail(Errc::unsupported, "JIT: " + message(std::move(err)));
  auto process = orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process) fail(Errc::unsupported, "JIT: " + message(process.takeError()));
  dylib.addGenerator(std::move(*process));
  if (auto err = (*jit)->addObjectFile(MemoryBuffer::getMemBufferCopy(
          StringRef(object.data(), object.size()), "hetmm-kernels.o")))
    fail(Errc::unsupported, "JIT: " + message(std::move(err)));
  for (auto& k : program.kernels) {
    auto sym = (*jit)->lookup("__hetmm_run_" + k.info.name);
    if (!sym) fail(Errc::unsupported, "JIT: " + message(sym.takeError()));
    k.run = sym->toPtr<detail::CompiledProgram::RunFn>();
  }
  program.jit = std::shared_ptr<orc::LLJIT>(std::move(*jit));
}

orc::JITTargetMachineBuilder host_machine() {
  auto jtmb = orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) fail(Errc::unsupported, "JIT: " + message(jtmb.takeError()));
  jtmb->setCodeGenOptLevel(CodeGenOpt::Aggressive);
  return std::move(*jtmb);
}

// The whole pipeline, up to an object file for the host.
std::string compile_to_object(detail::CompiledProgram& program, const std::uint32_t* words,
                              std::size_t count, const BuildOptions& options,
                              orc::JITTargetMachineBuilder& jtmb) {
  validate_module(words, count);
  LLVMContext context;
  // Translator 15 works on typed pointers and asserts with opaque ones.
  context.setOpaquePointers(false);
  std::unique_ptr<Module> m = read_module(context, words, count, options);

  std::vector<std::string> kernel_names;
  for (Function& f : *m)
    if (f.getCallingConv() == CallingConv::SPIR_KERNEL && !f.isDeclaration()) {
      program.kernels.push_back({kernel_info(f), nullptr});
      kernel_names.push_back(f.getName().str());
    }

  auto tm = jtmb.createTargetMachine();
  if (!tm) fail(Errc::unsupported, "JIT: " + message(tm.takeError()));
  m->setTargetTriple((*tm)->getTargetTriple().str());
  m->setDataLayout((*tm)->createDataLayout());
  link_builtins(*m);
  for (Function& f : *m) {
    f.setCallingConv(CallingConv::C);
    for (User* u : f.users())
      if (auto* call = dyn_cast<CallInst>(u)) call->setCallingConv(CallingConv::C);
  }

  AbiResult abi = apply_kernel_abi(*m, kernel_names);
  program.static_local_bytes = abi.static_local_bytes;
  for (const AbiKernel& a : abi.kernels)
    for (auto& k : program.kernels)
      if (k.info.name == a.name) {
        k.info.uses_barriers = a.uses_barriers;
        k.wi_private_bytes = a.wi_private_bytes;
        k.joins_x_groups = !a.uses_barriers && !a.reads_group_shape_x;
      }
  // Kernels are inlined into their runners and simplified first, so that the MMU rewrite sees
  // the work-item loops and canonical induction variables (its loop range checks need them),
  // and so that the work-item loops hold every access marked parallel.
  if (options.level != OptimizationLevel::O0) {
    simplify(*m, **tm);
    mark_parallel_accesses(*m);
  }
  if (options.mmu) {
    dump_ir(*m, "simplified");
    program.mmu_accesses = apply_mmu_rewrite(*m);
  }
  check_undefined(*m);
  check_printf(*m);
  std::string broken;
  raw_string_ostream broken_os(broken);
  if (verifyModule(*m, &broken_os))
    fail(Errc::invalid_argument, "SPIR-V module: internal error, rewritten IR is invalid: " +
                                     broken_os.str());
  dump_ir(*m, "rewritten");
  std::map<std::string, std::vector<std::string>> remarks;
  m->getContext().setDiagnosticHandler(std::make_unique<VectorizerRemarks>(remarks));
  optimize(*m, **tm, options.level);
  m->getContext().setDiagnosticHandler(std::make_unique<DiagnosticHandler>());
  dump_ir(*m, "optimized");
  for (auto& k : program.kernels)
    if (Function* runner = m->getFunction("__hetmm_run_" + k.info.name))
      k.info.vectorization =
          vectorization_report(*runner, remarks[runner->getName().str()]);
  orc::SimpleCompiler compiler(**tm);
  auto object = compiler(*m);
  if (!object) fail(Errc::unsupported, "JIT: code generation: " + message(object.takeError()));
  return (*object)->getBuffer().str();
}

}  // namespace

std::shared_ptr<const detail::CompiledProgram> compile_spirv(const std::uint32_t* words,
                                                             std::size_t count,
                                                             std::string_view options_text) {
  BuildOptions options = parse_options(options_text);
  if (words == nullptr || count == 0) validate_module(words, count);  // throws: empty
  init_llvm();
  orc::JITTargetMachineBuilder jtmb = host_machine();
  // The shootdown protocol the generated code follows is part of the key (mmu_pass.cpp).
  std::string host = jtmb.getCPU() + ";" + jtmb.getFeatures().getString() +
                     (os::asymmetric_fences() ? ";publish=membarrier" : ";publish=fenced");
  std::string key = cache_key(words, count, options_text, host);

  auto program = std::make_shared<detail::CompiledProgram>();
  std::string object;
  if (!cache_read(key, *program, object)) {
    program = std::make_shared<detail::CompiledProgram>();
    program->mmu = options.mmu;
    object = compile_to_object(*program, words, count, options, jtmb);
    cache_write(key, *program, object);
  }
  program->options = std::string(options_text);
  load_object(*program, std::move(jtmb), object);
  return program;
}

}  // namespace hetmm::spirv
