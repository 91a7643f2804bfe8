// The distillation loss (core/attention_distill_loss.h) on a GPU: every product is a cuBLAS sgemm,
// and the steps between them are the small kernels of kernels/distill_loss.cu. The computation is
// the CPU loss's (core/cpu_attention_distill_loss.cpp) step for step.
//
// Layout. Queries, outputs and their gradients are head-major, [H][nq][D], so the q = H/G query
// heads of KV group g form one contiguous [q·nq x D] matrix: every attention product of a layer is
// one strided-batched GEMM over the G groups, and the two that sum over a group's heads
// (dV_g = P_gᵀ dO_g, dK_g = dS_gᵀ Q_g) sum inside the GEMM. Scores are [H][nq][n]. Keys, values
// and their gradients stay [n x G·D] as in the sample: group g is the column block at g·D, a
// matrix with leading dimension G·D and batch stride D.
//
// Precision. The handle runs in CUBLAS_PEDANTIC_MATH: plain fp32 products, never TF32 or another
// reduced-precision shortcut, so the GEMMs round as BLAS sgemm does up to summation order; the
// kernels sum in double where the CPU does.
//
// Memory. The sample's latents and the bases are uploaded once per loss; the scratch (scores and
// their gradient, [H·nq x n] each, and six [n x G·D] buffers) is per loss too, a few MiB per layer
// at the default 256 tokens. Per evaluate the masks go up in one copy and the loss and gradients
// come down in one, followed by the only synchronization of the call.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/attention_distill_loss.h"
#include "core/error.h"
#include "core/rope.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "kernels/distill_loss.h"

namespace starkv {

struct CudaDistillQueue {
  explicit CudaDistillQueue(int32_t d) : device(d) {
    try {
      cuda_check(cudaSetDevice(device), "cudaSetDevice");
      cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
      cublas_check(cublasCreate(&blas), "cublasCreate");
      cublas_check(cublasSetStream(blas, stream), "cublasSetStream");
      cublas_check(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaDistillQueue() { release(); }
  CudaDistillQueue(const CudaDistillQueue&) = delete;
  CudaDistillQueue& operator=(const CudaDistillQueue&) = delete;

  void release() noexcept {
    cudaSetDevice(device);
    if (blas != nullptr) cublasDestroy(blas);
    if (stream != nullptr) cudaStreamDestroy(stream);
    blas = nullptr;
    stream = nullptr;
  }

  int32_t device;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
};

namespace {

// Directions past the last non-zero mask contribute nothing to a reconstruction, so the GEMM can
// stop there (as the CPU loss does).
int32_t active_channels(const std::vector<double>& mask) {
  int32_t r = static_cast<int32_t>(mask.size());
  while (r > 0 && mask[static_cast<size_t>(r - 1)] == 0.0) --r;
  return r;
}

class CudaAttentionDistillLoss final : public AttentionDistillLoss {
 public:
  CudaAttentionDistillLoss(std::shared_ptr<CudaDistillQueue> queue, const ModelShape& shape,
                           const RopeConfig& rope, float attention_scale,
                           const DistillSample& sample,
                           const std::vector<GroupSpectrum>& key_groups,
                           const std::vector<GroupSpectrum>& value_groups)
      : AttentionDistillLoss(sample.n_tokens),
        queue_(std::move(queue)),
        n_(sample.n_tokens),
        n_heads_(shape.n_heads),
        n_kv_heads_(shape.n_kv_heads),
        head_dim_(shape.head_dim),
        width_(shape.kv_width()),
        heads_per_group_(shape.queries_per_kv()),
        n_queries_(query_rows()),
        first_query_(n_ - n_queries_),
        scale_(attention_scale) {
    require(sample.has_queries(), STARKV_ERR_INTERNAL, "the distillation loss needs queries");
    cuda_check(cudaSetDevice(queue_->device), "cudaSetDevice");
    const cudaStream_t stream = queue_->stream;

    // RoPE: the CPU's frequencies, and the pair count the kernel rotates (0: none).
    const int32_t rotary = rope.rotary_dim > 0 ? rope.rotary_dim : head_dim_;
    std::vector<float> inv_freq(static_cast<size_t>(std::max(1, rotary / 2)), 0.0f);
    rope_inverse_frequencies(rope, head_dim_, inv_freq.data());
    rope_pairs_ = rope.style == STARKV_ROPE_NONE ? 0 : rotary / 2;
    rope_neox_ = rope.style == STARKV_ROPE_NEOX;
    inv_freq_ = upload(inv_freq, stream);

    // The last nq query rows, head-major.
    const size_t D = static_cast<size_t>(head_dim_), nq = static_cast<size_t>(n_queries_);
    const size_t q_width = static_cast<size_t>(n_heads_) * D;
    std::vector<float> queries(nq * q_width);
    for (size_t h = 0; h < static_cast<size_t>(n_heads_); ++h) {
      for (size_t i = 0; i < nq; ++i) {
        const float* from =
            sample.queries.data() + (static_cast<size_t>(first_query_) + i) * q_width + h * D;
        std::copy_n(from, D, queries.data() + (h * nq + i) * D);
      }
    }
    queries_ = upload(queries, stream);

    const size_t kv = static_cast<size_t>(n_) * static_cast<size_t>(width_) * sizeof(float);
    const size_t out_bytes = nq * D * static_cast<size_t>(n_heads_) * sizeof(float);
    const size_t score_bytes =
        nq * static_cast<size_t>(n_) * static_cast<size_t>(n_heads_) * sizeof(float);
    for (DeviceBuffer* b :
         {&keys_hat_, &values_hat_, &roped_keys_, &d_roped_keys_, &d_keys_, &d_values_}) {
      b->reset(kv);
    }
    // Groups need not cover every channel; the rest of a reconstruction is zero, as on the CPU.
    cuda_check(cudaMemsetAsync(keys_hat_.get(), 0, kv, stream), "cudaMemsetAsync");
    cuda_check(cudaMemsetAsync(values_hat_.get(), 0, kv, stream), "cudaMemsetAsync");
    for (DeviceBuffer* b : {&out_, &reference_, &d_out_}) b->reset(out_bytes);
    scores_.reset(score_bytes);
    d_scores_.reset(score_bytes);

    const DeviceBuffer keys = upload(sample.keys, stream), values = upload(sample.values, stream);
    prepare(key_groups, keys, key_groups_);
    prepare(value_groups, values, value_groups_);
    int32_t widest = 1;
    for (const Group& g : key_groups_) widest = std::max(widest, g.in_dim);
    for (const Group& g : value_groups_) widest = std::max(widest, g.in_dim);
    masked_.reset(static_cast<size_t>(n_) * static_cast<size_t>(widest) * sizeof(float));
    projected_.reset(masked_.bytes());
    host_masks_.assign(static_cast<size_t>(channels_), 0.0f);
    masks_.reset(host_masks_.size() * sizeof(float));
    // results_[0]: the loss's sum of squares; then dL/dm, packed as the masks.
    host_results_.assign(1 + static_cast<size_t>(channels_), 0.0);
    results_.reset(host_results_.size() * sizeof(double));

    // The reference: attention over the exact keys and values, and its squared norm.
    attend(keys.get<float>(), values.get<float>(), false, false);
    cuda_check(
        cudaMemcpyAsync(reference_.get(), out_.get(), out_bytes, cudaMemcpyDeviceToDevice, stream),
        "cudaMemcpyAsync (reference)");
    cuda_check(kernels::launch_distill_output_error(reference_.get<float>(), nullptr,
                                                    static_cast<int64_t>(nq * D) * n_heads_, 0.0,
                                                    nullptr, results_.get<double>(), stream),
               "distill output error (reference norm)");
    download(1);
    reference_norm2_ = host_results_[0];
  }

  double evaluate(const std::vector<std::vector<double>>& key_masks,
                  const std::vector<std::vector<double>>& value_masks,
                  std::vector<std::vector<double>>* key_grad,
                  std::vector<std::vector<double>>* value_grad) override {
    require(key_masks.size() == key_groups_.size() && value_masks.size() == value_groups_.size(),
            STARKV_ERR_INTERNAL, "one mask per factor group is needed");
    const std::vector<int32_t> key_ranks = pack_masks(key_groups_, key_masks);
    const std::vector<int32_t> value_ranks = pack_masks(value_groups_, value_masks);
    // Nothing to match: an all-zero output is reproduced by anything.
    if (reference_norm2_ == 0.0) {
      zero_gradient(key_groups_, key_grad);
      zero_gradient(value_groups_, value_grad);
      return 0.0;
    }
    cuda_check(cudaSetDevice(queue_->device), "cudaSetDevice");
    const cudaStream_t stream = queue_->stream;
    cuda_check(cudaMemcpyAsync(masks_.get(), host_masks_.data(), host_masks_.size() * sizeof(float),
                               cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync (masks)");
    reconstruct(key_groups_, key_ranks, keys_hat_.get<float>());
    reconstruct(value_groups_, value_ranks, values_hat_.get<float>());

    const bool with_grad = key_grad != nullptr || value_grad != nullptr;
    attend(keys_hat_.get<float>(), values_hat_.get<float>(), true, with_grad);
    if (key_grad != nullptr) mask_gradient(key_groups_, d_keys_.get<float>());
    if (value_grad != nullptr) mask_gradient(value_groups_, d_values_.get<float>());
    download(with_grad ? host_results_.size() : 1);

    if (key_grad != nullptr) unpack_gradient(key_groups_, *key_grad);
    if (value_grad != nullptr) unpack_gradient(value_groups_, *value_grad);
    return host_results_[0] / reference_norm2_;
  }

 private:
  struct Group {
    int32_t in_offset;
    int32_t in_dim;
    int32_t channel;      // first entry of the group in the packed masks and gradients
    DeviceBuffer basis;   // [in_dim x in_dim]
    DeviceBuffer latent;  // [n x in_dim] = x[:, group] · basis
  };

  // Row-major C = alpha · op(A) · op(B) + beta · C for `batch` matrices at the given element
  // strides. cuBLAS is column-major, where a row-major matrix reads as its transpose: C = A·B is
  // computed as Cᵀ = op(B)ᵀ·op(A)ᵀ, the same call with the operands swapped.
  void gemm(bool trans_a, bool trans_b, int32_t m, int32_t n, int32_t k, float alpha,
            const float* a, int32_t lda, int64_t stride_a, const float* b, int32_t ldb,
            int64_t stride_b, float beta, float* c, int32_t ldc, int64_t stride_c, int32_t batch,
            const char* what) {
    cublas_check(
        cublasSgemmStridedBatched(queue_->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb,
                                  stride_b, a, lda, stride_a, &beta, c, ldc, stride_c, batch),
        what);
  }

  void prepare(const std::vector<GroupSpectrum>& spectra, const DeviceBuffer& x,
               std::vector<Group>& groups) {
    for (const GroupSpectrum& s : spectra) {
      Group g{s.in_offset, s.in_dim, channels_, upload(s.basis, queue_->stream), {}};
      g.latent.reset(static_cast<size_t>(n_) * static_cast<size_t>(s.in_dim) * sizeof(float));
      gemm(false, false, n_, s.in_dim, s.in_dim, 1.0f, x.get<float>() + s.in_offset, width_, 0,
           g.basis.get<float>(), s.in_dim, 0, 0.0f, g.latent.get<float>(), s.in_dim, 0, 1,
           "cublasSgemm (distill latents)");
      channels_ += s.in_dim;
      groups.push_back(std::move(g));
    }
  }

  // Checks the masks' widths, converts them to fp32 into host_masks_, and returns each group's
  // active channel count.
  std::vector<int32_t> pack_masks(const std::vector<Group>& groups,
                                  const std::vector<std::vector<double>>& masks) {
    std::vector<int32_t> ranks(groups.size());
    for (size_t j = 0; j < groups.size(); ++j) {
      const std::vector<double>& m = masks[j];
      require(static_cast<int32_t>(m.size()) == groups[j].in_dim, STARKV_ERR_INTERNAL,
              "a mask does not match its group's width");
      std::transform(m.begin(), m.end(), host_masks_.begin() + groups[j].channel,
                     [](double v) { return static_cast<float>(v); });
      ranks[j] = active_channels(m);
    }
    return ranks;
  }

  // x̂[:, group] = (z ⊙ m)[:, :r] · B[:, :r]ᵀ per group.
  void reconstruct(const std::vector<Group>& groups, const std::vector<int32_t>& ranks,
                   float* out) {
    const cudaStream_t stream = queue_->stream;
    for (size_t j = 0; j < groups.size(); ++j) {
      const Group& g = groups[j];
      const int32_t r = ranks[j];
      float* columns = out + g.in_offset;
      if (r == 0) {
        cuda_check(cudaMemset2DAsync(columns, static_cast<size_t>(width_) * sizeof(float), 0,
                                     static_cast<size_t>(g.in_dim) * sizeof(float),
                                     static_cast<size_t>(n_), stream),
                   "cudaMemset2DAsync (dropped group)");
        continue;
      }
      cuda_check(kernels::launch_distill_mask_latents(g.latent.get<float>(), g.in_dim,
                                                      masks_.get<float>() + g.channel, n_, r,
                                                      masked_.get<float>(), stream),
                 "distill mask latents");
      gemm(false, true, n_, g.in_dim, r, 1.0f, masked_.get<float>(), r, 0, g.basis.get<float>(),
           g.in_dim, 0, 0.0f, columns, width_, 0, 1, "cublasSgemm (distill reconstruction)");
    }
  }

  // Attention of queries_ over keys (pre-RoPE) and values, both [n x G·D]; writes out_. With the
  // loss it also writes its sum of squares to results_[0] and, with the gradient, back-propagates
  // dL/d(keys) into d_keys_ and dL/d(values) into d_values_.
  void attend(const float* keys, const float* values, bool with_loss, bool with_grad) {
    const cudaStream_t stream = queue_->stream;
    const int32_t n = n_, D = head_dim_, G = n_kv_heads_;
    const int32_t rows = heads_per_group_ * n_queries_;       // a group's query rows, all its heads
    const int64_t q_stride = static_cast<int64_t>(rows) * D;  // per group in queries / outputs
    const int64_t s_stride = static_cast<int64_t>(rows) * n;  // per group in the scores
    const int32_t score_rows = n_heads_ * n_queries_;
    float* roped = roped_keys_.get<float>();
    const float* q = queries_.get<float>();
    float* s = scores_.get<float>();  // S, then P in place
    float* o = out_.get<float>();

    cuda_check(kernels::launch_distill_rope(keys, roped, n, G, D, rope_pairs_, rope_neox_,
                                            inv_freq_.get<float>(), 1.0, stream),
               "distill rope");
    // S_g = scale · Q_g K_gᵀ, then the causal softmax row by row: query row i of a head sits at
    // position first_query_ + i and sees keys 0..that position.
    gemm(false, true, rows, n, D, scale_, q, D, q_stride, roped, width_, D, 0.0f, s, n, s_stride, G,
         "cublasSgemmStridedBatched (distill scores)");
    cuda_check(
        kernels::launch_distill_causal_softmax(s, score_rows, n_queries_, n, first_query_, stream),
        "distill causal softmax");
    // O_g = P_g V_g
    gemm(false, false, rows, D, n, 1.0f, s, n, s_stride, values, width_, D, 0.0f, o, D, q_stride, G,
         "cublasSgemmStridedBatched (distill output)");
    if (!with_loss) return;

    // Σ (O − O_ref)², and dO = 2 (O − O_ref) / ‖O_ref‖²
    float* d_out = d_out_.get<float>();
    cuda_check(kernels::launch_distill_output_error(
                   o, reference_.get<float>(), q_stride * G, 1.0 / reference_norm2_,
                   with_grad ? d_out : nullptr, results_.get<double>(), stream),
               "distill output error");
    if (!with_grad) return;
    // dV_g = P_gᵀ dO_g (summed over the group's heads inside the product)
    gemm(true, false, n, D, rows, 1.0f, s, n, s_stride, d_out, D, q_stride, 0.0f,
         d_values_.get<float>(), width_, D, G, "cublasSgemmStridedBatched (distill dV)");
    // dP_g = dO_g V_gᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP))   (the softmax Jacobian)
    float* ds = d_scores_.get<float>();
    gemm(false, true, rows, n, D, 1.0f, d_out, D, q_stride, values, width_, D, 0.0f, ds, n,
         s_stride, G, "cublasSgemmStridedBatched (distill dP)");
    cuda_check(kernels::launch_distill_softmax_backward(s, ds, score_rows, n_queries_, n,
                                                        first_query_, stream),
               "distill softmax backward");
    // d(roped K_g) = scale · dS_gᵀ Q_g
    gemm(true, false, n, D, rows, scale_, ds, n, s_stride, q, D, q_stride, 0.0f,
         d_roped_keys_.get<float>(), width_, D, G, "cublasSgemmStridedBatched (distill dK)");
    // RoPE is orthogonal: the gradient with respect to the pre-RoPE key is the inverse rotation.
    cuda_check(
        kernels::launch_distill_rope(d_roped_keys_.get<float>(), d_keys_.get<float>(), n, G, D,
                                     rope_pairs_, rope_neox_, inv_freq_.get<float>(), -1.0, stream),
        "distill inverse rope");
  }

  // x̂ = (z ⊙ m) Bᵀ  ⇒  dL/dm_i = Σ_t z_ti (dx̂_t · B)_i, into results_ at 1 + the group's channel.
  void mask_gradient(const std::vector<Group>& groups, const float* dx) {
    for (const Group& g : groups) {
      gemm(false, false, n_, g.in_dim, g.in_dim, 1.0f, dx + g.in_offset, width_, 0,
           g.basis.get<float>(), g.in_dim, 0, 0.0f, projected_.get<float>(), g.in_dim, 0, 1,
           "cublasSgemm (distill mask gradient)");
      cuda_check(kernels::launch_distill_column_dots(
                     g.latent.get<float>(), projected_.get<float>(), n_, g.in_dim,
                     results_.get<double>() + 1 + g.channel, queue_->stream),
                 "distill column dots");
    }
  }

  // The first `count` results to the host; returns when they are there.
  void download(size_t count) {
    cuda_check(cudaMemcpyAsync(host_results_.data(), results_.get(), count * sizeof(double),
                               cudaMemcpyDeviceToHost, queue_->stream),
               "cudaMemcpyAsync (distill results)");
    cuda_check(cudaStreamSynchronize(queue_->stream), "cudaStreamSynchronize");
  }

  void unpack_gradient(const std::vector<Group>& groups,
                       std::vector<std::vector<double>>& grad) const {
    grad.resize(groups.size());
    for (size_t j = 0; j < groups.size(); ++j) {
      const auto first = host_results_.begin() + 1 + groups[j].channel;
      grad[j].assign(first, first + groups[j].in_dim);
    }
  }

  static void zero_gradient(const std::vector<Group>& groups,
                            std::vector<std::vector<double>>* grad) {
    if (grad == nullptr) return;
    grad->resize(groups.size());
    for (size_t j = 0; j < groups.size(); ++j) {
      (*grad)[j].assign(static_cast<size_t>(groups[j].in_dim), 0.0);
    }
  }

  std::shared_ptr<CudaDistillQueue> queue_;
  int32_t n_, n_heads_, n_kv_heads_, head_dim_, width_, heads_per_group_;
  int32_t n_queries_, first_query_;
  float scale_;
  int32_t rope_pairs_ = 0;
  bool rope_neox_ = true;
  int32_t channels_ = 0;  // mask entries of all groups, keys then values
  double reference_norm2_ = 0.0;
  std::vector<Group> key_groups_, value_groups_;
  DeviceBuffer inv_freq_, queries_, reference_, out_, d_out_, scores_, d_scores_;
  DeviceBuffer keys_hat_, values_hat_, roped_keys_, d_roped_keys_, d_keys_, d_values_;
  DeviceBuffer masked_, projected_, masks_, results_;
  std::vector<float> host_masks_;
  std::vector<double> host_results_;
};

}  // namespace

std::shared_ptr<CudaDistillQueue> make_cuda_distill_queue(int32_t device) {
  return std::make_shared<CudaDistillQueue>(device);
}

std::unique_ptr<AttentionDistillLoss> make_cuda_attention_distill_loss(
    std::shared_ptr<CudaDistillQueue> queue, const ModelShape& shape, const RopeConfig& rope,
    float attention_scale, const DistillSample& sample,
    const std::vector<GroupSpectrum>& key_groups, const std::vector<GroupSpectrum>& value_groups) {
  require(queue != nullptr, STARKV_ERR_INTERNAL, "a CUDA distillation loss needs a queue");
  return std::make_unique<CudaAttentionDistillLoss>(std::move(queue), shape, rope, attention_scale,
                                                    sample, key_groups, value_groups);
}

}  // namespace starkv
