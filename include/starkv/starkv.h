/*
 * starkv — compressed KV cache for LLM inference (STAR-KV method).
 *
 * This header is the whole public interface. It reads top to bottom as a manual:
 *   1. versions, status codes, errors
 *   2. the context (which backend runs the work)
 *   3. profiles: how a model's keys and values are compressed (build, import, save, load, inspect)
 *   4. the cache pool: pages of quantized latents, sequences, fork, snapshots
 *   5. append and attend, and the decode step (plan once, run per layer)
 *   6. the function table for dlopen users
 *
 * Conventions
 *   - Every call that can fail returns a starkv_status. On failure the call changes nothing it was
 *     given, and starkv_last_error() holds a message for this thread.
 *   - Params structs begin with `size_t struct_size`. Fill them with the matching *_default()
 *     function, which sets struct_size = sizeof(the struct your program was compiled with); new
 *     fields are only ever added at the end, so an older program keeps working with a newer library.
 *   - Every *_create / *_load has a *_destroy that accepts NULL.
 *   - Ownership: the caller owns every buffer it passes in; starkv owns what its handles allocate.
 *   - Threading: a context and everything made from it are used by one thread at a time. Profiles
 *     are immutable once built and may be shared across threads and pools.
 *   - Memory: on the CPU backend every data pointer is host memory. On the CUDA backend the tensor
 *     pointers (keys, values, latents, queries, outputs) are device memory on the context's device,
 *     and the small index arrays (sequence ids, positions, lengths) are host memory.
 *   - Tensors are dense, row-major, C order.
 */
#ifndef STARKV_STARKV_H
#define STARKV_STARKV_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(STARKV_BUILDING_LIBRARY)
#define STARKV_API __declspec(dllexport)
#else
#define STARKV_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define STARKV_API __attribute__((visibility("default")))
#else
#define STARKV_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
 * 1. Versions, status codes, errors
 * ========================================================================================== */

#define STARKV_VERSION_MAJOR 0
#define STARKV_VERSION_MINOR 1
#define STARKV_VERSION_PATCH 0
#define STARKV_VERSION_NUMBER \
  (STARKV_VERSION_MAJOR * 10000 + STARKV_VERSION_MINOR * 100 + STARKV_VERSION_PATCH)
/* The ABI version changes only when a compiled program could break; starkv_get_api() checks it. */
#define STARKV_ABI_VERSION 1

/* The version of the library actually loaded, e.g. 100 for 0.1.0. Compare with
 * STARKV_VERSION_NUMBER to detect a header/library mismatch. */
STARKV_API uint32_t starkv_version_number(void);
/* "0.1.0" — a static string, never freed. */
STARKV_API const char* starkv_version_string(void);
/* STARKV_ABI_VERSION of the loaded library. */
STARKV_API uint32_t starkv_abi_version(void);

typedef enum starkv_status {
  STARKV_OK = 0,
  STARKV_ERR_INVALID_ARGUMENT = 1,   /* a value out of range, a NULL pointer where one is needed */
  STARKV_ERR_NULL_HANDLE = 2,        /* a NULL context/profile/pool/step handle */
  STARKV_ERR_SIZE_MISMATCH = 3,      /* a buffer or struct of the wrong size for the call */
  STARKV_ERR_DTYPE = 4,              /* a dtype the call does not accept */
  STARKV_ERR_OUT_OF_MEMORY = 5,      /* host or device allocation failed */
  STARKV_ERR_POOL_FULL = 6,          /* not enough free pages; nothing was written */
  STARKV_ERR_UNKNOWN_SEQUENCE = 7,   /* a sequence id the pool does not hold */
  STARKV_ERR_POSITION = 8,           /* tokens appended out of order, or attending unstored tokens */
  STARKV_ERR_CORRUPT_DATA = 9,       /* a file or buffer failed its checksum or structure checks */
  STARKV_ERR_FORMAT = 10,            /* not a starkv file, or a starkv file of another kind */
  STARKV_ERR_VERSION = 11,           /* a file written by a newer, incompatible format version */
  STARKV_ERR_PROFILE_MISMATCH = 12,  /* a snapshot made on a pool with a different profile */
  STARKV_ERR_IO = 13,                /* a file could not be opened, read or written */
  STARKV_ERR_BUFFER_TOO_SMALL = 14,  /* the caller's buffer is too small; *size_out says how big */
  STARKV_ERR_BACKEND_UNAVAILABLE = 15, /* e.g. CUDA asked for but not built in or no device */
  STARKV_ERR_UNSUPPORTED = 16,       /* a valid request this build or backend does not implement */
  STARKV_ERR_NUMERICAL = 17,         /* a decomposition did not converge, or NaN/Inf in the input */
  STARKV_ERR_CANCELLED = 18,         /* the progress callback asked to stop */
  STARKV_ERR_INVALID_STATE = 19,     /* a call out of order, e.g. finishing a builder twice */
  STARKV_ERR_BACKEND = 20,           /* the backend (CUDA, cuBLAS, cuSOLVER) reported an error */
  STARKV_ERR_INTERNAL = 21           /* a bug in starkv; please report it with the message */
} starkv_status;

/* A short static description of a status code ("pool full"); never NULL. */
STARKV_API const char* starkv_status_string(starkv_status status);
/* The message of the last failed call on this thread ("" if none). The pointer stays valid until
 * the next starkv call on this thread. */
STARKV_API const char* starkv_last_error(void);
/* Forget the last error on this thread. */
STARKV_API void starkv_clear_error(void);

typedef enum starkv_dtype {
  STARKV_DTYPE_F32 = 0,
  STARKV_DTYPE_F16 = 1,  /* IEEE half, passed as uint16_t bit patterns */
  STARKV_DTYPE_BF16 = 2  /* bfloat16, passed as uint16_t bit patterns */
} starkv_dtype;

/* Bytes per element of a dtype (4, 2, 2), or 0 for an unknown value. */
STARKV_API size_t starkv_dtype_size(starkv_dtype dtype);

/* ============================================================================================
 * 2. The context: which backend does the work
 * ========================================================================================== */

typedef struct starkv_context starkv_context;

typedef enum starkv_backend {
  STARKV_BACKEND_CPU = 0,  /* reference backend: fp32 loops, LAPACK; the oracle for every test */
  STARKV_BACKEND_CUDA = 1  /* fused kernels, cuBLAS/cuSOLVER; data pointers are device memory */
} starkv_backend;

typedef struct starkv_context_params {
  size_t struct_size;
  starkv_backend backend;
  int32_t device;    /* CUDA device ordinal (CUDA only) */
  void* stream;      /* a cudaStream_t the caller owns; NULL = the legacy default stream */
  int32_t n_threads; /* CPU worker threads; 0 = one per core */
} starkv_context_params;

STARKV_API starkv_context_params starkv_context_params_default(void);
/* 1 if this build has the backend and (for CUDA) a usable device, else 0. */
STARKV_API int32_t starkv_backend_available(starkv_backend backend);
STARKV_API starkv_status starkv_context_create(const starkv_context_params* params,
                                               starkv_context** out);
STARKV_API void starkv_context_destroy(starkv_context* ctx);
/* Work issued afterwards goes to this stream (CUDA); the caller keeps owning it. */
STARKV_API starkv_status starkv_context_set_stream(starkv_context* ctx, void* stream);
/* Waits until all work the context issued has finished (a no-op on the CPU). */
STARKV_API starkv_status starkv_context_synchronize(starkv_context* ctx);

/* ============================================================================================
 * 3. Profiles: how one model's keys and values are compressed
 *
 * A profile holds, per layer, the key and value factor groups: a down-projection (latent =
 * x · down) and an up-projection (x̂ = latent · up), with the block Hadamard rotation of the
 * quantizer already folded in; the ranks; the quantization layout; the model's RoPE settings.
 * Build it from weights (and optional calibration data) with a profile builder, or assemble it
 * from factors computed elsewhere. It is immutable and reference counted: a pool keeps its
 * profile alive, so starkv_profile_destroy may be called as soon as the pools exist.
 * ========================================================================================== */

typedef struct starkv_profile starkv_profile;
typedef struct starkv_profile_builder starkv_profile_builder;

typedef enum starkv_decomposition {
  STARKV_DECOMP_HEADWISE = 0, /* one factor group per KV head (HD; the default for keys) */
  STARKV_DECOMP_JOINT = 1     /* one factor group over all KV heads (JD; the default for values) */
} starkv_decomposition;

typedef enum starkv_rank_allocator {
  STARKV_ALLOC_SOFT_THRESHOLD = 0, /* learned thresholds, sigma*tanh(s(sigma-alpha)) (STAR-KV) */
  STARKV_ALLOC_STATIC = 1,         /* the same rank for every group */
  STARKV_ALLOC_GREEDY = 2          /* greedy marginal utility: error drop per byte (LU-KV style) */
} starkv_rank_allocator;

typedef enum starkv_rope_style {
  STARKV_ROPE_NEOX = 0, /* rotate halves: pairs (i, i + rope_dim/2) (Llama/HF) */
  STARKV_ROPE_GPTJ = 1, /* rotate interleaved pairs (2i, 2i+1) */
  STARKV_ROPE_NONE = 2  /* keys carry no position encoding */
} starkv_rope_style;

typedef enum starkv_rope_scaling {
  STARKV_ROPE_SCALING_NONE = 0,
  STARKV_ROPE_SCALING_LINEAR = 1, /* position / factor */
  STARKV_ROPE_SCALING_LLAMA3 = 2  /* Llama 3.1 frequency-dependent scaling */
} starkv_rope_scaling;

typedef enum starkv_weight_layout {
  STARKV_WEIGHT_OUT_IN = 0, /* [n_kv_heads*head_dim, hidden_dim]: torch nn.Linear, HF/Llama files */
  STARKV_WEIGHT_IN_OUT = 1  /* [hidden_dim, n_kv_heads*head_dim]: k = x · W */
} starkv_weight_layout;

/* Progress of a long build: stage names a step ("decompose", "allocate", ...); done/total count
 * its units. Return 0 to go on, non-zero to cancel (the call then returns STARKV_ERR_CANCELLED). */
typedef int32_t (*starkv_progress_fn)(void* user, const char* stage, int64_t done, int64_t total);

typedef struct starkv_profile_params {
  size_t struct_size;

  /* --- the model (required) --- */
  int32_t n_layers;
  int32_t n_heads;     /* query heads H */
  int32_t n_kv_heads;  /* KV heads G; H must be a multiple of G */
  int32_t head_dim;    /* D */
  int32_t hidden_dim;  /* d, the width of W_K/W_V inputs; 0 when building from K/V samples only */

  /* --- positions: RoPE is applied to reconstructed keys at attention time --- */
  starkv_rope_style rope_style;
  int32_t rope_dim;                   /* rotated dims per head; 0 = head_dim */
  float rope_theta;                   /* 10000 for Llama 2, 500000 for Llama 3 */
  starkv_rope_scaling rope_scaling;
  float rope_scaling_factor;          /* linear and llama3 */
  float rope_low_freq_factor;         /* llama3 */
  float rope_high_freq_factor;        /* llama3 */
  int32_t rope_original_max_position; /* llama3 */
  float attention_scale;              /* softmax scale; 0 = 1/sqrt(head_dim) */

  /* --- low-rank compression ---
   * target_compression is the fraction of latent channels removed relative to dense 2*G*D per
   * token (DESIGN §2.4 "low-rank compression"; quantization comes on top). It is split between keys
   * and values (values are more sensitive): by default 0.60 -> keys 0.70 / values 0.50,
   * 0.75 -> keys 0.80 / values 0.70, linear in between and beyond; each side is kept in [0, 0.98]
   * and what one side cannot take goes to the other, so their mean stays the target. Set
   * key_compression and value_compression (both >= 0) to choose the split yourself. */
  float target_compression;
  float key_compression;   /* < 0: from the split rule */
  float value_compression; /* < 0: from the split rule */
  starkv_rank_allocator allocator;
  starkv_decomposition key_decomposition;
  starkv_decomposition value_decomposition;
  int32_t min_key_rank;    /* per key group; default 8 */
  int32_t key_rank_tile;   /* key ranks rounded to a multiple of this (1 = no rounding); default 1 */
  int32_t value_rank_tile; /* default 1 */
  /* Layers kept at full rank and 16 bits (e.g. the first few and the last); may be NULL. */
  const int32_t* uncompressed_layers;
  int32_t n_uncompressed_layers;
  /* 1: the target counts every layer, the uncompressed ones included (compressed layers then
   * compress harder); 0: the target counts only the compressed layers. Default 0. */
  int32_t target_counts_all_layers;

  /* --- calibration --- */
  float whitening_lambda;         /* ridge added to X^T X / n, relative to its mean diagonal */
  int32_t max_calibration_tokens; /* per layer, for decomposition and the distillation loss */

  /* --- the soft-threshold optimizer (DESIGN §2.2) --- */
  int32_t st_max_steps;      /* Adam steps; default 400 */
  float st_sharpness;        /* s in sigma*tanh(s(sigma-alpha)), on spectra normalized to 1; 50 */
  float st_learning_rate;    /* Adam learning rate for alpha; 1e-2 */
  float st_key_pressure;     /* initial weight of sum exp(-alpha) over key groups; 0.1 */
  float st_value_pressure;   /* initial weight for value groups; 0.1 */
  int32_t st_distill_tokens; /* calibration tokens in the attention-output loss; default 256 */
  uint64_t seed;             /* sign flips of the Hadamard rotation, sampling */

  /* --- quantization (DESIGN §2.3) ---
   * inlier_bits: 16 (fp16 latents, no quantization), 4, 3 or 2 — or 32 (fp32 latents: exact,
   * for ablations and exactness tests). outlier_bits: 16, 8 or 4 (ignored when inlier_bits is 16
   * or 32). The leading floor(outlier_fraction*rank) channels of each group form the outlier
   * block. */
  int32_t inlier_bits;
  int32_t outlier_bits;
  float outlier_fraction;     /* default 0.2 */
  int32_t hadamard;           /* 1: rotate each block by a block Walsh-Hadamard (default) */
  int32_t pack_3bit_in_nibbles; /* 1: 3-bit codes stored as 4-bit nibbles (reference layout) */

  /* --- progress --- */
  starkv_progress_fn progress;
  void* progress_user;
} starkv_profile_params;

STARKV_API starkv_profile_params starkv_profile_params_default(void);

/* What one layer contributes to a build. Weights are optional when calibration K/V samples are
 * given (then the factors are the principal axes of the samples: PCA, no weights). */
typedef struct starkv_layer_data {
  size_t struct_size;
  /* Projection weights, each G*D x d in OUT_IN layout (or d x G*D in IN_OUT layout). */
  const void* w_k;
  const void* w_v;
  const void* w_q; /* optional, H*D rows: queries for the distillation loss from hidden states */
  starkv_dtype weight_dtype;
  starkv_weight_layout weight_layout;
  /* Optional calibration hidden states [n_calib_hidden, d] (the layer's attention input after
   * its norm): whitening makes the truncation error the error on the actual keys and values. */
  const void* calib_hidden;
  int64_t n_calib_hidden;
  starkv_dtype calib_hidden_dtype;
  /* Optional calibration samples for n_calib_kv consecutive tokens (positions 0..n-1):
   * pre-RoPE keys [n, G, D], values [n, G, D], post-RoPE queries [n, H, D] (queries optional). */
  const void* calib_k;
  const void* calib_v;
  const void* calib_q;
  int64_t n_calib_kv;
  starkv_dtype calib_kv_dtype;
} starkv_layer_data;

STARKV_API starkv_layer_data starkv_layer_data_default(void);

/* Factors computed elsewhere, for one layer (host fp32). Groups are concatenated: for HD keys,
 * group g's down matrix is [D x key_ranks[g]] and follows group g-1's; for JD keys there is one
 * group of [G*D x key_ranks[0]]. up matrices are [rank x in_dim]; key_up/value_up may be NULL,
 * meaning the transpose of down (orthonormal factors). No rotation is applied yet: the builder
 * folds the quantizer's Hadamard rotation in. */
typedef struct starkv_layer_factors {
  size_t struct_size;
  starkv_decomposition key_decomposition;
  starkv_decomposition value_decomposition;
  const int32_t* key_ranks;  /* G entries (HD) or 1 (JD) */
  const float* key_down;
  const float* key_up;
  const int32_t* value_ranks;
  const float* value_down;
  const float* value_up;
} starkv_layer_factors;

STARKV_API starkv_layer_factors starkv_layer_factors_default(void);

/* A builder collects layers one at a time (each is decomposed when added, so the caller may free
 * its weights right away) and then allocates ranks across all layers at finish. ctx chooses where
 * the linear algebra runs; NULL means the CPU. The params are copied (the uncompressed-layer list
 * too). */
STARKV_API starkv_status starkv_profile_builder_create(starkv_context* ctx,
                                                       const starkv_profile_params* params,
                                                       starkv_profile_builder** out);
STARKV_API void starkv_profile_builder_destroy(starkv_profile_builder* builder);
/* Decomposes one layer from its weights and/or calibration samples. */
STARKV_API starkv_status starkv_profile_builder_add_layer(starkv_profile_builder* builder,
                                                          int32_t layer,
                                                          const starkv_layer_data* data);
/* Uses factors computed elsewhere for this layer; its ranks are fixed, not allocated. */
STARKV_API starkv_status starkv_profile_builder_set_layer_factors(
    starkv_profile_builder* builder, int32_t layer, const starkv_layer_factors* factors);
/* Allocates ranks (every layer must have been added or set, except the uncompressed layers, which
 * need not be added), folds the rotations, and returns the profile. The builder cannot be
 * finished twice. */
STARKV_API starkv_status starkv_profile_builder_finish(starkv_profile_builder* builder,
                                                       starkv_profile** out);

/* Releases the caller's reference; pools built on the profile keep their own. */
STARKV_API void starkv_profile_destroy(starkv_profile* profile);

/* --- profiles are files: versioned, checksummed, zstd-compressed ---
 * save_to_buffer with buffer NULL (or too small) reports the needed size in *size_out. */
STARKV_API starkv_status starkv_profile_save(const starkv_profile* profile, const char* path);
STARKV_API starkv_status starkv_profile_load(const char* path, starkv_profile** out);
STARKV_API starkv_status starkv_profile_save_to_buffer(const starkv_profile* profile, void* buffer,
                                                       size_t capacity, size_t* size_out);
STARKV_API starkv_status starkv_profile_load_from_buffer(const void* buffer, size_t size,
                                                         starkv_profile** out);

/* --- inspecting a profile --- */
typedef struct starkv_profile_info {
  size_t struct_size;
  int32_t n_layers, n_heads, n_kv_heads, head_dim;
  int32_t inlier_bits, outlier_bits;
  int32_t n_uncompressed_layers;
  int64_t latent_channels_per_token;  /* sum over layers of key and value ranks */
  int64_t dense_channels_per_token;   /* n_layers * 2 * G * D */
  int64_t bytes_per_token;            /* all layers: codes, scales, padding */
  int64_t dense_bytes_per_token;      /* n_layers * 2 * G * D * 2 (fp16) */
  double low_rank_compression;        /* 1 - latent / dense channels, all layers */
  double low_rank_compression_compressed_layers; /* the same over compressed layers only */
  double compression;                 /* 1 - bytes / dense bytes, all layers (DESIGN §2.4) */
  double compression_compressed_layers;
  double compression_factor;          /* dense bytes / bytes ("20x") */
} starkv_profile_info;

typedef struct starkv_layer_info {
  size_t struct_size;
  int32_t compressed;                 /* 0 for an uncompressed (full-rank, 16-bit) layer */
  starkv_decomposition key_decomposition, value_decomposition;
  int32_t n_key_groups, n_value_groups;
  int32_t key_rank_total, value_rank_total;
  int64_t bytes_per_token;
} starkv_layer_info;

typedef enum starkv_tensor_kind { STARKV_KEYS = 0, STARKV_VALUES = 1 } starkv_tensor_kind;
typedef enum starkv_projection { STARKV_DOWN = 0, STARKV_UP = 1 } starkv_projection;

STARKV_API starkv_profile_info starkv_profile_info_default(void);
STARKV_API starkv_layer_info starkv_layer_info_default(void);
STARKV_API starkv_status starkv_profile_get_info(const starkv_profile* profile,
                                                 starkv_profile_info* info);
STARKV_API starkv_status starkv_profile_get_layer_info(const starkv_profile* profile, int32_t layer,
                                                       starkv_layer_info* info);
/* The ranks of a layer's key or value groups; *count receives the number of groups. */
STARKV_API starkv_status starkv_profile_get_ranks(const starkv_profile* profile, int32_t layer,
                                                  starkv_tensor_kind kind, int32_t* ranks,
                                                  int32_t capacity, int32_t* count);
/* A group's projection as fp32, rotation folded in: DOWN is [in_dim x rank] (fold it into your
 * QKV GEMM and call starkv_append_latents), UP is [rank x in_dim] (fold it into W_O, say). in_dim is
 * D for a head-wise group and G*D for a joint one. *count receives the element count; pass
 * out = NULL to ask for it. */
STARKV_API starkv_status starkv_profile_get_projection(const starkv_profile* profile, int32_t layer,
                                                       starkv_tensor_kind kind, int32_t group,
                                                       starkv_projection which, float* out,
                                                       size_t capacity, size_t* count);
/* Latent channels per token of a layer (key groups first, then value groups): the row width that
 * starkv_append_latents expects. */
STARKV_API starkv_status starkv_profile_latent_width(const starkv_profile* profile, int32_t layer,
                                                     int32_t* width);

/* ============================================================================================
 * 4. The cache pool: fixed-size pages of quantized latents, and the sequences that use them
 *
 * A page holds page_tokens tokens of every layer. Each sequence has a page table; seq_fork shares
 * the parent's pages with the child (copy-on-write: a shared page is copied only when one of them
 * appends into it). A full pool is an ordinary status (STARKV_ERR_POOL_FULL) and leaves every
 * sequence as it was.
 * ========================================================================================== */

typedef struct starkv_cache_pool starkv_cache_pool;

typedef struct starkv_pool_params {
  size_t struct_size;
  int32_t page_tokens;    /* tokens per page; default 64 */
  int64_t capacity_pages; /* pages to reserve; 0 = derive from capacity_tokens */
  int64_t capacity_tokens;/* used when capacity_pages is 0; default 65536 */
  int32_t max_sequences;  /* live sequences at once; default 1024 */
} starkv_pool_params;

typedef struct starkv_pool_usage {
  size_t struct_size;
  int64_t capacity_tokens, capacity_bytes;
  int64_t used_tokens;  /* tokens held in pages in use (pages_in_use * page_tokens) */
  int64_t used_bytes;
  int64_t stored_tokens;/* tokens appended to live sequences, shared prefixes counted once each */
  int64_t total_pages, free_pages;
  int32_t n_sequences;
  int32_t page_tokens;
  int64_t bytes_per_page;
} starkv_pool_usage;

STARKV_API starkv_pool_params starkv_pool_params_default(void);
STARKV_API starkv_pool_usage starkv_pool_usage_default(void);
/* Reserves the pool's memory now (host memory on the CPU, device memory on CUDA). */
STARKV_API starkv_status starkv_cache_pool_create(starkv_context* ctx, starkv_profile* profile,
                                                  const starkv_pool_params* params,
                                                  starkv_cache_pool** out);
STARKV_API void starkv_cache_pool_destroy(starkv_cache_pool* pool);
STARKV_API starkv_status starkv_cache_pool_get_usage(const starkv_cache_pool* pool,
                                                     starkv_pool_usage* usage);

STARKV_API starkv_status starkv_seq_create(starkv_cache_pool* pool, int32_t* seq_out);
/* A new sequence that shares all of parent's tokens (no copy until one of them appends). */
STARKV_API starkv_status starkv_seq_fork(starkv_cache_pool* pool, int32_t parent,
                                         int32_t* child_out);
STARKV_API starkv_status starkv_seq_release(starkv_cache_pool* pool, int32_t seq);
/* Tokens stored in every layer (the minimum over layers while a step is half done). */
STARKV_API starkv_status starkv_seq_length(const starkv_cache_pool* pool, int32_t seq,
                                           int32_t* length);

/* --- sequence snapshots: zstd-compressed, checksummed; restore into any pool of the same
 * profile. With buffer NULL (or too small) *size_out receives the size needed. All layers of
 * the sequence must hold the same number of tokens. */
STARKV_API starkv_status starkv_seq_export(starkv_cache_pool* pool, int32_t seq, void* buffer,
                                           size_t capacity, size_t* size_out);
STARKV_API starkv_status starkv_seq_import(starkv_cache_pool* pool, const void* buffer,
                                           size_t size, int32_t* seq_out);

/* ============================================================================================
 * 5. Append and attend
 * ========================================================================================== */

/* Appends n_tokens new tokens' pre-RoPE keys and values, each [n_tokens, G, D], for one layer:
 * they are projected, rotated, quantized and stored. Token i belongs to seq_ids[i] at
 * positions[i]; each sequence's positions must continue its stored tokens in this layer without
 * gaps (0, 1, 2, ...), in order within the batch. Pages are taken from the pool as needed.
 * On the CPU a NaN or infinity in the input returns STARKV_ERR_NUMERICAL and stores nothing; the
 * CUDA backend does not read its input back to check (that would break graph capture). */
STARKV_API starkv_status starkv_append(starkv_cache_pool* pool, int32_t layer, int32_t n_tokens,
                                       const int32_t* seq_ids, const int32_t* positions,
                                       const void* keys, const void* values, starkv_dtype dtype);
/* The same with latents an engine computed itself with the exported DOWN projections:
 * [n_tokens, latent_width] (see starkv_profile_latent_width). */
STARKV_API starkv_status starkv_append_latents(starkv_cache_pool* pool, int32_t layer,
                                               int32_t n_tokens, const int32_t* seq_ids,
                                               const int32_t* positions, const void* latents,
                                               starkv_dtype dtype);

/* A decode step: plan a batch of queries once, then run it for every layer (the FlashInfer
 * plan/run pattern). Query i reads sequence seq_ids[i] and attends to its first kv_lengths[i]
 * tokens (kv_lengths NULL: the sequence's length at plan time). Several queries may read the
 * same sequence (e.g. a causal prefill chunk, with kv_lengths 1, 2, 3, ...). On CUDA, run issues
 * no allocation and no host synchronization, so a run can be captured in a CUDA graph. */
typedef struct starkv_decode_step starkv_decode_step;

STARKV_API starkv_status starkv_decode_step_create(starkv_cache_pool* pool,
                                                   starkv_decode_step** out);
STARKV_API void starkv_decode_step_destroy(starkv_decode_step* step);
STARKV_API starkv_status starkv_decode_step_plan(starkv_decode_step* step, int32_t n_queries,
                                                 const int32_t* seq_ids,
                                                 const int32_t* kv_lengths);
/* queries: post-RoPE [n_queries, H, D]; out: [n_queries, H, D]. Fails with STARKV_ERR_POSITION if
 * a sequence holds fewer than kv_lengths[i] tokens in this layer. */
STARKV_API starkv_status starkv_decode_step_run(starkv_decode_step* step, int32_t layer,
                                                const void* queries, starkv_dtype query_dtype,
                                                void* out, starkv_dtype out_dtype);

/* One-shot plan + run, for callers that attend one layer at a time. */
STARKV_API starkv_status starkv_attend(starkv_cache_pool* pool, int32_t layer, int32_t n_queries,
                                       const int32_t* seq_ids, const int32_t* kv_lengths,
                                       const void* queries, starkv_dtype query_dtype, void* out,
                                       starkv_dtype out_dtype);

/* ============================================================================================
 * 6. The function table for dlopen users
 *
 * dlsym("starkv_get_api") is the one symbol such a program needs. The table only ever grows at
 * its end; struct_size tells how much of it this library fills.
 * ========================================================================================== */

typedef struct starkv_api {
  size_t struct_size;
  uint32_t abi_version;
  uint32_t (*version_number)(void);
  const char* (*version_string)(void);
  const char* (*status_string)(starkv_status);
  const char* (*last_error)(void);
  starkv_context_params (*context_params_default)(void);
  int32_t (*backend_available)(starkv_backend);
  starkv_status (*context_create)(const starkv_context_params*, starkv_context**);
  void (*context_destroy)(starkv_context*);
  starkv_status (*context_set_stream)(starkv_context*, void*);
  starkv_status (*context_synchronize)(starkv_context*);
  starkv_profile_params (*profile_params_default)(void);
  starkv_layer_data (*layer_data_default)(void);
  starkv_layer_factors (*layer_factors_default)(void);
  starkv_status (*profile_builder_create)(starkv_context*, const starkv_profile_params*,
                                          starkv_profile_builder**);
  void (*profile_builder_destroy)(starkv_profile_builder*);
  starkv_status (*profile_builder_add_layer)(starkv_profile_builder*, int32_t,
                                             const starkv_layer_data*);
  starkv_status (*profile_builder_set_layer_factors)(starkv_profile_builder*, int32_t,
                                                     const starkv_layer_factors*);
  starkv_status (*profile_builder_finish)(starkv_profile_builder*, starkv_profile**);
  void (*profile_destroy)(starkv_profile*);
  starkv_status (*profile_save)(const starkv_profile*, const char*);
  starkv_status (*profile_load)(const char*, starkv_profile**);
  starkv_status (*profile_save_to_buffer)(const starkv_profile*, void*, size_t, size_t*);
  starkv_status (*profile_load_from_buffer)(const void*, size_t, starkv_profile**);
  starkv_profile_info (*profile_info_default)(void);
  starkv_status (*profile_get_info)(const starkv_profile*, starkv_profile_info*);
  starkv_status (*profile_get_ranks)(const starkv_profile*, int32_t, starkv_tensor_kind, int32_t*,
                                     int32_t, int32_t*);
  starkv_status (*profile_get_projection)(const starkv_profile*, int32_t, starkv_tensor_kind,
                                          int32_t, starkv_projection, float*, size_t, size_t*);
  starkv_status (*profile_latent_width)(const starkv_profile*, int32_t, int32_t*);
  starkv_pool_params (*pool_params_default)(void);
  starkv_pool_usage (*pool_usage_default)(void);
  starkv_status (*cache_pool_create)(starkv_context*, starkv_profile*, const starkv_pool_params*,
                                     starkv_cache_pool**);
  void (*cache_pool_destroy)(starkv_cache_pool*);
  starkv_status (*cache_pool_get_usage)(const starkv_cache_pool*, starkv_pool_usage*);
  starkv_status (*seq_create)(starkv_cache_pool*, int32_t*);
  starkv_status (*seq_fork)(starkv_cache_pool*, int32_t, int32_t*);
  starkv_status (*seq_release)(starkv_cache_pool*, int32_t);
  starkv_status (*seq_length)(const starkv_cache_pool*, int32_t, int32_t*);
  starkv_status (*seq_export)(starkv_cache_pool*, int32_t, void*, size_t, size_t*);
  starkv_status (*seq_import)(starkv_cache_pool*, const void*, size_t, int32_t*);
  starkv_status (*append)(starkv_cache_pool*, int32_t, int32_t, const int32_t*, const int32_t*,
                          const void*, const void*, starkv_dtype);
  starkv_status (*append_latents)(starkv_cache_pool*, int32_t, int32_t, const int32_t*,
                                  const int32_t*, const void*, starkv_dtype);
  starkv_status (*decode_step_create)(starkv_cache_pool*, starkv_decode_step**);
  void (*decode_step_destroy)(starkv_decode_step*);
  starkv_status (*decode_step_plan)(starkv_decode_step*, int32_t, const int32_t*, const int32_t*);
  starkv_status (*decode_step_run)(starkv_decode_step*, int32_t, const void*, starkv_dtype, void*,
                                   starkv_dtype);
  starkv_status (*attend)(starkv_cache_pool*, int32_t, int32_t, const int32_t*, const int32_t*,
                          const void*, starkv_dtype, void*, starkv_dtype);
  starkv_layer_info (*layer_info_default)(void);
  starkv_status (*profile_get_layer_info)(const starkv_profile*, int32_t, starkv_layer_info*);
  void (*clear_error)(void);
  size_t (*dtype_size)(starkv_dtype);
} starkv_api;

/* The table for abi_version (pass STARKV_ABI_VERSION), or NULL if this library cannot serve that
 * ABI version (the reason is in starkv_last_error). The table is static; never free it. */
STARKV_API const starkv_api* starkv_get_api(uint32_t abi_version);
/* Its type, for dlsym users. */
typedef const starkv_api* (*starkv_get_api_fn)(uint32_t abi_version);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STARKV_STARKV_H */
