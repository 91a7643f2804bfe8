// `starkv`: build, inspect and test compressed-KV-cache profiles from the command line.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli.h"
#include "safetensors_file.h"

namespace {

using namespace starkv_cli;

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
};

const Command kCommands[] = {
    {"build", cmd_build, "build a profile from a model's weights (safetensors) -> .starkv"},
    {"inspect", cmd_inspect, "show a profile's ranks, bytes per token and compression"},
    {"selftest", cmd_selftest, "check the library end to end on a synthetic model"},
    {"tensors", cmd_tensors, "list (and validate) the tensors of a safetensors file"},
};

void print_usage(FILE* out) {
  std::fprintf(out,
               "starkv %s: compressed KV cache for LLM inference (STAR-KV)\n\n"
               "usage: starkv <command> [options]\n\n"
               "commands:\n",
               starkv_version_string());
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out,
               "  %-10s %s\n  %-10s %s\n\n"
               "Run 'starkv <command> --help' for a command's options. Examples:\n"
               "  starkv build --weights model.safetensors --config config.json --target 0.75 \\\n"
               "               --bits 3 --outlier-bits 4 --out model.starkv\n"
               "  starkv inspect model.starkv\n"
               "  starkv selftest\n",
               "help", "this text ('starkv help <command>' for a command's options)", "version",
               "library and header versions, available backends");
}

int print_version() {
  std::printf("starkv %s (library %s, ABI %u; tool built against %d.%d.%d, ABI %d)\n",
              starkv_version_string(), starkv_version_string(), starkv_abi_version(),
              STARKV_VERSION_MAJOR, STARKV_VERSION_MINOR, STARKV_VERSION_PATCH, STARKV_ABI_VERSION);
  std::printf("backends: cpu %s, cuda %s\n",
              starkv_backend_available(STARKV_BACKEND_CPU) ? "yes" : "no",
              starkv_backend_available(STARKV_BACKEND_CUDA) ? "yes" : "no");
  if (starkv_abi_version() != STARKV_ABI_VERSION) {
    std::fprintf(stderr, "warning: the loaded library has ABI %u, this tool expects %d\n",
                 starkv_abi_version(), STARKV_ABI_VERSION);
    return kExitFailure;
  }
  return kExitOk;
}

const Command* find_command(const char* name) {
  for (const Command& c : kCommands) {
    if (std::strcmp(c.name, name) == 0) return &c;
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return kExitUsage;
  }
  const std::string first = argv[1];
  if (first == "--version" || first == "-V" || first == "version") return print_version();
  if (first == "help" || first == "--help" || first == "-h") {
    if (argc > 2 && find_command(argv[2])) {
      char help[] = "--help";
      char* args[] = {help};
      return find_command(argv[2])->run(1, args);
    }
    print_usage(stdout);
    return kExitOk;
  }
  const Command* command = find_command(argv[1]);
  if (!command) {
    std::fprintf(stderr, "starkv: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return kExitUsage;
  }
  // A mismatch between header and library would make struct_size checks fail in confusing ways.
  if (starkv_abi_version() != STARKV_ABI_VERSION) {
    std::fprintf(stderr, "starkv: the loaded library has ABI %u but this tool was built for %d\n",
                 starkv_abi_version(), STARKV_ABI_VERSION);
    return kExitFailure;
  }
  try {
    return command->run(argc - 2, argv + 2);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "starkv %s: %s\nRun 'starkv %s --help' for the options.\n", command->name,
                 e.what(), command->name);
    return kExitUsage;
  } catch (const std::exception& e) {
    // CliError, SafetensorsError, and anything unexpected (std::bad_alloc) end up here.
    std::fprintf(stderr, "starkv %s: error: %s\n", command->name, e.what());
    return kExitFailure;
  }
}
