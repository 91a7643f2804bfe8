// `starkv inspect model.starkv [--json]`: a profile's per-layer ranks and sizes, and its totals.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"

namespace starkv_cli {
namespace {

struct LayerRow {
  int32_t layer = 0;
  starkv_layer_info info{};
  std::vector<int32_t> key_ranks, value_ranks;
  int32_t latent_width = 0;
  int64_t dense_bytes = 0;
};

std::vector<int32_t> ranks_of(const starkv_profile* profile, int32_t layer, starkv_tensor_kind kind,
                              int32_t groups) {
  std::vector<int32_t> ranks(static_cast<size_t>(std::max(groups, 1)));
  int32_t count = 0;
  check(starkv_profile_get_ranks(profile, layer, kind, ranks.data(),
                                 static_cast<int32_t>(ranks.size()), &count),
        "reading the ranks of layer " + std::to_string(layer));
  ranks.resize(static_cast<size_t>(std::min<int32_t>(count, static_cast<int32_t>(ranks.size()))));
  return ranks;
}

std::vector<LayerRow> read_layers(const starkv_profile* profile, const starkv_profile_info& info) {
  std::vector<LayerRow> rows;
  for (int32_t l = 0; l < info.n_layers; ++l) {
    LayerRow row;
    row.layer = l;
    row.info = starkv_layer_info_default();
    check(starkv_profile_get_layer_info(profile, l, &row.info),
          "reading layer " + std::to_string(l));
    row.key_ranks = ranks_of(profile, l, STARKV_KEYS, row.info.n_key_groups);
    row.value_ranks = ranks_of(profile, l, STARKV_VALUES, row.info.n_value_groups);
    check(starkv_profile_latent_width(profile, l, &row.latent_width),
          "reading the latent width of layer " + std::to_string(l));
    row.dense_bytes = int64_t{2} * info.n_kv_heads * info.head_dim * 2;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s;
}

std::string bits_description(const starkv_profile_info& info) {
  if (info.inlier_bits == 32) return "fp32 latents (no quantization)";
  if (info.inlier_bits == 16) return "fp16 latents (no quantization)";
  return std::to_string(info.inlier_bits) + "-bit inliers, " + std::to_string(info.outlier_bits) +
         "-bit outliers";
}

double ratio(int64_t dense, int64_t stored) {
  return stored > 0 ? static_cast<double>(dense) / static_cast<double>(stored) : 0.0;
}

void print_table(const std::string& path, const starkv_profile_info& info,
                 const std::vector<LayerRow>& rows) {
  std::printf("%s: %d layers, %d query heads, %d KV heads, head dim %d; %s\n\n", path.c_str(),
              info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim,
              bits_description(info).c_str());
  size_t key_width = std::string("key ranks (per group)").size();
  size_t value_width = std::string("value ranks").size();
  for (const LayerRow& r : rows) {
    key_width = std::max(key_width, join(r.key_ranks).size());
    value_width = std::max(value_width, join(r.value_ranks).size());
  }
  const int kw = static_cast<int>(key_width), vw = static_cast<int>(value_width);
  std::printf("%5s  %-10s  %-4s  %-*s  %-6s  %-*s  %7s  %11s  %8s\n", "layer", "compressed", "keys",
              kw, "key ranks (per group)", "values", vw, "value ranks", "latent", "bytes/token",
              "vs fp16");
  int64_t latent_total = 0, bytes_total = 0, dense_total = 0;
  for (const LayerRow& r : rows) {
    std::printf("%5d  %-10s  %-4s  %-*s  %-6s  %-*s  %7d  %11lld  %7.2fx\n", r.layer,
                r.info.compressed ? "yes" : "no", decomposition_name(r.info.key_decomposition), kw,
                join(r.key_ranks).c_str(), decomposition_name(r.info.value_decomposition), vw,
                join(r.value_ranks).c_str(), r.latent_width,
                static_cast<long long>(r.info.bytes_per_token),
                ratio(r.dense_bytes, r.info.bytes_per_token));
    latent_total += r.latent_width;
    bytes_total += r.info.bytes_per_token;
    dense_total += r.dense_bytes;
  }
  std::printf("%5s  %-10s  %-4s  %-*s  %-6s  %-*s  %7lld  %11lld  %7.2fx\n\n", "all", "", "", kw,
              "", "", vw, "", static_cast<long long>(latent_total),
              static_cast<long long>(bytes_total), ratio(dense_total, bytes_total));
}

nlohmann::ordered_json to_json(const std::string& path, const starkv_profile_info& info,
                               const std::vector<LayerRow>& rows) {
  using json = nlohmann::ordered_json;
  json layers = json::array();
  for (const LayerRow& r : rows) {
    layers.push_back({{"layer", r.layer},
                      {"compressed", r.info.compressed != 0},
                      {"key_decomposition", decomposition_name(r.info.key_decomposition)},
                      {"value_decomposition", decomposition_name(r.info.value_decomposition)},
                      {"key_ranks", r.key_ranks},
                      {"value_ranks", r.value_ranks},
                      {"latent_channels", r.latent_width},
                      {"bytes_per_token", r.info.bytes_per_token},
                      {"dense_bytes_per_token", r.dense_bytes}});
  }
  return json{
      {"file", path},
      {"library_version", starkv_version_string()},
      {"model",
       {{"n_layers", info.n_layers},
        {"n_heads", info.n_heads},
        {"n_kv_heads", info.n_kv_heads},
        {"head_dim", info.head_dim}}},
      {"quantization", {{"inlier_bits", info.inlier_bits}, {"outlier_bits", info.outlier_bits}}},
      {"n_uncompressed_layers", info.n_uncompressed_layers},
      {"layers", layers},
      {"totals",
       {{"latent_channels_per_token", info.latent_channels_per_token},
        {"dense_channels_per_token", info.dense_channels_per_token},
        {"bytes_per_token", info.bytes_per_token},
        {"dense_bytes_per_token", info.dense_bytes_per_token},
        {"low_rank_compression", info.low_rank_compression},
        {"low_rank_compression_compressed_layers", info.low_rank_compression_compressed_layers},
        {"compression", info.compression},
        {"compression_compressed_layers", info.compression_compressed_layers},
        {"compression_factor", info.compression_factor}}}};
}

}  // namespace

void print_profile_summary(FILE* out, const starkv_profile* profile) {
  starkv_profile_info info = starkv_profile_info_default();
  check(starkv_profile_get_info(profile, &info), "reading the profile's info");
  std::fprintf(out, "layers:             %d (%d kept uncompressed), H=%d, G=%d, D=%d\n",
               info.n_layers, info.n_uncompressed_layers, info.n_heads, info.n_kv_heads,
               info.head_dim);
  std::fprintf(out, "bits:               %s\n", bits_description(info).c_str());
  std::fprintf(out,
               "latent channels:    %lld per token of %lld dense -> low-rank compression "
               "%.2f%% (all layers), %.2f%% (compressed layers only)\n",
               static_cast<long long>(info.latent_channels_per_token),
               static_cast<long long>(info.dense_channels_per_token),
               100.0 * info.low_rank_compression,
               100.0 * info.low_rank_compression_compressed_layers);
  std::fprintf(out,
               "bytes per token:    %lld vs %lld dense fp16 -> compression %.2f%% (all layers), "
               "%.2f%% (compressed layers only)\n",
               static_cast<long long>(info.bytes_per_token),
               static_cast<long long>(info.dense_bytes_per_token), 100.0 * info.compression,
               100.0 * info.compression_compressed_layers);
  std::fprintf(out, "compression factor: %.2fx (dense fp16 bytes / stored bytes, all layers)\n",
               info.compression_factor);
}

int cmd_inspect(int argc, char** argv) {
  Args args("inspect", "PROFILE.starkv [--json]",
            {{"json", nullptr, "print the same as JSON"}, {"help", nullptr, "this text"}});
  args.parse(argc, argv);
  if (args.has("help")) {
    args.print_help(stdout);
    std::printf(
        "\nPer layer: whether it is compressed, the key and value decompositions (hd = one group\n"
        "per KV head, jd = one joint group), each group's rank, the latent channels and the bytes\n"
        "stored per token. Totals follow DESIGN §2.4: compression = 1 - bytes / dense fp16 bytes,\n"
        "over all layers and over the compressed layers only.\n");
    return kExitOk;
  }
  if (args.positional().size() != 1) throw UsageError("expects exactly one profile file");
  const std::string path = args.positional()[0];

  starkv_profile* raw = nullptr;
  check(starkv_profile_load(path.c_str(), &raw), "loading " + path);
  ProfilePtr profile(raw);
  starkv_profile_info info = starkv_profile_info_default();
  check(starkv_profile_get_info(profile.get(), &info), "reading the profile's info");
  const std::vector<LayerRow> rows = read_layers(profile.get(), info);

  if (args.has("json")) {
    std::printf("%s\n", to_json(path, info, rows).dump(2).c_str());
    return kExitOk;
  }
  print_table(path, info, rows);
  print_profile_summary(stdout, profile.get());
  return kExitOk;
}

}  // namespace starkv_cli
