// Layer opencl: includes every layer.
// Helpers the buffer and SVM commands share (memory.cpp, svm.cpp, kernel.cpp).
#pragma once

#include "opencl/objects.hpp"

#include <optional>

namespace hetmm::opencl {

void check_same_context(cl_command_queue q, cl_mem m);
void check_range(cl_mem m, std::size_t offset, std::size_t size);  // CL_INVALID_VALUE outside
// Waits when blocking (CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST if the command failed), then
// hands the event to the caller or drops it.
cl_int finish_blocking(cl_event e, bool blocking, cl_event* out);
void check_pattern(const void* pattern, std::size_t pattern_size);
void fill_pattern(char* dst, const void* pattern, std::size_t pattern_size, std::size_t size);
// Runtime::prefetch of the pages under [addr, addr+size), to q's device or home.
void prefetch(cl_command_queue q, const void* addr, std::size_t size, bool to_host);

// An allocation clSVMAlloc made: its start and size; null for other pointers.
struct SvmAllocation {
  char* base;
  std::size_t size;
  cl_context context;
};
// The clSVMAlloc allocation that holds p, if any.
std::optional<SvmAllocation> svm_allocation(const void* p);

}  // namespace hetmm::opencl
