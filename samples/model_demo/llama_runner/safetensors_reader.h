// Read-only view of a .safetensors file: an 8-byte little-endian header length, a JSON header
// mapping tensor names to {dtype, shape, data_offsets}, then the raw tensor bytes. The file is
// memory-mapped; tensors are converted to fp32 on request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llama_runner {

struct TensorView {
  std::string dtype;             // "F32", "F16" or "BF16" (others are rejected on conversion)
  std::vector<int64_t> shape;    // row-major, slowest dimension first
  const unsigned char* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);  // throws std::runtime_error
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& tensor(const std::string& name) const;  // throws if missing
  // The tensor converted to fp32; throws if its shape differs from expected_shape.
  std::vector<float> to_float(const std::string& name,
                              const std::vector<int64_t>& expected_shape) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace llama_runner
