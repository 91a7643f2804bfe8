// Option parsing and small shared helpers of the command-line tool.
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cli.h"

namespace starkv_cli {

void check(starkv_status status, const std::string& what) {
  if (status == STARKV_OK) return;
  std::string message = what + ": " + starkv_status_string(status);
  const char* detail = starkv_last_error();
  if (detail && *detail) message += ": " + std::string(detail);
  throw CliError(message);
}

Args::Args(std::string command, std::string synopsis, std::vector<OptionSpec> specs)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), specs_(std::move(specs)) {}

const OptionSpec* Args::spec(const std::string& name) const {
  for (const OptionSpec& s : specs_) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

void Args::parse(int argc, char** argv) {
  bool options_done = false;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (!options_done && arg.size() > 1 && arg[0] == '-' && arg != "-" &&
          !(std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.')) {
        throw UsageError("unknown option '" + arg + "' (options are spelled --name)");
      }
      positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const OptionSpec* s = spec(name);
    if (!s) throw UsageError("unknown option '--" + name + "'");
    if (s->value_name) {
      if (!has_value) {
        if (i + 1 >= argc) throw UsageError("option '--" + name + "' needs a value");
        value = argv[++i];
      }
    } else if (has_value) {
      throw UsageError("option '--" + name + "' takes no value");
    }
    if (!s->repeatable && has(s->name)) {
      throw UsageError("option '--" + name + "' given twice");
    }
    values_.emplace_back(name, value);
  }
}

bool Args::has(const char* name) const {
  for (const auto& kv : values_) {
    if (kv.first == name) return true;
  }
  return false;
}

std::string Args::get(const char* name, const std::string& fallback) const {
  for (const auto& kv : values_) {
    if (kv.first == name) return kv.second;
  }
  return fallback;
}

std::vector<std::string> Args::get_all(const char* name) const {
  std::vector<std::string> out;
  for (const auto& kv : values_) {
    if (kv.first == name) out.push_back(kv.second);
  }
  return out;
}

int64_t Args::get_int(const char* name, int64_t fallback, int64_t min, int64_t max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) {
    throw UsageError("--" + std::string(name) + " expects an integer, not '" + text + "'");
  }
  if (v < min || v > max) {
    throw UsageError("--" + std::string(name) + " must be between " + std::to_string(min) +
                     " and " + std::to_string(max) + " (got " + text + ")");
  }
  return v;
}

double Args::get_double(const char* name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    throw UsageError("--" + std::string(name) + " expects a number, not '" + text + "'");
  }
  if (v < min || v > max) {
    char range[96];
    std::snprintf(range, sizeof range, " must be between %g and %g (got ", min, max);
    throw UsageError("--" + std::string(name) + range + text + ")");
  }
  return v;
}

std::string Args::get_choice(const char* name, const std::string& fallback,
                             const std::vector<std::string>& choices) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  std::string list;
  for (const std::string& c : choices) {
    if (c == v) return v;
    list += (list.empty() ? "" : ", ") + c;
  }
  throw UsageError("--" + std::string(name) + " must be one of " + list + " (got '" + v + "')");
}

void Args::print_help(FILE* out) const {
  std::fprintf(out, "usage: starkv %s %s\n", command_.c_str(), synopsis_.c_str());
  if (specs_.empty()) return;
  std::fprintf(out, "\noptions:\n");
  for (const OptionSpec& s : specs_) {
    std::string left = std::string("  --") + s.name;
    if (s.value_name) left += std::string(" ") + s.value_name;
    if (left.size() < 30) {
      std::fprintf(out, "%-30s %s\n", left.c_str(), s.help);
    } else {
      std::fprintf(out, "%s\n%-30s %s\n", left.c_str(), "", s.help);
    }
  }
}

std::vector<int32_t> parse_int_list(const std::string& text, const char* option) {
  std::vector<int32_t> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
      throw UsageError("--" + std::string(option) + " expects comma-separated integers, not '" +
                       text + "'");
    }
    out.push_back(static_cast<int32_t>(v));
    start = comma + 1;
  }
  return out;
}

const char* rope_style_name(starkv_rope_style style) {
  switch (style) {
    case STARKV_ROPE_NEOX:
      return "neox";
    case STARKV_ROPE_GPTJ:
      return "gptj";
    case STARKV_ROPE_NONE:
      return "none";
  }
  return "?";
}

const char* decomposition_name(starkv_decomposition d) {
  return d == STARKV_DECOMP_JOINT ? "jd" : "hd";
}

}  // namespace starkv_cli
