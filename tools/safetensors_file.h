// A small, strict reader (and writer) of the safetensors format.
//
// Layout of a file: an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON (an
// object mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, plus an
// optional "__metadata__" object of strings), possibly padded with spaces; then the data section,
// the tensors' raw little-endian bytes, row-major. Offsets are relative to the data section.
//
// The reader checks everything the format promises before handing out a pointer: the header length
// fits the file, the JSON is an object with well-formed entries and no duplicate names, every dtype
// is known, every tensor's byte span equals shape x dtype size, and the tensors tile the data
// section exactly (no overlap, no hole, nothing after the last one: the same rules as the reference
// implementation). A file that breaks any of them is rejected with a SafetensorsError naming the
// file, the tensor and the numbers involved.
//
// The file is memory-mapped (read into memory where mapping is impossible); tensor data pointers
// stay valid as long as the SafetensorsFile lives. They may be unaligned: the data section starts
// at byte 8 + N, and writers are not obliged to pad N.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace starkv_cli {

enum class SafetensorsDtype {
  BOOL,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64
};

// "F16", "BF16", ... as spelled in files.
const char* safetensors_dtype_name(SafetensorsDtype dtype);
size_t safetensors_dtype_size(SafetensorsDtype dtype);
// False when the name is not a dtype this reader knows.
bool parse_safetensors_dtype(const std::string& name, SafetensorsDtype* dtype);

class SafetensorsError : public std::runtime_error {
 public:
  explicit SafetensorsError(const std::string& message) : std::runtime_error(message) {}
};

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets within the data section
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // the first byte; possibly unaligned

  uint64_t byte_size() const { return end - begin; }
  uint64_t element_count() const;
  // "[1024, 4096]"
  std::string shape_string() const;
};

class SafetensorsFile {
 public:
  // Maps and validates a file; throws SafetensorsError.
  static SafetensorsFile open(const std::string& path);
  // Validates an in-memory image of a file (tests, fuzzing); `label` names it in messages.
  static SafetensorsFile from_bytes(std::vector<uint8_t> bytes, const std::string& label);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  // Tensors in data order (by offset).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const SafetensorsTensor* find(const std::string& name) const;
  // Throws SafetensorsError ("tensor 'x' not found in FILE") when absent.
  const SafetensorsTensor& get(const std::string& name) const;

  // The tensor's elements as fp32, converted from F32, F16, BF16 or F64; throws for other dtypes.
  static std::vector<float> to_f32(const SafetensorsTensor& tensor);

 private:
  SafetensorsFile() = default;
  void parse();
  void release();

  std::string path_;
  const uint8_t* bytes_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;     // non-null when bytes_ is an mmap
  std::vector<uint8_t> owned_;  // the bytes when not mapped
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// --- writing (test fixtures, synthetic models) ---
struct SafetensorsTensorToWrite {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  const void* data;  // shape x dtype bytes
};

// A complete file image: header padded with spaces so the data section starts 8-byte aligned.
std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsTensorToWrite>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});
// Writes serialize_safetensors(...) to path; throws SafetensorsError on I/O failure.
void write_safetensors(const std::string& path,
                       const std::vector<SafetensorsTensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace starkv_cli
