// Token ids in and out, without a tokenizer: files of int32 little-endian ids (what
// prepare_model.py writes) and comma-separated lists on the command line. Text <-> ids
// happens in Python (tokenizer_cli.py), so the runner needs no tokenizer library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llama_runner {

std::vector<int32_t> read_token_file(const std::string& path);  // throws std::runtime_error
void write_token_file(const std::string& path, const std::vector<int32_t>& ids);
std::vector<int32_t> parse_token_list(const std::string& text);  // "1, 2,3" -> {1, 2, 3}
std::string format_token_list(const std::vector<int32_t>& ids);  // {1, 2, 3} -> "1,2,3"

}  // namespace llama_runner
