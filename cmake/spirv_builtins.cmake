# The OpenCL C built-in library for SPIR-V kernels: one LLVM bitcode module,
# ${PROJECT_BINARY_DIR}/spirv/hetmm_builtins.bc, embedded in libhetmm through a generated
# assembly file. Included by the top-level CMakeLists.txt (HETMM_SPIRV).
#
# Provides:
#   HETMM_SPIRV_BUILTINS_SOURCES  the generated ${PROJECT_BINARY_DIR}/spirv/builtins_blob.S, to
#                                 add to the library's sources; it defines the hidden symbols
#                                 hetmm_builtins_bc / hetmm_builtins_bc_end
#                                 (src/spirv/builtins/builtins_blob.hpp)
#   HETMM_SPIRV_BUILTINS_BC       the bitcode file
#   hetmm_spirv_builtins          a custom target that builds the bitcode
#
# What goes in (see src/spirv/builtins/builtins.h):
#   * libclc-15's SPIR-V library (Debian package libclc-15), read back to LLVM IR with
#     `llvm-spirv-15 -r`: pi-scaled math, powr/pown/rootn, geometric functions, vload/vstore
#     for the named address spaces, async copies...;
#   * src/spirv/builtins/*.cl, compiled with clang-15: everything libclc leaves undefined, the
#     functions libclc gets wrong on a CPU (it flushes subnormals), the translator-only forms.
#
# Steps (all typed-pointer IR, as LLVMSPIRVLib 15 produces and the JIT reads):
#   1. Each .cl -> textual IR. Compiled for spir64, whose calling convention passes vectors as
#      vectors like the translator's call sites (the x86-64 C ABI would pass char4 as i32 and
#      float8 in memory, so calls from a kernel would not match), except atomics.cl, which is
#      compiled for the host: spir64 has no lock-free atomics and clang would emit libcalls.
#   2. sed, per module:
#      * host triple and datalayout;
#      * drop signext/zeroext (the translator's declarations have none, and a callee could
#        rely on an extension its callers do not do) and noundef (translated kernels pass
#        vectors with undef lanes);
#      * drop module flags and OpenCL metadata (nothing to conflict with the kernel's), and the
#        frame-pointer choice of the compile (the JIT's applies);
#      * drop convergent from functions that never reach a barrier (all but async.cl);
#      * libclc: drop noinline (its SPIR-V is an -O0 build) and make its constant tables
#        internal (step 4 then drops those nothing uses);
#      * atomics.cl: make its functions spir_func like the rest, and drop target-cpu,
#        target-features and uwtable so the JIT compiles them for the real CPU;
#      * declarations lose dso_local (what stays undefined is supplied by the JIT or the
#        process: kernel-pass functions, libm).
#   3. llvm-link libclc with the .cl modules as --override: their definitions replace libclc's
#      (the libm-based math, fma, ldexp, remquo, vstore_half, mad_sat, and libclc's "no
#      subnormals, no hardware fma" configuration hooks).
#   4. opt -O2 over the whole library, while every function is still external: cleans up
#      libclc's -O0 code and inlines the small helpers.
#   5. sed: every function linkonce_odr (kernels' links pull in only what they use, and the JIT
#      may drop a function once inlined), every global internal.
# The result keeps the spir_func calling convention throughout; the JIT makes every function
# and call site C after linking.
#
# libclc's remaining constant tables (used by powr, pown, rootn, atan2pi(double)...) are
# addrspace(2) globals: loads from them are loads through __constant pointers.

set(HETMM_SPIRV_BUILTINS_SRC_DIR ${PROJECT_SOURCE_DIR}/src/spirv/builtins)
set(HETMM_SPIRV_BUILTINS_BC ${PROJECT_BINARY_DIR}/spirv/hetmm_builtins.bc)
set(_hmb_dir ${PROJECT_BINARY_DIR}/spirv/builtins)
file(MAKE_DIRECTORY ${_hmb_dir})

find_program(HETMM_CLANG_15 NAMES clang-15 DOC "clang 15, to compile OpenCL C")
find_program(HETMM_LLVM_SPIRV_15 NAMES llvm-spirv-15
             DOC "The LLVM/SPIR-V translator for LLVM 15 (bitcode to SPIR-V)")
find_program(HETMM_LLVM_LINK_15 NAMES llvm-link-15 DOC "llvm-link from LLVM 15")
find_program(HETMM_OPT_15 NAMES opt-15 DOC "opt from LLVM 15")
find_program(HETMM_SED NAMES sed DOC "sed, to edit textual LLVM IR")
find_file(HETMM_LIBCLC_SPV spirv64-mesa3d-.spv PATHS /usr/lib/clc /usr/share/clc
          /usr/lib/llvm-15/lib/clc DOC "libclc's SPIR-V library (Debian package libclc-15)")
foreach(_hmb_var HETMM_CLANG_15 HETMM_LLVM_SPIRV_15 HETMM_LLVM_LINK_15 HETMM_OPT_15 HETMM_SED
                 HETMM_LIBCLC_SPV)
  if(NOT ${_hmb_var})
    message(FATAL_ERROR "SPIR-V built-in library: ${_hmb_var} not found (HETMM_SPIRV needs "
                        "clang-15, llvm-15 (llvm-link-15, opt-15), llvm-spirv-15 and libclc-15)")
  endif()
endforeach()

# ---- sed scripts (GNU sed; written only when their content changes) -----------------------
set(_hmb_host_dl "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-f80:128-n8:16:32:64-S128")
file(CONFIGURE OUTPUT ${_hmb_dir}/retarget.sed CONTENT [=[
s/^target triple = .*/target triple = "x86_64-pc-linux-gnu"/
s/^target datalayout = .*/target datalayout = "@_hmb_host_dl@"/
s/ signext//g
s/ zeroext//g
s/ noundef//g
/^declare /s/ dso_local//
/^attributes #/s/ "frame-pointer"="[^"]*"//
/^!llvm\.module\.flags = /d
/^!llvm\.ident = /d
/^!opencl\./d
/^!spirv\./d
]=] @ONLY)
file(CONFIGURE OUTPUT ${_hmb_dir}/not_convergent.sed CONTENT [=[
/^attributes #/s/{ convergent }/{ nounwind }/
/^attributes #/s/convergent //
]=] @ONLY)
file(CONFIGURE OUTPUT ${_hmb_dir}/host.sed CONTENT [=[
s/^define dso_local \([^@]*@\)/define dso_local spir_func \1/
/^attributes #/s/ "target-cpu"="[^"]*"//
/^attributes #/s/ "target-features"="[^"]*"//
/^attributes #/s/ "tune-cpu"="[^"]*"//
/^attributes #/s/ uwtable//
]=] @ONLY)
file(CONFIGURE OUTPUT ${_hmb_dir}/libclc.sed CONTENT [=[
/^attributes #/s/noinline //
/^attributes #/s/optnone //
s/^\(@[A-Za-z0-9_.]* = \)\(unnamed_addr \)\?\(addrspace([0-9]*) \)\?constant /\1internal \2\3constant /
]=] @ONLY)
file(CONFIGURE OUTPUT ${_hmb_dir}/linkage.sed CONTENT [=[
s/^define \(dso_local \)\?spir_func /define linkonce_odr \1spir_func /
s/^\(@[-A-Za-z0-9_.$]* = \)\(dso_local \)\?\(\(local_\)\?unnamed_addr \)\?\(addrspace([0-9]*) \)\?\(constant\|global\) /\1internal \3\5\6 /
]=] @ONLY)

# ---- 1-2: the .cl sources -----------------------------------------------------------------------
# Family per file; async.cl keeps convergent (it calls barrier); atomics.cl is the host module.
set(HETMM_SPIRV_BUILTINS_CL
    math.cl math_libm.cl math_native.cl math_half.cl math_ptr.cl integer.cl common.cl geometric.cl
    relational.cl vload_vstore.cl shuffle.cl convert.cl convert_float.cl fences.cl async.cl
    address_space.cl atomics.cl)
set(_hmb_cflags -cl-std=CL2.0 -cl-no-stdinc -include opencl-c.h -Xclang -no-opaque-pointers -O2
    -ffp-contract=off -cl-fp32-correctly-rounded-divide-sqrt -w -emit-llvm -S)
set(_hmb_modules "")
foreach(_hmb_cl ${HETMM_SPIRV_BUILTINS_CL})
  get_filename_component(_hmb_name ${_hmb_cl} NAME_WE)
  set(_hmb_raw ${_hmb_dir}/${_hmb_name}.raw.ll)
  set(_hmb_ll ${_hmb_dir}/${_hmb_name}.ll)
  set(_hmb_seds -f ${_hmb_dir}/retarget.sed)
  if(_hmb_name STREQUAL "atomics")
    set(_hmb_target -target x86_64-pc-linux-gnu -Xclang -ffake-address-space-map
        -Xclang -faddress-space-map-mangling=yes)
    list(APPEND _hmb_seds -f ${_hmb_dir}/host.sed -f ${_hmb_dir}/not_convergent.sed)
  else()
    set(_hmb_target -target spir64-unknown-unknown)
    if(NOT _hmb_name STREQUAL "async")
      list(APPEND _hmb_seds -f ${_hmb_dir}/not_convergent.sed)
    endif()
  endif()
  set(_hmb_deps ${HETMM_SPIRV_BUILTINS_SRC_DIR}/${_hmb_cl}
      ${HETMM_SPIRV_BUILTINS_SRC_DIR}/builtins.h ${_hmb_dir}/retarget.sed ${_hmb_dir}/host.sed
      ${_hmb_dir}/not_convergent.sed)
  if(_hmb_name STREQUAL "convert_float")  # includes convert.cl
    list(APPEND _hmb_deps ${HETMM_SPIRV_BUILTINS_SRC_DIR}/convert.cl)
  endif()
  add_custom_command(
    OUTPUT ${_hmb_ll}
    COMMAND ${HETMM_CLANG_15} ${_hmb_target} ${_hmb_cflags}
            ${HETMM_SPIRV_BUILTINS_SRC_DIR}/${_hmb_cl} -o ${_hmb_raw}
    COMMAND ${HETMM_SED} -i ${_hmb_seds} ${_hmb_raw}
    COMMAND ${CMAKE_COMMAND} -E rename ${_hmb_raw} ${_hmb_ll}
    DEPENDS ${_hmb_deps}
    BYPRODUCTS ${_hmb_raw}
    COMMENT "SPIR-V built-ins: ${_hmb_cl}"
    VERBATIM)
  list(APPEND _hmb_modules ${_hmb_ll})
endforeach()

# ---- libclc -------------------------------------------------------------------------------
add_custom_command(
  OUTPUT ${_hmb_dir}/libclc.ll
  COMMAND ${HETMM_LLVM_SPIRV_15} -r ${HETMM_LIBCLC_SPV} -o ${_hmb_dir}/libclc.raw.bc
  COMMAND ${HETMM_OPT_15} -opaque-pointers=0 -S ${_hmb_dir}/libclc.raw.bc
          -o ${_hmb_dir}/libclc.raw.ll
  COMMAND ${HETMM_SED} -i -f ${_hmb_dir}/retarget.sed -f ${_hmb_dir}/libclc.sed
          ${_hmb_dir}/libclc.raw.ll
  COMMAND ${CMAKE_COMMAND} -E rename ${_hmb_dir}/libclc.raw.ll ${_hmb_dir}/libclc.ll
  DEPENDS ${HETMM_LIBCLC_SPV} ${_hmb_dir}/retarget.sed ${_hmb_dir}/libclc.sed
  BYPRODUCTS ${_hmb_dir}/libclc.raw.bc ${_hmb_dir}/libclc.raw.ll
  COMMENT "SPIR-V built-ins: libclc"
  VERBATIM)

# ---- 3-5: link, optimise, set linkage ----------------------------------------------------------
set(_hmb_overrides "")
foreach(_hmb_ll ${_hmb_modules})
  list(APPEND _hmb_overrides --override=${_hmb_ll})
endforeach()
add_custom_command(
  OUTPUT ${HETMM_SPIRV_BUILTINS_BC}
  COMMAND ${HETMM_LLVM_LINK_15} -opaque-pointers=0 ${_hmb_dir}/libclc.ll ${_hmb_overrides}
          -o ${_hmb_dir}/linked.bc
  COMMAND ${HETMM_OPT_15} -opaque-pointers=0 -O2 ${_hmb_dir}/linked.bc -S
          -o ${_hmb_dir}/final.ll
  COMMAND ${HETMM_SED} -i -f ${_hmb_dir}/linkage.sed ${_hmb_dir}/final.ll
  COMMAND ${HETMM_OPT_15} -opaque-pointers=0 ${_hmb_dir}/final.ll -o ${_hmb_dir}/final.bc
  COMMAND ${CMAKE_COMMAND} -E rename ${_hmb_dir}/final.bc ${HETMM_SPIRV_BUILTINS_BC}
  DEPENDS ${_hmb_dir}/libclc.ll ${_hmb_modules} ${_hmb_dir}/linkage.sed
  BYPRODUCTS ${_hmb_dir}/linked.bc ${_hmb_dir}/final.ll ${_hmb_dir}/final.bc
  COMMENT "SPIR-V built-ins: hetmm_builtins.bc"
  VERBATIM)
add_custom_target(hetmm_spirv_builtins DEPENDS ${HETMM_SPIRV_BUILTINS_BC})

# ---- Embedding ----------------------------------------------------------------------------------
# .incbin data in .rodata is position-independent; the symbols are hidden, so the shared
# library refers to them without a GOT entry or an exported symbol.
set(HETMM_SPIRV_BUILTINS_SOURCES ${PROJECT_BINARY_DIR}/spirv/builtins_blob.S)
file(CONFIGURE OUTPUT ${HETMM_SPIRV_BUILTINS_SOURCES} CONTENT [=[
/* Generated by cmake/spirv_builtins.cmake: the OpenCL C built-in library (LLVM bitcode). */
	.section .rodata
	.balign 16
	.globl hetmm_builtins_bc
	.hidden hetmm_builtins_bc
	.type hetmm_builtins_bc, @object
hetmm_builtins_bc:
	.incbin "@HETMM_SPIRV_BUILTINS_BC@"
	.globl hetmm_builtins_bc_end
	.hidden hetmm_builtins_bc_end
	.type hetmm_builtins_bc_end, @object
hetmm_builtins_bc_end:
	.size hetmm_builtins_bc, hetmm_builtins_bc_end - hetmm_builtins_bc
	.section .note.GNU-stack,"",@progbits
]=] @ONLY)
# The object is rebuilt whenever the bitcode changes (and the bitcode is built first).
set_source_files_properties(${HETMM_SPIRV_BUILTINS_SOURCES} PROPERTIES
                            OBJECT_DEPENDS ${HETMM_SPIRV_BUILTINS_BC})
