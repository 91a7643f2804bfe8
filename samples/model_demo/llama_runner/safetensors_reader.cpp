#include "safetensors_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "half_float.h"

namespace llama_runner {

namespace {

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
  throw std::runtime_error("safetensors: unknown dtype " + dtype);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 8) {
    ::close(fd);
    throw std::runtime_error(path + ": not a safetensors file (too small)");
  }
  map_size_ = size_t(st.st_size);
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw std::runtime_error("cannot mmap " + path);
  }
  const auto* bytes = static_cast<const unsigned char*>(map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > map_size_ - 8) throw std::runtime_error(path + ": header length out of range");
  const unsigned char* base = bytes + 8 + header_len;
  const size_t data_size = map_size_ - 8 - header_len;

  const auto header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    TensorView t;
    t.dtype = info.at("dtype").get<std::string>();
    t.shape = info.at("shape").get<std::vector<int64_t>>();
    const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
      throw std::runtime_error(path + ": bad data_offsets for " + name);
    t.data = base + offsets[0];
    t.nbytes = size_t(offsets[1] - offsets[0]);
    if (size_t(t.numel()) * dtype_size(t.dtype) != t.nbytes)
      throw std::runtime_error(path + ": size of " + name + " does not match its shape");
    tensors_.emplace(name, std::move(t));
  }
}

SafetensorsReader::~SafetensorsReader() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorView& SafetensorsReader::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::runtime_error(path_ + ": no tensor named " + name);
  return it->second;
}

std::vector<float> SafetensorsReader::to_float(const std::string& name,
                                               const std::vector<int64_t>& expected_shape) const {
  const TensorView& t = tensor(name);
  if (t.shape != expected_shape)
    throw std::runtime_error(name + ": shape " + shape_string(t.shape) + ", expected " +
                             shape_string(expected_shape));
  std::vector<float> out(size_t(t.numel()));
  // Element-wise copies through memcpy: the mapping gives no alignment guarantee.
  if (t.dtype == "F32") {
    std::memcpy(out.data(), t.data, t.nbytes);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool bf16 = t.dtype == "BF16";
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out[i] = bf16 ? bf16_to_float(h) : half_to_float(h);
    }
  } else {
    throw std::runtime_error(name + ": dtype " + t.dtype + " is not a float type");
  }
  return out;
}

}  // namespace llama_runner
