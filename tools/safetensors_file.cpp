#include "safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "half_float.h"

namespace starkv_cli {
namespace {

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

struct DtypeEntry {
  SafetensorsDtype dtype;
  const char* name;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {SafetensorsDtype::BOOL, "BOOL", 1},       {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::I8, "I8", 1},           {SafetensorsDtype::F8_E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::F8_E4M3, "F8_E4M3", 1}, {SafetensorsDtype::I16, "I16", 2},
    {SafetensorsDtype::U16, "U16", 2},         {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2},       {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::U32, "U32", 4},         {SafetensorsDtype::F32, "F32", 4},
    {SafetensorsDtype::F64, "F64", 8},         {SafetensorsDtype::I64, "I64", 8},
    {SafetensorsDtype::U64, "U64", 8},
};

const DtypeEntry& entry_of(SafetensorsDtype dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e;
  }
  return kDtypes[0];  // unreachable: every enumerator has an entry
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string errno_text() { return std::strerror(errno); }

// Reads a non-negative JSON integer; false for anything else (negative, fractional, a string).
bool json_u64(const nlohmann::json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

std::string quote_name(const std::string& s) {
  // Names come from the file: keep messages on one line and readable.
  std::string q = "'";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      q += "?";
    } else {
      q += c;
    }
  }
  return q + "'";
}

}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype dtype) { return entry_of(dtype).name; }

size_t safetensors_dtype_size(SafetensorsDtype dtype) { return entry_of(dtype).size; }

bool parse_safetensors_dtype(const std::string& name, SafetensorsDtype* dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name) {
      *dtype = e.dtype;
      return true;
    }
  }
  return false;
}

uint64_t SafetensorsTensor::element_count() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);  // validated not to overflow at open
  return n;
}

std::string SafetensorsTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// ---- opening ------------------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SafetensorsError(path + ": cannot open: " + errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw SafetensorsError(path + ": cannot stat: " + why);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw SafetensorsError(path + ": is a directory, not a safetensors file");
  }
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m != MAP_FAILED) {
      file.mapping_ = m;
      file.bytes_ = static_cast<const uint8_t*>(m);
      file.size_ = static_cast<uint64_t>(st.st_size);
    }
  }
  if (!file.mapping_) {
    // Not mappable (a pipe, an empty file, a file system without mmap): read it instead.
    char buffer[1 << 16];
    for (;;) {
      const ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got < 0) {
        if (errno == EINTR) continue;
        const std::string why = errno_text();
        ::close(fd);
        throw SafetensorsError(path + ": read failed: " + why);
      }
      if (got == 0) break;
      file.owned_.insert(file.owned_.end(), buffer, buffer + got);
    }
    file.bytes_ = file.owned_.data();
    file.size_ = file.owned_.size();
  }
  ::close(fd);
  file.parse();
  return file;
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, const std::string& label) {
  SafetensorsFile file;
  file.path_ = label;
  file.owned_ = std::move(bytes);
  file.bytes_ = file.owned_.data();
  file.size_ = file.owned_.size();
  file.parse();
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this == &other) return *this;
  release();
  path_ = std::move(other.path_);
  size_ = other.size_;
  mapping_ = other.mapping_;
  // A moved vector keeps its buffer, so pointers into owned_ (bytes_, tensor data) stay valid.
  owned_ = std::move(other.owned_);
  bytes_ = other.bytes_;
  tensors_ = std::move(other.tensors_);
  index_ = std::move(other.index_);
  metadata_ = std::move(other.metadata_);
  other.mapping_ = nullptr;
  other.bytes_ = nullptr;
  other.size_ = 0;
  other.tensors_.clear();
  other.index_.clear();
  return *this;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() {
  if (mapping_) ::munmap(mapping_, static_cast<size_t>(size_));
  mapping_ = nullptr;
  bytes_ = nullptr;
  size_ = 0;
  owned_.clear();
  tensors_.clear();
  index_.clear();
  metadata_.clear();
}

// ---- validation ---------------------------------------------------------------------------------

void SafetensorsFile::parse() {
  const std::string& where = path_;
  auto fail = [&where](const std::string& what) { throw SafetensorsError(where + ": " + what); };

  if (size_ < 8) {
    fail("not a safetensors file: " + std::to_string(size_) +
         " bytes, too short for the 8-byte header length");
  }
  const uint64_t header_len = read_u64_le(bytes_);
  if (header_len == 0) fail("not a safetensors file: the header length is 0");
  if (header_len > kMaxHeaderBytes) {
    fail("not a safetensors file: header length " + std::to_string(header_len) +
         " is larger than the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (header_len > size_ - 8) {
    fail("truncated or not a safetensors file: the header length says " +
         std::to_string(header_len) + " bytes but only " + std::to_string(size_ - 8) +
         " follow it");
  }
  const char* header = reinterpret_cast<const char*>(bytes_ + 8);
  if (header[0] != '{') fail("not a safetensors file: the header does not start with '{'");

  // Parse, noting duplicate top-level names (nlohmann would silently keep the last one).
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t note_duplicates =
      [&seen, &duplicate](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (event == nlohmann::json::parse_event_t::key && depth == 1) {
          const std::string key = parsed.get<std::string>();
          if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
        }
        return true;
      };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(header, header + header_len, note_duplicates);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail("the header is not a JSON object");
  if (!duplicate.empty()) fail("the header names tensor " + quote_name(duplicate) + " twice");

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size_ - data_start;

  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not a JSON object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          fail("__metadata__ entry " + quote_name(m.key()) + " is not a string");
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor " + quote_name(name);
    if (!value.is_object()) fail(what + ": its header entry is not a JSON object");
    const auto dtype_it = value.find("dtype");
    const auto shape_it = value.find("shape");
    const auto offsets_it = value.find("data_offsets");
    if (dtype_it == value.end() || shape_it == value.end() || offsets_it == value.end()) {
      fail(what + ": its header entry needs \"dtype\", \"shape\" and \"data_offsets\"");
    }

    SafetensorsTensor t;
    t.name = name;
    if (!dtype_it->is_string()) fail(what + ": dtype is not a string");
    if (!parse_safetensors_dtype(dtype_it->get<std::string>(), &t.dtype)) {
      fail(what + ": unknown dtype " + quote_name(dtype_it->get<std::string>()));
    }

    if (!shape_it->is_array()) fail(what + ": shape is not an array");
    uint64_t elements = 1;
    bool overflow = false;
    for (const nlohmann::json& d : *shape_it) {
      uint64_t dim = 0;
      if (!json_u64(d, &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(what + ": shape " + shape_it->dump() + " has an entry that is not a size");
      }
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      elements *= dim;
    }
    const uint64_t element_size = safetensors_dtype_size(t.dtype);
    if (overflow || elements > std::numeric_limits<uint64_t>::max() / element_size) {
      fail(what + ": shape " + t.shape_string() + " is too large");
    }

    if (!offsets_it->is_array() || offsets_it->size() != 2 ||
        !json_u64((*offsets_it)[0], &t.begin) || !json_u64((*offsets_it)[1], &t.end)) {
      fail(what + ": data_offsets " + offsets_it->dump() + " is not a pair [begin, end]");
    }
    if (t.begin > t.end) {
      fail(what + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           "] end before they begin");
    }
    if (t.end > data_size) {
      fail(what + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           "] reach past the end of the data section (" + std::to_string(data_size) +
           " bytes): the file is truncated or corrupt");
    }
    if (t.byte_size() != elements * element_size) {
      fail(what + ": shape " + t.shape_string() + " of " + safetensors_dtype_name(t.dtype) +
           " needs " + std::to_string(elements * element_size) + " bytes but data_offsets [" +
           std::to_string(t.begin) + ", " + std::to_string(t.end) + "] hold " +
           std::to_string(t.byte_size()));
    }
    t.data = bytes_ + data_start + t.begin;
    tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data section: sorted by offset, each begins where the last ended.
  std::stable_sort(tensors_.begin(), tensors_.end(),
                   [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t covered = 0;
  const SafetensorsTensor* previous = nullptr;
  for (const SafetensorsTensor& t : tensors_) {
    if (t.begin < covered) {
      fail("tensors " + quote_name(previous->name) + " and " + quote_name(t.name) +
           " overlap in the data section (bytes " + std::to_string(t.begin) + " to " +
           std::to_string(covered) + ")");
    }
    if (t.begin > covered) {
      fail("bytes " + std::to_string(covered) + " to " + std::to_string(t.begin) +
           " of the data section belong to no tensor (before " + quote_name(t.name) + ")");
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    fail(std::to_string(data_size - covered) + " bytes after the last tensor belong to no tensor");
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

// ---- access -------------------------------------------------------------------------------------

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensor& SafetensorsFile::get(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) throw SafetensorsError("tensor " + quote_name(name) + " not found in " + path_);
  return *t;
}

std::vector<float> SafetensorsFile::to_f32(const SafetensorsTensor& tensor) {
  const uint64_t n = tensor.element_count();
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = tensor.data;
  // memcpy element by element: the data may be unaligned.
  switch (tensor.dtype) {
    case SafetensorsDtype::F32:
      if (n) std::memcpy(out.data(), p, static_cast<size_t>(n) * 4);
      break;
    case SafetensorsDtype::F16:
    case SafetensorsDtype::BF16: {
      const bool half = tensor.dtype == SafetensorsDtype::F16;
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, p + 2 * i, 2);
        out[i] = half ? half_to_float(bits) : bf16_to_float(bits);
      }
      break;
    }
    case SafetensorsDtype::F64:
      for (uint64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    default:
      throw SafetensorsError("tensor " + quote_name(tensor.name) + " has dtype " +
                             safetensors_dtype_name(tensor.dtype) +
                             "; expected F32, F16, BF16 or F64");
  }
  return out;
}

// ---- writing ------------------------------------------------------------------------------------

std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsTensorToWrite>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const SafetensorsTensorToWrite& t : tensors) {
    uint64_t bytes = safetensors_dtype_size(t.dtype);
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';

  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* data = out.data() + 8 + text.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i]) std::memcpy(data, tensors[i].data, static_cast<size_t>(sizes[i]));
    data += sizes[i];
  }
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<SafetensorsTensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw SafetensorsError(path + ": cannot create: " + errno_text());
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f.flush()) throw SafetensorsError(path + ": write failed: " + errno_text());
}

}  // namespace starkv_cli
