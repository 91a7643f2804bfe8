#include "device_memory.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "cli.h"

namespace starkv_cli {
namespace {

// The few CUDA runtime entry points the self-test needs (cudaError_t is an int-sized enum).
struct CudaRuntime {
  int (*malloc_fn)(void**, size_t) = nullptr;
  int (*free_fn)(void*) = nullptr;
  int (*memcpy_fn)(void*, const void*, size_t, int) = nullptr;
  const char* (*error_string)(int) = nullptr;
  std::string missing;  // why it is unusable, "" when usable
};
constexpr int kHostToDevice = 1;
constexpr int kDeviceToHost = 2;

template <typename F>
bool lookup(void* handle, const char* name, F* fn) {
  void* p = dlsym(handle, name);
  if (!p) return false;
  static_assert(sizeof(F) == sizeof(void*), "function pointer size");
  std::memcpy(fn, &p, sizeof p);  // object -> function pointer without a cast warning
  return true;
}

bool resolve(void* handle, CudaRuntime* rt) {
  return lookup(handle, "cudaMalloc", &rt->malloc_fn) && lookup(handle, "cudaFree", &rt->free_fn) &&
         lookup(handle, "cudaMemcpy", &rt->memcpy_fn) &&
         lookup(handle, "cudaGetErrorString", &rt->error_string);
}

const CudaRuntime& runtime() {
  static const CudaRuntime rt = [] {
    CudaRuntime r;
    if (resolve(RTLD_DEFAULT, &r)) return r;  // loaded already, with libstarkv
    for (const char* name :
         {"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"}) {
      void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (handle && resolve(handle, &r)) return r;  // the handle stays open for the process
    }
    r = CudaRuntime{};
    r.missing =
        "the CUDA runtime (cudaMalloc) is neither loaded with libstarkv nor found as "
        "libcudart.so";
    return r;
  }();
  return rt;
}

void cuda_check(int err, const char* what) {
  if (err != 0) {
    throw CliError(std::string(what) + " failed: " + runtime().error_string(err));
  }
}

}  // namespace

std::string DeviceMemory::cuda_unavailable_reason() { return runtime().missing; }

DeviceMemory DeviceMemory::cuda() {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) throw CliError(why);
  DeviceMemory m;
  m.device_ = true;
  return m;
}

DeviceMemory::DeviceMemory(DeviceMemory&& other) noexcept
    : device_(other.device_), owned_(std::move(other.owned_)) {
  other.owned_.clear();
}

DeviceMemory::~DeviceMemory() { release_all(); }

void DeviceMemory::release_all() {
  for (void* p : owned_) {
    if (device_) {
      runtime().free_fn(p);
    } else {
      std::free(p);
    }
  }
  owned_.clear();
}

void* DeviceMemory::allocate(size_t bytes) {
  void* p = nullptr;
  const size_t n = bytes ? bytes : 1;
  if (device_) {
    cuda_check(runtime().malloc_fn(&p, n), "cudaMalloc");
  } else {
    p = std::malloc(n);
    if (!p) throw CliError("out of host memory");
  }
  owned_.push_back(p);
  return p;
}

void* DeviceMemory::upload(const void* host, size_t bytes) {
  void* p = allocate(bytes);
  if (bytes == 0) return p;
  if (device_) {
    cuda_check(runtime().memcpy_fn(p, host, bytes, kHostToDevice), "cudaMemcpy to the device");
  } else {
    std::memcpy(p, host, bytes);
  }
  return p;
}

void DeviceMemory::download(void* host, const void* src, size_t bytes) const {
  if (bytes == 0) return;
  if (device_) {
    cuda_check(runtime().memcpy_fn(host, src, bytes, kDeviceToHost), "cudaMemcpy to the host");
  } else {
    std::memcpy(host, src, bytes);
  }
}

}  // namespace starkv_cli
