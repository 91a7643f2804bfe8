// `starkv tensors FILE.safetensors`: validate a safetensors file and list its tensors (to find
// the names that `starkv build --k-name/--v-name/--q-name` need).
#include <algorithm>
#include <cstdio>
#include <string>

#include "cli.h"
#include "safetensors_file.h"

namespace starkv_cli {

int cmd_tensors(int argc, char** argv) {
  Args args("tensors", "FILE.safetensors [--filter TEXT]",
            {{"filter", "TEXT", "only tensors whose name contains TEXT"},
             {"metadata", nullptr, "also print the __metadata__ entries"},
             {"help", nullptr, "this text"}});
  args.parse(argc, argv);
  if (args.has("help")) {
    args.print_help(stdout);
    std::printf(
        "\nThe file is checked as `starkv build` checks it; a malformed file is an error.\n");
    return kExitOk;
  }
  if (args.positional().size() != 1) throw UsageError("expects exactly one safetensors file");
  const SafetensorsFile file = SafetensorsFile::open(args.positional()[0]);
  const std::string filter = args.get("filter");

  size_t name_width = 4;
  for (const SafetensorsTensor& t : file.tensors())
    name_width = std::max(name_width, t.name.size());
  const int w = static_cast<int>(std::min<size_t>(name_width, 72));
  std::printf("%-*s  %-7s  %-20s  %12s\n", w, "name", "dtype", "shape", "bytes");
  uint64_t total = 0;
  size_t shown = 0;
  for (const SafetensorsTensor& t : file.tensors()) {
    total += t.byte_size();
    if (!filter.empty() && t.name.find(filter) == std::string::npos) continue;
    ++shown;
    std::printf("%-*s  %-7s  %-20s  %12llu\n", w, t.name.c_str(), safetensors_dtype_name(t.dtype),
                t.shape_string().c_str(), static_cast<unsigned long long>(t.byte_size()));
  }
  std::printf("\n%zu tensors (%zu shown), %llu data bytes, file %llu bytes: valid\n",
              file.tensors().size(), shown, static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(file.file_size()));
  if (args.has("metadata")) {
    for (const auto& kv : file.metadata()) {
      std::printf("metadata %s = %s\n", kv.first.c_str(), kv.second.c_str());
    }
  }
  return kExitOk;
}

}  // namespace starkv_cli
