#include "token_io.h"

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace llama_runner {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

}  // namespace

std::vector<int32_t> read_token_file(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error("cannot open token file " + path);
  std::vector<int32_t> ids;
  unsigned char b[4];
  while (std::fread(b, 1, 4, f.get()) == 4)
    ids.push_back(int32_t(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 |
                          uint32_t(b[3]) << 24));
  if (std::ferror(f.get())) throw std::runtime_error("error reading " + path);
  return ids;
}

void write_token_file(const std::string& path, const std::vector<int32_t>& ids) {
  File f(std::fopen(path.c_str(), "wb"));
  if (!f) throw std::runtime_error("cannot create " + path);
  for (int32_t id : ids) {
    const uint32_t u = uint32_t(id);
    const unsigned char b[4] = {static_cast<unsigned char>(u), static_cast<unsigned char>(u >> 8),
                                static_cast<unsigned char>(u >> 16),
                                static_cast<unsigned char>(u >> 24)};
    if (std::fwrite(b, 1, 4, f.get()) != 4) throw std::runtime_error("error writing " + path);
  }
}

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(" \t\n");
    if (first == std::string::npos) continue;
    size_t used = 0;
    const long v = std::stol(item.substr(first), &used);
    if (item.find_first_not_of(" \t\n", first + used) != std::string::npos)
      throw std::runtime_error("not a token id: '" + item + "'");
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string format_token_list(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace llama_runner
