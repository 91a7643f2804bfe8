#include "dense_kv_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "half_float.h"

namespace llama_runner {

namespace {

// Query rows per block: bounds the score matrix at kQueryBlock·(H/G) × length floats.
constexpr int kQueryBlock = 128;

}  // namespace

KvStorage parse_kv_storage(const std::string& s) {
  if (s == "fp32") return KvStorage::kFp32;
  if (s == "fp16") return KvStorage::kFp16;
  throw std::runtime_error("unknown KV storage '" + s + "' (expected fp32 or fp16)");
}

DenseKvAttention::DenseKvAttention(const ModelConfig& cfg, const Rope& rope, KvStorage storage,
                                   int64_t reserve_tokens)
    : n_layers_(cfg.n_layers), n_heads_(cfg.n_heads), n_kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim), rope_(rope), storage_(storage),
      row_(int64_t(cfg.n_kv_heads) * cfg.head_dim), length_(size_t(cfg.n_layers), 0) {
  const size_t reserve = size_t(std::max<int64_t>(reserve_tokens, 0) * row_);
  if (storage_ == KvStorage::kFp32) {
    k32_.resize(size_t(n_layers_));
    v32_.resize(size_t(n_layers_));
    for (int l = 0; l < n_layers_; ++l) {
      k32_[size_t(l)].reserve(reserve);
      v32_[size_t(l)].reserve(reserve);
    }
  } else {
    k16_.resize(size_t(n_layers_));
    v16_.resize(size_t(n_layers_));
    for (int l = 0; l < n_layers_; ++l) {
      k16_[size_t(l)].reserve(reserve);
      v16_[size_t(l)].reserve(reserve);
    }
  }
}

void DenseKvAttention::reset() {
  std::fill(length_.begin(), length_.end(), 0);
  for (auto& s : k32_) s.clear();
  for (auto& s : v32_) s.clear();
  for (auto& s : k16_) s.clear();
  for (auto& s : v16_) s.clear();
}

void DenseKvAttention::append(int layer, int n, const float* k_pre_rope, const float* v,
                              const int32_t* positions) {
  const size_t count = size_t(n) * size_t(row_);
  rotated_.assign(k_pre_rope, k_pre_rope + count);
  rope_.apply(rotated_.data(), n, row_, n_kv_heads_, positions);
  const size_t l = size_t(layer);
  if (storage_ == KvStorage::kFp32) {
    k32_[l].insert(k32_[l].end(), rotated_.begin(), rotated_.end());
    v32_[l].insert(v32_[l].end(), v, v + count);
  } else {
    auto& k = k16_[l];
    auto& vv = v16_[l];
    const size_t old = k.size();
    k.resize(old + count);
    vv.resize(old + count);
    for (size_t i = 0; i < count; ++i) {
      k[old + i] = float_to_half(rotated_[i]);
      vv[old + i] = float_to_half(v[i]);
    }
  }
  length_[l] += n;
}

const float* DenseKvAttention::head_rows(int layer, bool values, int g, int64_t len,
                                         std::vector<float>& dst, int* ld) const {
  const size_t l = size_t(layer);
  if (storage_ == KvStorage::kFp32) {
    *ld = int(row_);
    return (values ? v32_[l] : k32_[l]).data() + int64_t(g) * head_dim_;
  }
  const std::vector<uint16_t>& f16 = values ? v16_[l] : k16_[l];
  dst.resize(size_t(len) * size_t(head_dim_));
  for (int64_t t = 0; t < len; ++t)
    for (int i = 0; i < head_dim_; ++i)
      dst[size_t(t * head_dim_ + i)] = half_to_float(f16[size_t(t * row_ + g * head_dim_ + i)]);
  *ld = head_dim_;
  return dst.data();
}

void DenseKvAttention::attend(int layer, int n, const float* q, float* out) {
  const size_t l = size_t(layer);
  const int64_t len = length_[l];
  if (n <= 0) return;
  if (n > len) throw std::logic_error("attend: more queries than cached tokens");
  const int D = head_dim_, H = n_heads_, r = n_heads_ / n_kv_heads_;
  const int64_t q_row = int64_t(H) * D;
  const float scale = 1.0f / std::sqrt(float(D));

  for (int g = 0; g < n_kv_heads_; ++g) {
    int ldk = 0, ldv = 0;
    const float* K = head_rows(layer, false, g, len, k_rows_, &ldk);
    const float* V = head_rows(layer, true, g, len, v_rows_, &ldv);
    for (int i0 = 0; i0 < n; i0 += kQueryBlock) {
      const int nb = std::min(kQueryBlock, n - i0);
      const int rows = nb * r;
      // Keys the block can see: up to the last query's own position.
      const int64_t keys = len - n + i0 + nb;
      // Stack the block's queries of this group's r heads: row (i, j) = query i, head g·r+j.
      q_block_.resize(size_t(rows) * D);
      for (int i = 0; i < nb; ++i)
        for (int j = 0; j < r; ++j)
          std::copy_n(q + (i0 + i) * q_row + int64_t(g * r + j) * D, D,
                      q_block_.data() + size_t(i * r + j) * D);
      scores_.resize(size_t(rows) * size_t(keys));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, int(keys), D, scale,
                  q_block_.data(), D, K, ldk, 0.0f, scores_.data(), int(keys));
      // Causal softmax per row; masked entries become exact zeros.
      for (int row = 0; row < rows; ++row) {
        float* s = scores_.data() + size_t(row) * size_t(keys);
        const int64_t visible = len - n + i0 + row / r + 1;
        float mx = -INFINITY;
        for (int64_t t = 0; t < visible; ++t) mx = std::max(mx, s[t]);
        float sum = 0.0f;
        for (int64_t t = 0; t < visible; ++t) {
          s[t] = std::exp(s[t] - mx);
          sum += s[t];
        }
        const float inv = 1.0f / sum;
        for (int64_t t = 0; t < visible; ++t) s[t] *= inv;
        for (int64_t t = visible; t < keys; ++t) s[t] = 0.0f;
      }
      o_block_.resize(size_t(rows) * D);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, int(keys), 1.0f,
                  scores_.data(), int(keys), V, ldv, 0.0f, o_block_.data(), D);
      for (int i = 0; i < nb; ++i)
        for (int j = 0; j < r; ++j)
          std::copy_n(o_block_.data() + size_t(i * r + j) * D, D,
                      out + (i0 + i) * q_row + int64_t(g * r + j) * D);
    }
  }
}

size_t DenseKvAttention::bytes_per_token() const {
  const size_t elem = storage_ == KvStorage::kFp32 ? 4 : 2;
  return 2 * size_t(n_layers_) * size_t(row_) * elem;
}

size_t DenseKvAttention::bytes_allocated() const {
  size_t b = 0;
  for (const auto& s : k32_) b += s.capacity() * sizeof(float);
  for (const auto& s : v32_) b += s.capacity() * sizeof(float);
  for (const auto& s : k16_) b += s.capacity() * sizeof(uint16_t);
  for (const auto& s : v16_) b += s.capacity() * sizeof(uint16_t);
  return b;
}

size_t DenseKvAttention::bytes_in_use() const {
  // Every layer holds the same tokens between forward calls; bytes_per_token() covers all layers.
  return size_t(length_.empty() ? 0 : length_[0]) * bytes_per_token();
}

std::string DenseKvAttention::describe() const {
  return std::string("dense ") + (storage_ == KvStorage::kFp32 ? "fp32" : "fp16") +
         " (post-RoPE keys)";
}

}  // namespace llama_runner
