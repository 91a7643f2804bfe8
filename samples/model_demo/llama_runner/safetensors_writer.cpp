#include "safetensors_writer.h"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace llama_runner {

void write_safetensors_f16(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    if (!t.f16 || numel != int64_t(t.f16->size()))
      throw std::runtime_error("tensor " + t.name + ": shape does not match its data");
    const uint64_t bytes = uint64_t(numel) * 2;
    header[t.name] = {{"dtype", "F16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Readers may map the data section and cast it; padding the header with spaces (which the
  // format allows) keeps the data 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) throw std::runtime_error("cannot create " + path);
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f.get()) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f.get()) == text.size();
  // The format is little-endian; so are the hosts this sample targets (x86-64, aarch64).
  for (const TensorToWrite& t : tensors)
    ok = ok && std::fwrite(t.f16->data(), 2, t.f16->size(), f.get()) == t.f16->size();
  if (!ok || std::fclose(f.release()) != 0) throw std::runtime_error("error writing " + path);
}

}  // namespace llama_runner
