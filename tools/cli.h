// Shared pieces of the `starkv` command-line tool: the subcommands, option parsing, errors, and
// owning wrappers for the C handles. The tool uses only the public C API, like any user program.
#pragma once

#include <starkv/starkv.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace starkv_cli {

// ---- subcommands: each returns the process exit code --------------------------------------------
int cmd_build(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_selftest(int argc, char** argv);
int cmd_tensors(int argc, char** argv);

// Exit codes.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;   // a check failed, or a runtime error
constexpr int kExitUsage = 2;     // bad command line
constexpr int kExitSkipped = 77;  // selftest: the requested backend is not available here

// ---- errors -------------------------------------------------------------------------------------
// A runtime failure: printed as "starkv <command>: error: <message>", exit 1.
class CliError : public std::runtime_error {
 public:
  explicit CliError(const std::string& message) : std::runtime_error(message) {}
};
// A bad command line: printed with a pointer to --help, exit 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

// Throws CliError("<what>: <status string>: <starkv_last_error()>") unless status is STARKV_OK.
void check(starkv_status status, const std::string& what);

// ---- owning wrappers for handles ----------------------------------------------------------------
struct ContextDeleter {
  void operator()(starkv_context* p) const { starkv_context_destroy(p); }
};
struct ProfileDeleter {
  void operator()(starkv_profile* p) const { starkv_profile_destroy(p); }
};
struct BuilderDeleter {
  void operator()(starkv_profile_builder* p) const { starkv_profile_builder_destroy(p); }
};
struct PoolDeleter {
  void operator()(starkv_cache_pool* p) const { starkv_cache_pool_destroy(p); }
};
struct StepDeleter {
  void operator()(starkv_decode_step* p) const { starkv_decode_step_destroy(p); }
};
using ContextPtr = std::unique_ptr<starkv_context, ContextDeleter>;
using ProfilePtr = std::unique_ptr<starkv_profile, ProfileDeleter>;
using BuilderPtr = std::unique_ptr<starkv_profile_builder, BuilderDeleter>;
using PoolPtr = std::unique_ptr<starkv_cache_pool, PoolDeleter>;
using StepPtr = std::unique_ptr<starkv_decode_step, StepDeleter>;

// ---- option parsing -----------------------------------------------------------------------------
// Options are --name VALUE, --name=VALUE, or --name for flags. Anything else is positional.
// "--" ends the options.
struct OptionSpec {
  const char* name;        // without the leading dashes
  const char* value_name;  // nullptr for a flag
  const char* help;
  bool repeatable = false;
};

class Args {
 public:
  Args(std::string command, std::string synopsis, std::vector<OptionSpec> specs);
  // Throws UsageError for an unknown option, a missing value, a repeated option.
  void parse(int argc, char** argv);

  bool has(const char* name) const;
  std::string get(const char* name, const std::string& fallback = "") const;
  std::vector<std::string> get_all(const char* name) const;
  // Numbers are range-checked; a malformed or out-of-range value is a UsageError.
  int64_t get_int(const char* name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const char* name, double fallback, double min, double max) const;
  // One of `choices` (as given), or UsageError listing them.
  std::string get_choice(const char* name, const std::string& fallback,
                         const std::vector<std::string>& choices) const;
  const std::vector<std::string>& positional() const { return positional_; }

  void print_help(FILE* out) const;

 private:
  const OptionSpec* spec(const std::string& name) const;

  std::string command_, synopsis_;
  std::vector<OptionSpec> specs_;
  std::vector<std::pair<std::string, std::string>> values_;  // in command-line order
  std::vector<std::string> positional_;
};

// Splits "0,1,2,-1" into integers (callers give negative values their meaning); UsageError on
// anything else.
std::vector<int32_t> parse_int_list(const std::string& text, const char* option);

// ---- shared output ------------------------------------------------------------------------------
// The profile's totals (DESIGN §2.4): bytes per token vs dense fp16, compression (all layers and
// compressed layers only), low-rank compression, compression factor, bits.
void print_profile_summary(FILE* out, const starkv_profile* profile);

const char* rope_style_name(starkv_rope_style style);
const char* decomposition_name(starkv_decomposition d);  // "hd" / "jd"

}  // namespace starkv_cli
