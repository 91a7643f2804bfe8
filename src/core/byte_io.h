// Little-endian serialization with bounds checks: every read of a truncated or inconsistent buffer
// throws STARKV_ERR_CORRUPT_DATA instead of reading past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace starkv {

class ByteWriter {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));  // little-endian hosts only (x86-64, arm64)
  }
  void put_floats(const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size() * sizeof(float));
  }
  void put_bytes(const std::vector<uint8_t>& v) { bytes_.insert(bytes_.end(), v.begin(), v.end()); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}

  template <class T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::vector<float> get_floats(size_t n) {
    need_elements(n, sizeof(float));
    std::vector<float> v(n);
    std::memcpy(v.data(), data_ + pos_, n * sizeof(float));
    pos_ += n * sizeof(float);
    return v;
  }
  std::vector<uint8_t> get_bytes(size_t n) {
    need_elements(n, 1);
    std::vector<uint8_t> v(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return v;
  }
  size_t remaining() const { return size_ - pos_; }
  void expect_end() const {
    require(pos_ == size_, STARKV_ERR_CORRUPT_DATA,
            what_ + " has " + std::to_string(size_ - pos_) + " unexpected trailing bytes");
  }

 private:
  void need(size_t n) const {
    require(n <= size_ - pos_, STARKV_ERR_CORRUPT_DATA,
            what_ + " is truncated (needs " + std::to_string(n) + " more bytes at offset " +
                std::to_string(pos_) + ", has " + std::to_string(size_ - pos_) + ")");
  }
  // Checked before allocating, so a corrupt count cannot ask for absurd memory.
  void need_elements(size_t n, size_t element_size) const {
    require(n <= (size_ - pos_) / element_size, STARKV_ERR_CORRUPT_DATA,
            what_ + " is truncated or corrupt (a count of " + std::to_string(n) +
                " elements exceeds the remaining " + std::to_string(size_ - pos_) + " bytes)");
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace starkv
