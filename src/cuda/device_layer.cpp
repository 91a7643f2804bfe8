#include "cuda/device_layer.h"

#include <cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/rope.h"
#include "cuda/projection_plan.h"

namespace starkv {
namespace {

int32_t round_up(int32_t x, int32_t m) { return (x + m - 1) / m * m; }

// Encodes a 2-D tensor map (CUtensorMap, 128 bytes into `out`) of `rows` rows of `width` 4-byte
// elements, `pitch` bytes apart, from `base`, with boxes of box_rows x box_width elements (those
// past `width` read as zeros). The driver's encoder is looked up through the runtime, so the
// library links no libcuda. False when the driver has no encoder or rejects the shape.
// No L2 promotion: a chunk's key span does not start on a 128- or 256-byte boundary, so promoted
// fills dragged in the neighbouring chunks' bytes. With 256-byte promotion the Llama-2-like fold
// read 1.10 GB from HBM per launch, without it 0.96 GB, in the same time (fold 441.9 against 437.7
// us; steps within 0.3% at 75% and 60%; bench/RESULTS.md, tenth session).
bool encode_row_map(const uint8_t* base, int32_t width, int64_t rows, int32_t pitch,
                    int32_t box_width, int32_t box_rows, uint8_t* out) {
  using Encode =
      CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static const Encode encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return static_cast<Encode>(nullptr);
    }
    return reinterpret_cast<Encode>(fn);
  }();
  if (encode == nullptr || width < 1 || rows < 1) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(width), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(pitch)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_width), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  static_assert(sizeof(CUtensorMap) == 128, "a tensor map is 128 bytes");
  CUtensorMap map;
  const CUresult r =
      encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT32, 2, const_cast<uint8_t*>(base), dims, strides,
             box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
             CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) return false;
  std::memcpy(out, &map, sizeof(map));
  return true;
}

// The group of `groups` that covers KV head g, and its first latent channel (relative to the
// first group's).
const FactorGroup& group_of_head(const std::vector<FactorGroup>& groups, int32_t g, int32_t D,
                                 int32_t* channel_offset) {
  int32_t offset = 0;
  for (const FactorGroup& grp : groups) {
    if (grp.in_offset <= g * D && g * D < grp.in_offset + grp.in_dim) {
      *channel_offset = offset;
      return grp;
    }
    offset += grp.rank;
  }
  throw Error(STARKV_ERR_INTERNAL, "no factor group covers KV head " + std::to_string(g));
}

kernels::DevBlock to_dev(const BlockLayout& b) {
  kernels::DevBlock d{};
  d.first_channel = b.first_channel;
  d.n_channels = b.n_channels;
  d.bits = b.bits;
  d.storage_bits = b.storage_bits;
  d.byte_offset = b.byte_offset;
  d.byte_count = b.byte_count;
  d.scale_offset = b.scale_offset;
  return d;
}

// Whether `groups` are exactly identity factors that tile [0, width) in order, whole heads each.
bool identity_partition(const std::vector<FactorGroup>& groups, int32_t width, int32_t head_dim) {
  int32_t next = 0;
  for (const FactorGroup& g : groups) {
    if (g.in_offset != next || g.in_dim <= 0 || g.in_dim % head_dim != 0 || g.rank != g.in_dim) {
      return false;
    }
    const size_t n = static_cast<size_t>(g.in_dim);
    if (g.down.size() != n * n || g.up.size() != n * n) return false;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        const float want = i == j ? 1.0f : 0.0f;
        if (g.down[i * n + j] != want || g.up[i * n + j] != want) return false;
      }
    }
    next += g.in_dim;
  }
  return next == width;
}

// The row byte offsets of latent channels [first, first + count) when they are all fp16 and
// consecutive (channel first + x at offset + 2x): that offset, else -1.
int32_t consecutive_fp16_bytes(const RowLayout& layout, int32_t first, int32_t count) {
  int32_t offset = -1;
  int32_t ch = first;
  for (const std::vector<GroupLayout>* groups : {&layout.key_groups, &layout.value_groups}) {
    for (const GroupLayout& gl : *groups) {
      for (const BlockLayout* b : {&gl.outlier, &gl.inlier}) {
        // Blocks come in channel order; take the part of this one that holds channels from ch on.
        const int32_t end = std::min(first + count, b->first_channel + b->n_channels);
        if (ch >= end || ch < b->first_channel) continue;
        if (b->bits != 16 || b->storage_bits != 16) return -1;
        const int32_t byte = b->byte_offset + 2 * (ch - b->first_channel);
        if (offset < 0) offset = byte;
        if (byte != offset + 2 * (ch - first)) return -1;
        ch = end;
      }
    }
  }
  return ch == first + count ? offset : -1;
}

}  // namespace

bool dense_row_offsets(const Profile& profile, int32_t layer, int32_t* key_offset,
                       int32_t* value_offset) {
  const LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
  const int32_t D = profile.shape.head_dim, width = profile.shape.kv_width();
  if (lp.compressed || layout.quantized || D <= 0 || (2 * D) % 16 != 0) return false;
  if (!identity_partition(lp.keys, width, D) || !identity_partition(lp.values, width, D)) {
    return false;
  }
  // Identity groups in order: key dim x (head x / D) is latent channel x, value dim x is channel
  // width + x.
  const int32_t keys = consecutive_fp16_bytes(layout, 0, width);
  const int32_t values = consecutive_fp16_bytes(layout, width, width);
  if (keys < 0 || values < 0 || keys % 16 != 0 || values % 16 != 0) return false;
  *key_offset = keys;
  *value_offset = values;
  return true;
}

std::vector<int32_t> DeviceModel::key_permutation(const Profile& profile) {
  const int32_t D = profile.shape.head_dim;
  std::vector<int32_t> perm(static_cast<size_t>(D));
  for (int32_t j = 0; j < D; ++j) perm[static_cast<size_t>(j)] = j;
  const int32_t rotary = profile.rope.rotary_dim > 0 ? profile.rope.rotary_dim : D;
  if (profile.rope.style == STARKV_ROPE_NEOX) {
    const int32_t half = rotary / 2;
    for (int32_t i = 0; i < half; ++i) {
      perm[static_cast<size_t>(2 * i)] = i;
      perm[static_cast<size_t>(2 * i + 1)] = i + half;
    }
  }
  return perm;
}

DeviceModel::DeviceModel(const Profile& profile, int32_t page_tokens, cudaStream_t stream) {
  const ModelShape& s = profile.shape;
  const int32_t D = s.head_dim;
  require(D == 32 || D == 64 || D == 128, STARKV_ERR_UNSUPPORTED,
          "the CUDA backend supports head_dim 32, 64 and 128, got " + std::to_string(D));
  const int32_t qpk = s.queries_per_kv();
  require(qpk >= 1 && qpk <= kernels::kAttnHeadsPerCta, STARKV_ERR_UNSUPPORTED,
          "the CUDA backend supports up to 8 query heads per KV head, got " + std::to_string(qpk));
  const int32_t rotary = profile.rope.rotary_dim > 0 ? profile.rope.rotary_dim : D;
  const int32_t pairs = profile.rope.style == STARKV_ROPE_NONE ? 0 : rotary / 2;
  std::vector<float> freq(static_cast<size_t>(std::max(1, rotary / 2)), 0.0f);
  rope_inverse_frequencies(profile.rope, D, freq.data());
  inv_freq = upload(freq, stream);
  std::vector<float2> step(static_cast<size_t>(kernels::kAttnTileTokens) *
                           static_cast<size_t>(std::max(1, pairs)));
  for (int32_t k = 0; k < kernels::kAttnTileTokens; ++k) {
    for (int32_t i = 0; i < pairs; ++i) {
      const double a = static_cast<double>(k) * static_cast<double>(freq[static_cast<size_t>(i)]);
      step[static_cast<size_t>(k * pairs + i)] =
          float2{static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))};
    }
  }
  rope_step = upload(step, stream);
  perm = upload(key_permutation(profile), stream);
  kv_heads_per_chunk = std::max(1, kernels::kAttnHeadsPerCta / qpk);
  n_chunks = (s.n_kv_heads + kv_heads_per_chunk - 1) / kv_heads_per_chunk;
  // MHA keeps 8 query heads per score CTA (more CTAs; 32 measured slower); GQA takes up to 32.
  score_kv_heads_per_chunk =
      qpk == 1 ? kernels::kAttnHeadsPerCta : std::max(1, kernels::kScoreHeadsPerCta / qpk);
  n_score_chunks = (s.n_kv_heads + score_kv_heads_per_chunk - 1) / score_kv_heads_per_chunk;

  view.n_heads = s.n_heads;
  view.n_kv_heads = s.n_kv_heads;
  view.head_dim = D;
  view.q_per_kv = qpk;
  view.rope_pairs = pairs;
  view.scale = profile.attention_scale;
  view.inv_freq = inv_freq.get<float>();
  view.rope_step = rope_step.get<float2>();
  view.perm = perm.get<int32_t>();
  view.page_tokens = page_tokens;
}

DeviceLayer::DeviceLayer(const Profile& profile, int32_t layer, const DeviceModel& model,
                         int64_t n_pages, int32_t page_tokens, int32_t n_sms, cudaStream_t stream) {
  const LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
  const int32_t G = profile.shape.n_kv_heads, D = profile.shape.head_dim;
  const int32_t W = layout.latent_width;
  const int32_t key_width = lp.key_rank_total();
  const std::vector<int32_t> perm = DeviceModel::key_permutation(profile);

  // Row layout: blocks and per-channel descriptors.
  std::vector<kernels::DevBlock> dev_blocks;
  for (const GroupLayout& g : layout.key_groups) {
    dev_blocks.push_back(to_dev(g.outlier));
    dev_blocks.push_back(to_dev(g.inlier));
  }
  for (const GroupLayout& g : layout.value_groups) {
    dev_blocks.push_back(to_dev(g.outlier));
    dev_blocks.push_back(to_dev(g.inlier));
  }
  std::vector<kernels::ChannelDesc> dev_channels(static_cast<size_t>(W));
  std::vector<int32_t> block_of(static_cast<size_t>(std::max(1, W)), 0);
  for (size_t bi = 0; bi < dev_blocks.size(); ++bi) {
    const kernels::DevBlock& b = dev_blocks[bi];
    for (int32_t j = 0; j < b.n_channels; ++j) {
      block_of[static_cast<size_t>(b.first_channel + j)] = static_cast<int32_t>(bi);
      dev_channels[static_cast<size_t>(b.first_channel + j)] =
          kernels::ChannelDesc{b.byte_offset, j, b.bits | (b.storage_bits << 8), b.scale_offset};
    }
  }

  // Projection groups (append): keys then values, latent offsets cumulative.
  std::vector<float> dev_down;
  int32_t lat = 0;
  auto add_groups = [&](const std::vector<FactorGroup>& gs, int32_t is_value) {
    for (const FactorGroup& g : gs) {
      kernels::DevGroup d{};
      d.in_offset = g.in_offset;
      d.in_dim = g.in_dim;
      d.rank = g.rank;
      d.lat_off = lat;
      d.down_off = static_cast<int64_t>(dev_down.size());
      d.is_value = is_value;
      dev_down.insert(dev_down.end(), g.down.begin(), g.down.end());
      host_groups.push_back(d);
      lat += g.rank;
    }
  };
  add_groups(lp.keys, 0);
  add_groups(lp.values, 1);

  // Head chunks: key tile columns, Ut per head, value slices.
  const int32_t gc = model.kv_heads_per_chunk;
  std::vector<int32_t> key_columns(static_cast<size_t>(std::max(1, key_width)), 0);
  std::vector<kernels::HeadKeyInfo> head_keys(static_cast<size_t>(G));
  std::vector<kernels::HeadValueInfo> head_values(static_cast<size_t>(G));
  std::vector<kernels::ChunkInfo> chunk_info(static_cast<size_t>(model.n_chunks));
  std::vector<int32_t> slot_base(static_cast<size_t>(model.n_chunks));
  std::vector<__half> ut;
  std::vector<float> vup;
  std::vector<int64_t> vup_group_start;
  for (const FactorGroup& g : lp.values) {
    vup_group_start.push_back(static_cast<int64_t>(vup.size()));
    vup.insert(vup.end(), g.up.begin(), g.up.end());
  }
  int32_t key_stride = 0, slots = 0, max_parts = 1, max_vcount = 0, max_vrank = 1, max_rkp = 0;
  std::vector<int32_t> head_key_channel(static_cast<size_t>(G), 0);
  for (int32_t c = 0; c < model.n_chunks; ++c) {
    const int32_t g_begin = c * gc, g_end = std::min(G, g_begin + gc);
    int32_t kc0 = INT32_MAX, kc1 = 0, vc0 = INT32_MAX, vc1 = 0, columns = 0;
    const FactorGroup* last_key_group = nullptr;
    int32_t last_key_col = 0;
    for (int32_t g = g_begin; g < g_end; ++g) {
      int32_t koff = 0, voff = 0;
      const FactorGroup& kg = group_of_head(lp.keys, g, D, &koff);
      const FactorGroup& vg = group_of_head(lp.values, g, D, &voff);
      voff += key_width;
      const int32_t rkp = round_up(kg.rank, 16);
      max_rkp = std::max(max_rkp, rkp);
      int32_t col = last_key_col;
      if (&kg != last_key_group) {  // a new group gets its own 16-aligned column region
        col = columns;
        columns += rkp;
        for (int32_t r = 0; r < kg.rank; ++r) key_columns[static_cast<size_t>(koff + r)] = col + r;
        last_key_group = &kg;
        last_key_col = col;
      }
      head_key_channel[static_cast<size_t>(g)] = koff;
      kc0 = std::min(kc0, koff);
      kc1 = std::max(kc1, koff + kg.rank);
      vc0 = std::min(vc0, voff);
      vc1 = std::max(vc1, voff + vg.rank);
      // Ut[j][r] = up[r][g*D - in_offset + perm[j]], zero for r >= rank.
      const int64_t ut_off = static_cast<int64_t>(ut.size());
      require(ut_off < INT32_MAX, STARKV_ERR_UNSUPPORTED, "key up-projections too large");
      ut.resize(ut.size() + static_cast<size_t>(D) * static_cast<size_t>(rkp), __float2half(0.0f));
      const int32_t col0 = g * D - kg.in_offset;
      for (int32_t j = 0; j < D; ++j) {
        for (int32_t r = 0; r < kg.rank; ++r) {
          const float v = kg.up[static_cast<size_t>(r) * static_cast<size_t>(kg.in_dim) +
                                static_cast<size_t>(col0 + perm[static_cast<size_t>(j)])];
          ut[static_cast<size_t>(ut_off) + static_cast<size_t>(j) * static_cast<size_t>(rkp) +
             static_cast<size_t>(r)] = __float2half(v);
        }
      }
      head_keys[static_cast<size_t>(g)] =
          kernels::HeadKeyInfo{col, kg.rank, rkp, static_cast<int32_t>(ut_off)};
      const size_t vgi = static_cast<size_t>(&vg - lp.values.data());
      const int64_t up_off = vup_group_start[vgi] + (g * D - vg.in_offset);
      require(up_off < INT32_MAX, STARKV_ERR_UNSUPPORTED, "value up-projections too large");
      head_values[static_cast<size_t>(g)] =
          kernels::HeadValueInfo{voff, vg.rank, vg.in_dim, static_cast<int32_t>(up_off)};
      max_vrank = std::max(max_vrank, vg.rank);
    }
    const int32_t vcount = vc1 - vc0;
    const int32_t parts =
        std::max(1, (vcount + kernels::kAttnValueChannels - 1) / kernels::kAttnValueChannels);
    chunk_info[static_cast<size_t>(c)] = kernels::ChunkInfo{kc0, kc1 - kc0, vc0, vcount};
    slot_base[static_cast<size_t>(c)] = slots;
    slots += parts;
    max_parts = std::max(max_parts, parts);
    max_vcount = std::max(max_vcount, vcount);
    key_stride = std::max(key_stride, columns);
  }

  // Byte ranges the attention kernel stages per (chunk, value part), 16-byte aligned.
  auto byte_span = [&](int32_t first, int32_t count, int32_t* lo, int32_t* hi) {
    *lo = INT32_MAX;
    *hi = 0;
    for (int32_t ch = first; ch < first + count; ++ch) {
      const kernels::ChannelDesc d = dev_channels[static_cast<size_t>(ch)];
      const int32_t sb = d.z >> 8;
      const int32_t b0 = d.x + (d.y * sb) / 8, b1 = d.x + (d.y * sb + sb + 7) / 8;
      *lo = std::min(*lo, b0);
      *hi = std::max(*hi, b1);
    }
    if (*hi <= *lo) {
      *lo = *hi = 0;
      return;
    }
    *lo = *lo / 16 * 16;
    *hi = round_up(*hi, 16);
  };
  std::vector<kernels::ChunkInfo> parts(static_cast<size_t>(model.n_chunks * max_parts),
                                        kernels::ChunkInfo{0, 0, 0, 0});
  int32_t raw_keys = 0, raw_values = 0;
  for (int32_t c = 0; c < model.n_chunks; ++c) {
    const kernels::ChunkInfo ci = chunk_info[static_cast<size_t>(c)];
    int32_t k0, k1;
    byte_span(ci.x, ci.y, &k0, &k1);
    for (int32_t p = 0; p * kernels::kAttnValueChannels < std::max(1, ci.w); ++p) {
      const int32_t first = ci.z + p * kernels::kAttnValueChannels;
      const int32_t count =
          std::min(kernels::kAttnValueChannels, ci.w - p * kernels::kAttnValueChannels);
      int32_t v0, v1;
      byte_span(first, std::max(0, count), &v0, &v1);
      parts[static_cast<size_t>(c * max_parts + p)] = kernels::ChunkInfo{k0, k1, v0, v1};
      raw_keys = std::max(raw_keys, k1 - k0);
      raw_values = std::max(raw_values, v1 - v0);
    }
  }
  int32_t scale_base = layout.row_bytes;
  for (const kernels::DevBlock& b : dev_blocks) {
    if (b.scale_offset >= 0) scale_base = std::min(scale_base, b.scale_offset / 16 * 16);
  }

  if (ut.empty()) ut.push_back(__float2half(0.0f));
  if (vup.empty()) vup.push_back(0.0f);
  if (dev_down.empty()) dev_down.push_back(0.0f);
  blocks = upload(dev_blocks, stream);
  channel_block = upload(block_of, stream);
  this->key_columns = upload(key_columns, stream);
  this->head_keys = upload(head_keys, stream);
  this->head_values = upload(head_values, stream);
  chunks = upload(chunk_info, stream);
  chunk_slot_base = upload(slot_base, stream);
  key_ut = upload(ut, stream);
  value_up = upload(vup, stream);
  groups = upload(host_groups, stream);
  down = upload(dev_down, stream);
  part_bytes = upload(parts, stream);
  std::vector<kernels::ProjectionItem> items;
  const int32_t proj_slices = make_projection_items(host_groups, n_sms, &items);
  const int32_t n_items = static_cast<int32_t>(items.size());
  if (items.empty()) items.push_back(kernels::ProjectionItem{});  // (no launch: n_proj_items 0)
  proj_items = upload(items, stream);

  const size_t row_bytes = static_cast<size_t>(layout.row_bytes);
  rows.reset(static_cast<size_t>(n_pages) * static_cast<size_t>(page_tokens) * row_bytes);
  cuda_check(cudaMemsetAsync(rows.get(), 0, rows.bytes(), stream), "cudaMemsetAsync (pool)");

  int32_t dense_keys = 0, dense_values = 0;
  dense_exact = dense_row_offsets(profile, layer, &dense_keys, &dense_values);
  dense_view.rows = rows.get<uint8_t>();
  dense_view.row_bytes = layout.row_bytes;
  dense_view.key_offset = dense_keys;
  dense_view.value_offset = dense_values;
  dense_view.rope_mode = profile.rope.style == STARKV_ROPE_NONE   ? kernels::kDenseRopeNone
                         : profile.rope.style == STARKV_ROPE_GPTJ ? kernels::kDenseRopeGptj
                                                                  : kernels::kDenseRopeNeox;

  kernels::LayerView& v = view;
  v.row_bytes = layout.row_bytes;
  v.latent_width = W;
  v.n_blocks = static_cast<int32_t>(dev_blocks.size());
  v.n_groups = static_cast<int32_t>(host_groups.size());
  v.n_chunks = model.n_chunks;
  v.kv_heads_per_chunk = gc;
  v.key_tile_stride = round_up(std::max(key_stride, 16), 16) + 8;
  v.max_value_parts = max_parts;
  v.max_key_rank_pad = max_rkp;
  v.value_rows = round_up(std::max(16, std::min(kernels::kAttnValueChannels, max_vcount)), 16);
  v.max_value_rank = max_vrank;
  v.blocks = blocks.get<kernels::DevBlock>();
  v.channel_block = channel_block.get<int32_t>();
  v.key_columns = this->key_columns.get<int32_t>();
  v.head_keys = this->head_keys.get<kernels::HeadKeyInfo>();
  v.head_values = this->head_values.get<kernels::HeadValueInfo>();
  v.chunks = chunks.get<kernels::ChunkInfo>();
  v.chunk_slot_base = chunk_slot_base.get<int32_t>();
  v.slots_per_item = slots;
  v.key_ut = key_ut.get<__half>();
  v.value_up = value_up.get<float>();
  v.groups = groups.get<kernels::DevGroup>();
  v.down = down.get<float>();
  v.rows = rows.get<uint8_t>();
  v.part_bytes = part_bytes.get<int4>();
  v.proj_items = proj_items.get<kernels::ProjectionItem>();
  v.n_proj_items = n_items;
  v.proj_slices = proj_slices;
  v.raw_key_bytes = raw_keys;
  // An odd number of 16-byte units per staged row spreads the lanes (tokens) over 8 banks.
  if (((raw_keys + raw_values + layout.row_bytes - scale_base) / 16) % 2 == 0) raw_values += 16;
  v.raw_value_bytes = raw_values;
  v.raw_scale_bytes = layout.row_bytes - scale_base;
  v.scale_base = scale_base;
  v.key_width = key_width;
  v.value_width = W - key_width;

  // Split mode (see kernel_api.h): the score kernel stages only key codes and scales; the value
  // kernel stages one kValueBlockChannels-channel block of value codes and the scales.
  const int32_t scale_bytes = layout.row_bytes - scale_base;
  auto odd_units = [](int32_t bytes) { return (bytes / 16) % 2 == 0 ? 16 : 0; };
  // The score kernel's chunks hold up to 32 query heads (its softmax is not tied to the n8 of a
  // value MMA): key tile columns, per-head column offsets and staged byte ranges per chunk.
  // The decoded key tile of a chunk of KV heads [g_begin, g_end) (the score kernel's chunks and the
  // quantized wide fold's): each key group gets its own 16-aligned run of columns, shared by the
  // heads of the group. Sets heads[g].x to head g's first column and, when columns_of_channel is
  // given, maps each of the group's latent channels to its column.
  struct ChunkKeyTile {
    int32_t kc0, kc1, columns;  // the chunk's key channels [kc0, kc1); its tile's column count
  };
  auto chunk_key_tile = [&](int32_t g_begin, int32_t g_end,
                            std::vector<kernels::HeadKeyInfo>& heads,
                            std::vector<int32_t>* columns_of_channel) {
    ChunkKeyTile t{INT32_MAX, 0, 0};
    int32_t last_col = 0;
    const FactorGroup* last = nullptr;
    for (int32_t g = g_begin; g < g_end; ++g) {
      int32_t koff = 0;
      const FactorGroup& kg = group_of_head(lp.keys, g, D, &koff);
      if (&kg != last) {
        last_col = t.columns;
        t.columns += round_up(kg.rank, 16);
        if (columns_of_channel != nullptr) {
          for (int32_t r = 0; r < kg.rank; ++r)
            (*columns_of_channel)[static_cast<size_t>(koff + r)] = last_col + r;
        }
        last = &kg;
      }
      heads[static_cast<size_t>(g)].x = last_col;
      t.kc0 = std::min(t.kc0, koff);
      t.kc1 = std::max(t.kc1, koff + kg.rank);
    }
    return t;
  };
  const int32_t gcs = model.score_kv_heads_per_chunk, n_score_chunks = model.n_score_chunks;
  std::vector<kernels::ChunkInfo> score_chunks(static_cast<size_t>(n_score_chunks));
  std::vector<kernels::ChunkInfo> key_parts(static_cast<size_t>(n_score_chunks));
  std::vector<int32_t> score_columns(static_cast<size_t>(std::max(1, key_width)), 0);
  std::vector<kernels::HeadKeyInfo> score_heads = head_keys;
  int32_t raw_keys_only = 0, score_stride = 0;
  for (int32_t c = 0; c < n_score_chunks; ++c) {
    const ChunkKeyTile t =
        chunk_key_tile(c * gcs, std::min(G, (c + 1) * gcs), score_heads, &score_columns);
    score_chunks[static_cast<size_t>(c)] = kernels::ChunkInfo{t.kc0, t.kc1 - t.kc0, 0, 0};
    int32_t k0, k1;
    byte_span(t.kc0, t.kc1 - t.kc0, &k0, &k1);
    key_parts[static_cast<size_t>(c)] = kernels::ChunkInfo{k0, k1, 0, 0};
    raw_keys_only = std::max(raw_keys_only, k1 - k0);
    score_stride = std::max(score_stride, t.columns);
  }
  score_part_bytes = upload(key_parts, stream);
  score_chunk_info = upload(score_chunks, stream);
  score_key_columns = upload(score_columns, stream);
  score_head_keys = upload(score_heads, stream);
  scores_view = v;
  scores_view.part_bytes = score_part_bytes.get<int4>();
  scores_view.chunks = score_chunk_info.get<kernels::ChunkInfo>();
  scores_view.key_columns = score_key_columns.get<int32_t>();
  scores_view.head_keys = score_head_keys.get<kernels::HeadKeyInfo>();
  scores_view.n_chunks = n_score_chunks;
  scores_view.kv_heads_per_chunk = gcs;
  scores_view.key_tile_stride = round_up(std::max(score_stride, 16), 16) + 8;
  scores_view.max_value_parts = 1;
  scores_view.value_rows = 0;
  scores_view.raw_key_bytes = raw_keys_only;
  scores_view.raw_value_bytes = odd_units(raw_keys_only + scale_bytes);

  const int32_t value_width = W - key_width;

  // Fold-the-query score kernel: the fused view's chunks (up to 8 query heads), staging only the
  // chunk's key codes and the scale region; fp16 keys are read straight from the staged rows.
  {
    std::vector<int32_t> row_offset(static_cast<size_t>(G), -1);
    bool all_fp16 = true;
    for (const GroupLayout& gl : layout.key_groups) {
      if (gl.outlier.n_channels > 0 && gl.outlier.bits != 16) all_fp16 = false;
      if (gl.inlier.n_channels > 0 && gl.inlier.bits != 16) all_fp16 = false;
    }
    for (int32_t g = 0; g < G; ++g) {
      const int32_t ch = head_key_channel[static_cast<size_t>(g)];
      if (all_fp16 && ch < key_width) {
        const kernels::ChannelDesc d = dev_channels[static_cast<size_t>(ch)];
        row_offset[static_cast<size_t>(g)] = d.x + 2 * d.y;
      }
    }
    // The decoded key tile's columns of each KV head's key group (quantized keys; see
    // kernels::pack_key_group_columns).
    std::vector<int32_t> group_columns(static_cast<size_t>(G), 0);
    for (int32_t g = 0; g < G; ++g) {
      int32_t koff = 0;
      const FactorGroup& kg = group_of_head(lp.keys, g, D, &koff);
      const GroupLayout& gl = layout.key_groups[static_cast<size_t>(&kg - lp.keys.data())];
      const bool both_quantized = gl.outlier.bits < 16 && gl.inlier.bits < 16;
      group_columns[static_cast<size_t>(g)] =
          kernels::pack_key_group_columns(gl.outlier.n_channels, kg.rank, both_quantized);
    }
    key_row_offset = upload(row_offset, stream);
    key_channel = upload(head_key_channel, stream);
    key_group_columns = upload(group_columns, stream);
    fold_view = v;
    fold_view.key_row_offset = key_row_offset.get<int32_t>();
    fold_view.key_channel = key_channel.get<int32_t>();
    fold_view.key_group_columns = key_group_columns.get<int32_t>();
    fold_view.keys_fp16 = all_fp16 && key_width > 0 ? 1 : 0;
    // fp16 keys are read straight from the staged rows, a head's ranks up to its padded rank
    // (those past its rank meet exactly-zero columns of Z). The reads past a head's staged bytes
    // must stay inside the row: past a tile's last row lies the other staging buffer, which
    // cp.async is filling meanwhile (racecheck reports it, though the bytes are finite latents
    // either way). So the row gets zero slack (never written) up to the furthest such read.
    int32_t slack = 0;
    if (fold_view.keys_fp16) {
      for (int32_t c = 0; c < model.n_chunks; ++c) {
        const int32_t k0 = parts[static_cast<size_t>(c * max_parts)].x;
        for (int32_t g = c * gc; g < std::min(G, (c + 1) * gc); ++g) {
          const int32_t end = row_offset[static_cast<size_t>(g)] - k0 +
                              2 * head_keys[static_cast<size_t>(g)].z;
          slack = std::max(slack, round_up(end - raw_keys, 16));
        }
      }
    }
    fold_view.raw_value_bytes = slack + odd_units(raw_keys + slack + scale_bytes);
    fold_view.max_value_parts = v.max_value_parts;
    // Tensor maps for the fold's tile staging (kernels::LayerView::key_row_maps), one per head
    // chunk: rows x the chunk's key bytes (16-byte units), from its first key byte, boxes of 64
    // rows x the staged row (the bytes past the chunk's keys, the zero slack, arrive as zeros).
    // Made for fp16 keys without a scale region whose staged row is a box row (at most 256 4-byte
    // elements), and pages of whole 64-token tiles; the backend attaches them where the fold runs
    // its wgmma instances (64-token tiles).
    // The same for the wide chunks of reconstructed fp16 keys, below (wide_fold_row_maps): the
    // recon fold 250 -> 237 us, the Llama-3-like 75% fp16 step 379 -> 368 us at b16 x 32K
    // (bench/RESULTS.md, sixteenth session).
    auto encode_fold_maps = [&](const kernels::LayerView& fv, const kernels::ChunkInfo* chunk_parts,
                                int32_t n_chunks, int32_t parts_per_chunk, DeviceBuffer* out) {
      const int32_t fold_stride = fv.raw_key_bytes + fv.raw_value_bytes + fv.raw_scale_bytes;
      if (!fv.keys_fp16 || scale_bytes != 0 || page_tokens % kernels::kFoldTensorTileTokens != 0 ||
          fold_stride % 16 != 0 || fold_stride > 1024)
        return;
      std::vector<uint8_t> maps(static_cast<size_t>(n_chunks) * 128);
      for (int32_t c = 0; c < n_chunks; ++c) {
        const kernels::ChunkInfo& pb = chunk_parts[static_cast<size_t>(c * parts_per_chunk)];
        if (!encode_row_map(rows.get<uint8_t>() + pb.x, (pb.y - pb.x) / 4, n_pages * page_tokens,
                            row_bytes, fold_stride / 4, kernels::kFoldTensorTileTokens,
                            maps.data() + 128 * static_cast<size_t>(c)))
          return;
      }
      *out = upload(maps, stream);
    };
    encode_fold_maps(fold_view, parts.data(), model.n_chunks, max_parts, &fold_row_maps);

    // Chunks of 4 KV heads (DeviceLayer::wide_fold_view). fp16 keys (GQA only: MHA fp16 keys
    // keep the model's chunks, see kernels::fold_narrow): each stages the byte span of its KV
    // heads' latents, with zero slack for the reads up to a head's padded rank (as above).
    if (fold_view.keys_fp16 && model.view.q_per_kv >= 2) {
      const int32_t wgc = kernels::kReconKvHeadsPerCta;
      const int32_t n_wide = (G + wgc - 1) / wgc;
      std::vector<kernels::ChunkInfo> wide(static_cast<size_t>(n_wide), kernels::ChunkInfo{0, 0, 0, 0});
      int32_t wide_keys = 0, wide_slack = 0;
      for (int32_t c = 0; c < n_wide; ++c) {
        int32_t lo = INT32_MAX, hi = 0;
        for (int32_t g = c * wgc; g < std::min(G, (c + 1) * wgc); ++g) {
          lo = std::min(lo, row_offset[static_cast<size_t>(g)]);
          hi = std::max(hi, row_offset[static_cast<size_t>(g)] +
                                2 * head_keys[static_cast<size_t>(g)].y);
        }
        wide[static_cast<size_t>(c)] = kernels::ChunkInfo{lo / 16 * 16, round_up(hi, 16), 0, 0};
        wide_keys = std::max(wide_keys, round_up(hi, 16) - lo / 16 * 16);
      }
      for (int32_t c = 0; c < n_wide; ++c) {
        for (int32_t g = c * wgc; g < std::min(G, (c + 1) * wgc); ++g) {
          const int32_t end = row_offset[static_cast<size_t>(g)] -
                              wide[static_cast<size_t>(c)].x +
                              2 * head_keys[static_cast<size_t>(g)].z;
          wide_slack = std::max(wide_slack, round_up(end - wide_keys, 16));
        }
      }
      wide_fold_part_bytes = upload(wide, stream);
      wide_fold_view = fold_view;
      wide_fold_view.n_chunks = n_wide;
      wide_fold_view.kv_heads_per_chunk = wgc;
      wide_fold_view.part_bytes = wide_fold_part_bytes.get<int4>();
      wide_fold_view.max_value_parts = 1;
      wide_fold_view.raw_key_bytes = wide_keys;
      wide_fold_view.raw_value_bytes =
          wide_slack + odd_units(wide_keys + wide_slack + scale_bytes);
      has_wide_fold_view = true;
      encode_fold_maps(wide_fold_view, wide.data(), n_wide, 1, &wide_fold_row_maps);
    } else if (!fold_view.keys_fp16) {
      // Quantized keys: each wide chunk stages the code bytes of its KV heads' channels (and the
      // scale region, as every fold view) and decodes them into a tile whose columns give each
      // key group its own 16-aligned region, as the score kernel's chunks do.
      const int32_t wgc = kernels::kReconKvHeadsPerCta;
      const int32_t n_wide = (G + wgc - 1) / wgc;
      std::vector<kernels::ChunkInfo> wide(static_cast<size_t>(n_wide),
                                           kernels::ChunkInfo{0, 0, 0, 0});
      std::vector<kernels::HeadKeyInfo> wide_heads = head_keys;
      int32_t wide_keys = 0, wide_columns = 0;
      for (int32_t c = 0; c < n_wide; ++c) {
        const ChunkKeyTile t =
            chunk_key_tile(c * wgc, std::min(G, (c + 1) * wgc), wide_heads, nullptr);
        int32_t k0, k1;
        byte_span(t.kc0, t.kc1 - t.kc0, &k0, &k1);
        wide[static_cast<size_t>(c)] = kernels::ChunkInfo{k0, k1, 0, 0};
        wide_keys = std::max(wide_keys, k1 - k0);
        wide_columns = std::max(wide_columns, t.columns);
      }
      wide_fold_part_bytes = upload(wide, stream);
      wide_fold_head_keys = upload(wide_heads, stream);
      wide_fold_view = fold_view;
      wide_fold_view.n_chunks = n_wide;
      wide_fold_view.kv_heads_per_chunk = wgc;
      wide_fold_view.part_bytes = wide_fold_part_bytes.get<int4>();
      wide_fold_view.head_keys = wide_fold_head_keys.get<kernels::HeadKeyInfo>();
      wide_fold_view.max_value_parts = 1;
      wide_fold_view.key_tile_stride = round_up(std::max(wide_columns, 16), 16) + 8;
      wide_fold_view.raw_key_bytes = wide_keys;
      wide_fold_view.raw_value_bytes = odd_units(wide_keys + scale_bytes);
      has_wide_fold_view = true;
    }
  }
  values_view = v;
  values_view.raw_key_bytes = 0;
  {
    bool fp16 = value_width > 0;
    for (const GroupLayout& gl : layout.value_groups) {
      if (gl.outlier.n_channels > 0 && gl.outlier.bits != 16) fp16 = false;
      if (gl.inlier.n_channels > 0 && gl.inlier.bits != 16) fp16 = false;
    }
    if (fp16) {
      const kernels::ChannelDesc d = dev_channels[static_cast<size_t>(key_width)];
      fp16 = d.y == 0 && d.x % 16 == 0;
    }
    values_view.values_fp16 = fp16 ? 1 : 0;
  }
  // The value kernel's blocks of `block` channels: the row bytes each stages.
  auto set_value_blocks = [&](int32_t block) {
    const int32_t n_vblocks = std::max(1, (value_width + block - 1) / block);
    std::vector<kernels::ChunkInfo> vblocks(static_cast<size_t>(n_vblocks),
                                            kernels::ChunkInfo{0, 0, 0, 0});
    int32_t raw_vblock = 0;
    for (int32_t b = 0; b * block < value_width; ++b) {
      int32_t v0, v1;
      byte_span(key_width + b * block, std::min(block, value_width - b * block), &v0, &v1);
      vblocks[static_cast<size_t>(b)] = kernels::ChunkInfo{v0, v1, 0, 0};
      raw_vblock = std::max(raw_vblock, v1 - v0);
    }
    value_block_bytes = upload(vblocks, stream);
    values_view.value_block_bytes = value_block_bytes.get<int4>();
    values_view.value_block_channels = block;
    values_view.n_value_blocks = n_vblocks;
    // 16 bytes of slack after the staged codes: the value kernel reads whole 32-bit words (and
    // 16-channel ldmatrix rows) that may reach a little past a block's last code.
    values_view.raw_value_bytes = raw_vblock + 16 + odd_units(raw_vblock + 16 + scale_bytes);
  };
  // Wide blocks (up to kWideValueBlockChannels, evenly split: 307 channels -> one block of 320
  // instead of 256 + 51, whose second CTA paid a whole tile's fixed cost for a sixth of the bytes)
  // for up to kWideValueMaxHeads query heads, where the value kernel still fits two CTAs per SM
  // (228 KB of shared memory per SM, 1 KB reserved per CTA), and only where the narrow blocks
  // leave a partial one: when they are all full (Llama-2-7B-like at 60%: 2048 channels) a wide
  // block's warps with three m-tiles only add time (1348 -> 1392-1404 us, bench/RESULTS.md, eighth
  // session). STARKV_NO_WIDE_VALUES=1 keeps kValueBlockChannels (for comparison).
  static const bool no_wide_values = std::getenv("STARKV_NO_WIDE_VALUES") != nullptr;
  int32_t block = kernels::kValueBlockChannels;
  if (!no_wide_values && value_width > block && value_width % block != 0 &&
      kernels::padded_heads(model.view.n_heads) <= kernels::kWideValueMaxHeads) {
    const int32_t n = (value_width + kernels::kWideValueBlockChannels - 1) /
                      kernels::kWideValueBlockChannels;
    block = round_up((value_width + n - 1) / n, 16);
  }
  set_value_blocks(block);
  if (block > kernels::kValueBlockChannels &&
      kernels::split_values_smem_bytes(values_view, model.view) > kernels::kSmemTwoCtasPerSm)
    set_value_blocks(kernels::kValueBlockChannels);
  // (Only the value kernel reads the blocks, through values_view.)
}

}  // namespace starkv
