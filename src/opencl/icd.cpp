// Layer opencl: includes every layer.
// The cl_khr_icd entry points: the dispatch table every object starts with, and the functions
// the loader looks up by name (clIcdGetPlatformIDsKHR in platform.cpp, the extension lookup).
// Interop slots (GL, D3D, EGL) stay null: the platform lists none of those extensions.
#include "opencl/objects.hpp"

#include <cstring>

namespace hetmm::opencl {
namespace {

cl_icd_dispatch make_dispatch() {
  cl_icd_dispatch d{};
  d.clBuildProgram = clBuildProgram;
  d.clCloneKernel = clCloneKernel;
  d.clCompileProgram = clCompileProgram;
  d.clCreateBuffer = clCreateBuffer;
  d.clCreateBufferWithProperties = clCreateBufferWithProperties;
  d.clCreateCommandQueue = clCreateCommandQueue;
  d.clCreateCommandQueueWithProperties = clCreateCommandQueueWithProperties;
  d.clCreateContext = clCreateContext;
  d.clCreateContextFromType = clCreateContextFromType;
  d.clCreateImage = clCreateImage;
  d.clCreateImage2D = clCreateImage2D;
  d.clCreateImage3D = clCreateImage3D;
  d.clCreateImageWithProperties = clCreateImageWithProperties;
  d.clCreateKernel = clCreateKernel;
  d.clCreateKernelsInProgram = clCreateKernelsInProgram;
  d.clCreatePipe = clCreatePipe;
  d.clCreateProgramWithBinary = clCreateProgramWithBinary;
  d.clCreateProgramWithBuiltInKernels = clCreateProgramWithBuiltInKernels;
  d.clCreateProgramWithIL = clCreateProgramWithIL;
  d.clCreateProgramWithSource = clCreateProgramWithSource;
  d.clCreateSampler = clCreateSampler;
  d.clCreateSamplerWithProperties = clCreateSamplerWithProperties;
  d.clCreateSubBuffer = clCreateSubBuffer;
  d.clCreateSubDevices = clCreateSubDevices;
  d.clCreateUserEvent = clCreateUserEvent;
  d.clEnqueueBarrier = clEnqueueBarrier;
  d.clEnqueueBarrierWithWaitList = clEnqueueBarrierWithWaitList;
  d.clEnqueueCopyBuffer = clEnqueueCopyBuffer;
  d.clEnqueueCopyBufferRect = clEnqueueCopyBufferRect;
  d.clEnqueueCopyBufferToImage = clEnqueueCopyBufferToImage;
  d.clEnqueueCopyImage = clEnqueueCopyImage;
  d.clEnqueueCopyImageToBuffer = clEnqueueCopyImageToBuffer;
  d.clEnqueueFillBuffer = clEnqueueFillBuffer;
  d.clEnqueueFillImage = clEnqueueFillImage;
  d.clEnqueueMapBuffer = clEnqueueMapBuffer;
  d.clEnqueueMapImage = clEnqueueMapImage;
  d.clEnqueueMarker = clEnqueueMarker;
  d.clEnqueueMarkerWithWaitList = clEnqueueMarkerWithWaitList;
  d.clEnqueueMigrateMemObjects = clEnqueueMigrateMemObjects;
  d.clEnqueueNDRangeKernel = clEnqueueNDRangeKernel;
  d.clEnqueueNativeKernel = clEnqueueNativeKernel;
  d.clEnqueueReadBuffer = clEnqueueReadBuffer;
  d.clEnqueueReadBufferRect = clEnqueueReadBufferRect;
  d.clEnqueueReadImage = clEnqueueReadImage;
  d.clEnqueueSVMFree = clEnqueueSVMFree;
  d.clEnqueueSVMMap = clEnqueueSVMMap;
  d.clEnqueueSVMMemFill = clEnqueueSVMMemFill;
  d.clEnqueueSVMMemcpy = clEnqueueSVMMemcpy;
  d.clEnqueueSVMMigrateMem = clEnqueueSVMMigrateMem;
  d.clEnqueueSVMUnmap = clEnqueueSVMUnmap;
  d.clEnqueueTask = clEnqueueTask;
  d.clEnqueueUnmapMemObject = clEnqueueUnmapMemObject;
  d.clEnqueueWaitForEvents = clEnqueueWaitForEvents;
  d.clEnqueueWriteBuffer = clEnqueueWriteBuffer;
  d.clEnqueueWriteBufferRect = clEnqueueWriteBufferRect;
  d.clEnqueueWriteImage = clEnqueueWriteImage;
  d.clFinish = clFinish;
  d.clFlush = clFlush;
  d.clGetCommandQueueInfo = clGetCommandQueueInfo;
  d.clGetContextInfo = clGetContextInfo;
  d.clGetDeviceAndHostTimer = clGetDeviceAndHostTimer;
  d.clGetDeviceIDs = clGetDeviceIDs;
  d.clGetDeviceInfo = clGetDeviceInfo;
  d.clGetEventInfo = clGetEventInfo;
  d.clGetEventProfilingInfo = clGetEventProfilingInfo;
  d.clGetExtensionFunctionAddress = clGetExtensionFunctionAddress;
  d.clGetExtensionFunctionAddressForPlatform = clGetExtensionFunctionAddressForPlatform;
  d.clGetHostTimer = clGetHostTimer;
  d.clGetImageInfo = clGetImageInfo;
  d.clGetKernelArgInfo = clGetKernelArgInfo;
  d.clGetKernelInfo = clGetKernelInfo;
  d.clGetKernelSubGroupInfo = clGetKernelSubGroupInfo;
  d.clGetKernelWorkGroupInfo = clGetKernelWorkGroupInfo;
  d.clGetMemObjectInfo = clGetMemObjectInfo;
  d.clGetPipeInfo = clGetPipeInfo;
  d.clGetPlatformIDs = clGetPlatformIDs;
  d.clGetPlatformInfo = clGetPlatformInfo;
  d.clGetProgramBuildInfo = clGetProgramBuildInfo;
  d.clGetProgramInfo = clGetProgramInfo;
  d.clGetSamplerInfo = clGetSamplerInfo;
  d.clGetSupportedImageFormats = clGetSupportedImageFormats;
  d.clLinkProgram = clLinkProgram;
  d.clReleaseCommandQueue = clReleaseCommandQueue;
  d.clReleaseContext = clReleaseContext;
  d.clReleaseDevice = clReleaseDevice;
  d.clReleaseEvent = clReleaseEvent;
  d.clReleaseKernel = clReleaseKernel;
  d.clReleaseMemObject = clReleaseMemObject;
  d.clReleaseProgram = clReleaseProgram;
  d.clReleaseSampler = clReleaseSampler;
  d.clRetainCommandQueue = clRetainCommandQueue;
  d.clRetainContext = clRetainContext;
  d.clRetainDevice = clRetainDevice;
  d.clRetainEvent = clRetainEvent;
  d.clRetainKernel = clRetainKernel;
  d.clRetainMemObject = clRetainMemObject;
  d.clRetainProgram = clRetainProgram;
  d.clRetainSampler = clRetainSampler;
  d.clSVMAlloc = clSVMAlloc;
  d.clSVMFree = clSVMFree;
  d.clSetCommandQueueProperty = clSetCommandQueueProperty;
  d.clSetContextDestructorCallback = clSetContextDestructorCallback;
  d.clSetDefaultDeviceCommandQueue = clSetDefaultDeviceCommandQueue;
  d.clSetEventCallback = clSetEventCallback;
  d.clSetKernelArg = clSetKernelArg;
  d.clSetKernelArgSVMPointer = clSetKernelArgSVMPointer;
  d.clSetKernelExecInfo = clSetKernelExecInfo;
  d.clSetMemObjectDestructorCallback = clSetMemObjectDestructorCallback;
  d.clSetProgramReleaseCallback = clSetProgramReleaseCallback;
  d.clSetProgramSpecializationConstant = clSetProgramSpecializationConstant;
  d.clSetUserEventStatus = clSetUserEventStatus;
  d.clUnloadCompiler = clUnloadCompiler;
  d.clUnloadPlatformCompiler = clUnloadPlatformCompiler;
  d.clWaitForEvents = clWaitForEvents;
  return d;
}

}  // namespace

extern const cl_icd_dispatch kDispatch = make_dispatch();

}  // namespace hetmm::opencl

HETMM_CL_EXPORT void* CL_API_CALL clGetExtensionFunctionAddress(const char* name) {
  if (name == nullptr) return nullptr;
  if (std::strcmp(name, "clIcdGetPlatformIDsKHR") == 0)
    return reinterpret_cast<void*>(&clIcdGetPlatformIDsKHR);
  // ocl-icd asks for this one by name, before it uses the dispatch table.
  if (std::strcmp(name, "clGetPlatformInfo") == 0) return reinterpret_cast<void*>(&clGetPlatformInfo);
  return nullptr;
}

HETMM_CL_EXPORT void* CL_API_CALL clGetExtensionFunctionAddressForPlatform(cl_platform_id p,
                                                                           const char* name) {
  if (hetmm::opencl::find_object(p, hetmm::opencl::Kind::platform) == nullptr) return nullptr;
  return clGetExtensionFunctionAddress(name);
}
