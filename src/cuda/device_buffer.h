// An owning device allocation (cudaMalloc / cudaFree), movable, never copied.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "cuda/cuda_check.h"

namespace starkv {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reset(bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }

  // Allocates `bytes` (at least 16), dropping the old allocation.
  void reset(size_t bytes) {
    release();
    void* p = nullptr;
    cuda_check(cudaMalloc(&p, bytes > 16 ? bytes : 16), "cudaMalloc");
    ptr_ = p;
    bytes_ = bytes;
  }
  // Grows to at least `bytes` (contents are not kept).
  void reserve(size_t bytes) {
    if (ptr_ == nullptr || bytes_ < bytes) reset(bytes);
  }
  void release() noexcept {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Uploads a host vector into a new device buffer, ordered on `stream` (the context's stream, so
// that kernels issued there later see the data). From pageable memory the call returns once the
// bytes are staged, so `host` may go away right after.
template <typename T>
DeviceBuffer upload(const std::vector<T>& host, cudaStream_t stream) {
  DeviceBuffer b(host.size() * sizeof(T));
  if (!host.empty()) {
    cuda_check(cudaMemcpyAsync(b.get(), host.data(), host.size() * sizeof(T),
                               cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync (upload)");
  }
  return b;
}

}  // namespace starkv
