#include "cuda_llama_forward.h"

#include <stdexcept>
#include <string>

namespace llama_runner {

CudaLlamaForward::CudaLlamaForward(const ModelConfig& cfg, const ModelWeights& weights,
                                   const Rope& rope, int table_positions, cudaStream_t stream)
    : cfg_(cfg), stream_(stream) {
  cublas_check(cublasCreate(&cublas_), "cublasCreate");
  cublas_check(cublasSetStream(cublas_, stream_), "cublasSetStream");
  upload_half(weights.embed, embed_);
  if (!weights.lm_head.empty()) upload_half(weights.lm_head, lm_head_);
  final_norm_.upload(weights.final_norm, stream_);
  layers_.resize(weights.layers.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& src = weights.layers[l];
    Layer& dst = layers_[l];
    dst.attn_norm.upload(src.attn_norm, stream_);
    dst.mlp_norm.upload(src.mlp_norm, stream_);
    upload_half(src.wqkv, dst.wqkv);
    upload_half(src.wo, dst.wo);
    upload_half(src.w_gate_up, dst.w_gate_up);
    upload_half(src.w_down, dst.w_down);
  }
  // The same cos/sin values the CPU model uses (Rope::angles), as device tables.
  const int half = rope.rope_dim() / 2;
  std::vector<float> c(size_t(table_positions) * half), s(c.size());
  for (int p = 0; p < table_positions; ++p)
    rope.angles(p, c.data() + size_t(p) * half, s.data() + size_t(p) * half);
  rope_cos_.upload(c, stream_);
  rope_sin_.upload(s, stream_);
  rope_tables_.cos = rope_cos_.data();
  rope_tables_.sin = rope_sin_.data();
  rope_tables_.positions = table_positions;
  rope_tables_.rope_dim = rope.rope_dim();
  rope_tables_.neox = rope.style() == RopeStyle::kNeox;
  // The uploads read pageable host vectors that go out of scope here.
  cuda_check(cudaStreamSynchronize(stream_), "upload");
}

CudaLlamaForward::~CudaLlamaForward() { cublasDestroy(cublas_); }

void CudaLlamaForward::upload_half(const std::vector<float>& host, DeviceArray<__half>& dev) {
  std::vector<__half> h(host.size());
  for (size_t i = 0; i < host.size(); ++i) h[i] = __float2half(host[i]);
  dev.resize(h.size());
  cuda_check(cudaMemcpy(dev.data(), h.data(), h.size() * sizeof(__half), cudaMemcpyHostToDevice),
             "weight upload");
  weight_bytes_ += dev.bytes();
}

void CudaLlamaForward::linear(const __half* x, int n, int in, const __half* w, int out, float* y,
                              bool accumulate) {
  // Row-major y = x·Wᵀ is column-major yᵀ = W·xᵀ: W (row-major out × in) is a column-major
  // in × out matrix used transposed, x (row-major n × in) a column-major in × n one.
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  cublas_check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, CUDA_R_16F,
                            in, x, CUDA_R_16F, in, &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

void CudaLlamaForward::forward(const int32_t* tokens, const int32_t* positions,
                               const int32_t* seq_ids, const int32_t* kv_lengths, int n,
                               CudaKvCache& kv) {
  const int d = cfg_.hidden_size, F = cfg_.intermediate_size, D = cfg_.head_dim;
  const int H = cfg_.n_heads, G = cfg_.n_kv_heads;
  const int qd = H * D, kvd = G * D, qkvd = qd + 2 * kvd;
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
      throw std::out_of_range("token id " + std::to_string(tokens[i]) + " outside the vocabulary");
    if (positions[i] < 0 || positions[i] >= rope_tables_.positions)
      throw std::out_of_range("position " + std::to_string(positions[i]) +
                              " beyond the RoPE table");
  }
  const size_t rows = size_t(n);
  x_.resize(rows * d);
  h_.resize(rows * d);
  qkv_.resize(rows * qkvd);
  q_.resize(rows * qd);
  k_.resize(rows * kvd);
  v_.resize(rows * kvd);
  attn_.resize(rows * qd);
  gate_up_.resize(rows * 2 * F);
  act_.resize(rows * F);
  auto upload = [&](const int32_t* host, DeviceArray<int32_t>& dev) {
    dev.resize(rows);
    cuda_check(cudaMemcpyAsync(dev.data(), host, rows * sizeof(int32_t), cudaMemcpyHostToDevice,
                               stream_),
               "cudaMemcpyAsync");
  };
  upload(tokens, tokens_);
  upload(positions, positions_);
  upload(seq_ids, seq_ids_);
  const CudaRowBatch batch{n, seq_ids, positions, kv_lengths, seq_ids_.data(), positions_.data()};
  kv.plan(batch);

  launch_embed_rows(embed_.data(), tokens_.data(), n, d, x_.data(), stream_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    launch_rms_norm(x_.data(), L.attn_norm.data(), n, d, cfg_.rms_norm_eps, h_.data(), stream_);
    linear(h_.data(), n, d, L.wqkv.data(), qkvd, qkv_.data(), false);
    launch_split_qkv(qkv_.data(), positions_.data(), n, H, G, D, rope_tables_, q_.data(),
                     k_.data(), v_.data(), stream_);
    kv.append(int(l), batch, k_.data(), v_.data());
    kv.attend(int(l), batch, q_.data(), attn_.data());
    linear(attn_.data(), n, qd, L.wo.data(), d, x_.data(), true);
    launch_rms_norm(x_.data(), L.mlp_norm.data(), n, d, cfg_.rms_norm_eps, h_.data(), stream_);
    linear(h_.data(), n, d, L.w_gate_up.data(), 2 * F, gate_up_.data(), false);
    launch_silu_mul(gate_up_.data(), n, F, act_.data(), stream_);
    linear(act_.data(), n, F, L.w_down.data(), d, x_.data(), true);
  }
  launch_rms_norm(x_.data(), final_norm_.data(), n, d, cfg_.rms_norm_eps, h_.data(), stream_);
  cuda_check(cudaGetLastError(), "forward kernels");
  rows_ = n;
}

const float* CudaLlamaForward::logits(int row0, int m) {
  if (row0 < 0 || m < 0 || row0 + m > rows_) throw std::out_of_range("logits rows out of range");
  const int d = cfg_.hidden_size, V = cfg_.vocab_size;
  logits_.resize(size_t(m) * V);
  const __half* head = lm_head_.size() ? lm_head_.data() : embed_.data();
  linear(h_.data() + size_t(row0) * d, m, d, head, V, logits_.data(), false);
  return logits_.data();
}

void CudaLlamaForward::next_tokens(int m, int32_t* out) {
  const float* z = logits(0, m);
  next_.resize(size_t(m));
  launch_argmax_rows(z, m, cfg_.vocab_size, next_.data(), stream_);
  cuda_check(cudaMemcpyAsync(out, next_.data(), size_t(m) * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, stream_),
             "cudaMemcpyAsync");
  cuda_check(cudaStreamSynchronize(stream_), "next_tokens");
}

}  // namespace llama_runner
