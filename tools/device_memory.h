// Buffers for the tensors a backend reads and writes: host memory for the CPU backend, device
// memory for CUDA. The tool does not link CUDA: when the library was built with CUDA, the CUDA
// runtime is already loaded into the process (libstarkv depends on it), and its entry points are
// looked up there (dlsym on the global scope); a libcudart found on the library path is the
// fallback. Without either, CUDA tests are skipped with the reason.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace starkv_cli {

class DeviceMemory {
 public:
  // Host memory (the CPU backend).
  DeviceMemory() = default;
  // Device memory through the CUDA runtime; throws CliError with the reason if it is unavailable.
  static DeviceMemory cuda();
  // The reason cuda() would fail, or "" if it would not.
  static std::string cuda_unavailable_reason();

  DeviceMemory(DeviceMemory&& other) noexcept;
  DeviceMemory& operator=(DeviceMemory&&) = delete;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();

  bool is_device() const { return device_; }
  // A buffer holding a copy of `bytes` bytes at `host`; owned by this object.
  void* upload(const void* host, size_t bytes);
  template <typename T>
  void* upload(const std::vector<T>& host) {
    return upload(host.data(), host.size() * sizeof(T));
  }
  // An uninitialized buffer; owned by this object.
  void* allocate(size_t bytes);
  // Copies `bytes` bytes from a buffer of this object (or any pointer of its kind) to the host.
  void download(void* host, const void* src, size_t bytes) const;
  void release_all();

 private:
  bool device_ = false;
  std::vector<void*> owned_;
};

}  // namespace starkv_cli
