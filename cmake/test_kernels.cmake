# The SPIR-V test kernels: every tests/spirv/kernels/<name>.cl is compiled at build time to
# ${PROJECT_BINARY_DIR}/tests/spirv/kernels/<name>.spv and validated, with the commands that
# work on Debian 12's LLVM 15 toolchain (../shared/docs/spirv-compute.md §1):
#
#   clang-15 -cl-std=CL2.0 -target spir64-unknown-unknown -O2 -Xclang -disable-llvm-passes \
#            -Dinline= -emit-llvm -c <name>.cl -o <name>.bc
#   llvm-spirv-15 --spirv-max-version=1.0 <name>.bc -o <name>.spv
#   spirv-val <name>.spv
#
# Why those flags: translator 15 cannot encode LLVM's `freeze` (hence no LLVM passes; hetmm's
# JIT optimises after reading the module back), SPIR-V 1.4 output from translator 15 breaks the
# 1.4 interface rule (hence 1.0), and `inline` functions would get Import linkage (hence
# -Dinline=, as PoCL does).
#
# Provides:
#   HETMM_TEST_KERNEL_DIR      where the .spv files are written (for the tests)
#   HETMM_TEST_KERNEL_SRC_DIR  the .cl sources (tests also read them for PoCL and from_opencl_c)
#   HETMM_TEST_KERNELS_FOUND   TRUE when clang-15, llvm-spirv-15 and spirv-val were all found
#   hetmm_test_kernels         a custom target that builds every .spv (empty without the tools)
#   HETMM_TEST_OPENCL_FOUND    TRUE when find_package(OpenCL) found the headers and library
#   hetmm_add_spirv_kernel_tests(<target>)
#                              adds tests/spirv/{kernels_test,pocl_oracle}.cpp to a test target,
#                              with the compile definitions, the OpenCL link and the dependency
#                              on hetmm_test_kernels (optional: a caller may do this itself)

set(HETMM_TEST_KERNEL_SRC_DIR ${PROJECT_SOURCE_DIR}/tests/spirv/kernels)
set(HETMM_TEST_KERNEL_DIR ${PROJECT_BINARY_DIR}/tests/spirv/kernels)

find_program(HETMM_CLANG_15 NAMES clang-15 DOC "clang 15, to compile OpenCL C test kernels")
find_program(HETMM_LLVM_SPIRV_15 NAMES llvm-spirv-15
             DOC "The LLVM/SPIR-V translator for LLVM 15 (bitcode to SPIR-V)")
find_program(HETMM_SPIRV_VAL NAMES spirv-val DOC "SPIRV-Tools' validator")

file(GLOB HETMM_TEST_KERNEL_SOURCES CONFIGURE_DEPENDS ${HETMM_TEST_KERNEL_SRC_DIR}/*.cl)

set(HETMM_TEST_KERNEL_OUTPUTS "")
if(HETMM_CLANG_15 AND HETMM_LLVM_SPIRV_15 AND HETMM_SPIRV_VAL)
  set(HETMM_TEST_KERNELS_FOUND TRUE)
  file(MAKE_DIRECTORY ${HETMM_TEST_KERNEL_DIR})
  foreach(source ${HETMM_TEST_KERNEL_SOURCES})
    get_filename_component(name ${source} NAME_WE)
    set(bc ${HETMM_TEST_KERNEL_DIR}/${name}.bc)
    set(unchecked ${HETMM_TEST_KERNEL_DIR}/${name}.unvalidated.spv)
    set(spv ${HETMM_TEST_KERNEL_DIR}/${name}.spv)
    # The module is validated under a temporary name and renamed only when spirv-val accepts
    # it: an invalid module fails the build and leaves no <name>.spv behind, so the next build
    # tries again instead of treating the invalid output as up to date.
    add_custom_command(
      OUTPUT ${spv}
      COMMAND ${HETMM_CLANG_15} -cl-std=CL2.0 -target spir64-unknown-unknown -O2
              -Xclang -disable-llvm-passes -Dinline= -emit-llvm -c ${source} -o ${bc}
      COMMAND ${HETMM_LLVM_SPIRV_15} --spirv-max-version=1.0 ${bc} -o ${unchecked}
      COMMAND ${HETMM_SPIRV_VAL} ${unchecked}
      COMMAND ${CMAKE_COMMAND} -E rename ${unchecked} ${spv}
      DEPENDS ${source}
      BYPRODUCTS ${bc}
      COMMENT "SPIR-V test kernel ${name}.spv"
      VERBATIM)
    list(APPEND HETMM_TEST_KERNEL_OUTPUTS ${spv})
  endforeach()
else()
  set(HETMM_TEST_KERNELS_FOUND FALSE)
  message(WARNING "SPIR-V test kernels are not built: clang-15 (${HETMM_CLANG_15}), "
                  "llvm-spirv-15 (${HETMM_LLVM_SPIRV_15}) and spirv-val (${HETMM_SPIRV_VAL}) are "
                  "all needed (apt-get install clang-15 llvm-spirv-15 spirv-tools); the tests "
                  "that load them will skip")
endif()

add_custom_target(hetmm_test_kernels DEPENDS ${HETMM_TEST_KERNEL_OUTPUTS}
                  SOURCES ${HETMM_TEST_KERNEL_SOURCES})

# The PoCL oracle talks to PoCL through the standard OpenCL API (ocl-icd + CL headers).
find_package(OpenCL QUIET)
set(HETMM_TEST_OPENCL_FOUND ${OpenCL_FOUND})

function(hetmm_add_spirv_kernel_tests target)
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests/spirv/kernels_test.cpp
                                   ${PROJECT_SOURCE_DIR}/tests/spirv/pocl_oracle.cpp)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests/spirv)
  target_compile_definitions(${target} PRIVATE
    HETMM_TEST_KERNEL_DIR="${HETMM_TEST_KERNEL_DIR}"
    HETMM_TEST_KERNEL_SRC_DIR="${HETMM_TEST_KERNEL_SRC_DIR}"
    # Tells the tests a missing .spv is a build failure, not a machine without the tools.
    HETMM_TEST_KERNELS_BUILT=$<BOOL:${HETMM_TEST_KERNELS_FOUND}>)
  add_dependencies(${target} hetmm_test_kernels)
  if(HETMM_TEST_OPENCL_FOUND)
    target_link_libraries(${target} PRIVATE OpenCL::OpenCL)
  else()
    # The oracle compiles to a stub and every comparison with PoCL skips, saying why.
    set_source_files_properties(${PROJECT_SOURCE_DIR}/tests/spirv/pocl_oracle.cpp
                                TARGET_DIRECTORY ${target}
                                PROPERTIES COMPILE_DEFINITIONS HETMM_NO_OPENCL)
    message(WARNING "OpenCL (ocl-icd-opencl-dev, opencl-headers) not found: the SPIR-V kernel "
                    "tests cannot compare with PoCL and will skip")
  endif()
endfunction()
