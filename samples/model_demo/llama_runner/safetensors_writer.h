// Writes a .safetensors file: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets}, then the tensors' bytes back to back. Used for the
// calibration samples that `starkv build --calib-kv` reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llama_runner {

struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<uint16_t>* f16 = nullptr;  // IEEE half bit patterns, row-major; not owned
};

// Throws std::runtime_error if the file cannot be written.
void write_safetensors_f16(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace llama_runner
