/*
 * The layer every language binding calls: the public C API (include/starkv/starkv.h) made safe to
 * reach from a garbage-collected language. SWIG wraps these functions (bindings/starkv.i); each
 * language adds only typemaps and a thin idiomatic layer on top.
 *
 * What this layer adds to the C API, once for all languages:
 *   - Handles are reference counted boxes (skv_handle). A pool holds its context and profile, a
 *     decode step its pool, a builder its context, so a program may close them in any order.
 *     skv_close() is the program's close(); skv_finalize() is the garbage collector's safety net:
 *     it defers the real destroy to the thread that next uses the same context, because a
 *     context and everything made from it belong to one thread at a time.
 *   - A closed handle arrives here as NULL and fails with STARKV_ERR_NULL_HANDLE, never a crash.
 *   - Every buffer arrives as (data, nbytes, kind): the language's view of its array or buffer.
 *     The expected element count is computed from the profile (keys and values [n, G, D],
 *     queries and outputs [n, H, D], latents [n, latent_width], weights [G*D, d] ...) and checked,
 *     with the dtype and the memory space, before the C API is called.
 *   - Failures are recorded per thread (status + message) instead of returned; each language
 *     turns a recorded failure into its own idiom in one place (a %exception block, or Go's
 *     error check), so the functions below return their results directly.
 */
#ifndef STARKV_BINDING_H
#define STARKV_BINDING_H

#include <starkv/starkv.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- failures ------------------------------------------------------------------------------- */

/* Forgets this thread's recorded failure; called before every wrapped call. */
void skv_error_reset(void);
/* The status of this thread's last recorded failure, STARKV_OK if the last call succeeded. */
int32_t skv_error_status(void);
/* Its message: the library's starkv_last_error() text, or the binding's own check. */
const char* skv_error_message(void);
/* Records a failure (the language layers use it for checks of their own, e.g. argument types). */
void skv_error_set(int32_t status, const char* message);

/* ---- buffers -------------------------------------------------------------------------------- */

/* What a language view holds: the element kind, plus SKV_DEVICE for device memory. */
enum skv_kind {
  SKV_KIND_F32 = 0,   /* float32 */
  SKV_KIND_F16 = 1,   /* IEEE half (e.g. numpy float16) */
  SKV_KIND_BF16 = 2,  /* bfloat16 */
  SKV_KIND_U16 = 3,   /* 16-bit bit patterns: float16 unless the call's dtype says bfloat16 */
  SKV_KIND_BYTES = 4, /* untyped bytes: the call's dtype says what they are */
  SKV_KIND_I32 = 5,   /* int32 (sequence ids, positions, lengths, ranks) */
  SKV_KIND_OTHER = 6, /* an element type starkv does not take (float64, int64, ...) */
  SKV_KIND_NONE = 7,  /* no buffer (an optional argument left out) */
  SKV_DEVICE = 0x100  /* flag: data is a device pointer (CUDA contexts) */
};

/* A dtype argument that says "from the data". */
#define SKV_DTYPE_AUTO (-1)

/* Parameter types that the language typemaps match: a tensor the call reads, one it writes. */
typedef const void* skv_in;
typedef void* skv_out;

/* ---- handles -------------------------------------------------------------------------------- */

typedef struct skv_handle skv_handle;

enum skv_handle_kinds {
  SKV_HANDLE_CONTEXT = 1,
  SKV_HANDLE_PROFILE = 2,
  SKV_HANDLE_BUILDER = 3,
  SKV_HANDLE_POOL = 4,
  SKV_HANDLE_STEP = 5
};

/* The program is done with the handle (close(), a context manager's exit, Close()). Call it
 * once per handle, on the thread that uses the handle's context. NULL is a no-op. */
void skv_close(skv_handle* handle);
/* The same from a finalizer or cleaner, on any thread. NULL is a no-op. */
void skv_finalize(skv_handle* handle);
/* SKV_HANDLE_* of a live handle (0 for NULL). */
int32_t skv_handle_kind(skv_handle* handle);

/* ---- library -------------------------------------------------------------------------------- */

/* 1 if the loaded library serves the function table of this ABI version (starkv_get_api). */
int32_t skv_abi_supported(uint32_t abi_version);

/* ---- context -------------------------------------------------------------------------------- */

/* params NULL: the defaults. stream: a cudaStream_t as an integer (0 = the default stream); it
 * replaces params->stream, which the languages cannot set. */
skv_handle* skv_context_create(const starkv_context_params* params, int64_t stream);
void skv_context_set_stream(skv_handle* ctx, int64_t stream);
void skv_context_synchronize(skv_handle* ctx);
/* The context's starkv_backend. */
int32_t skv_context_backend(skv_handle* ctx);

/* ---- profile builder ------------------------------------------------------------------------ */

/* ctx NULL means the CPU (a closed context is refused: pass the handle you have). The
 * uncompressed-layer list (int32, may be absent) replaces params' own pointer fields. */
skv_handle* skv_builder_create(skv_handle* ctx, int32_t use_cpu,
                               const starkv_profile_params* params, skv_in uncompressed,
                               int64_t uncompressed_nbytes, int32_t uncompressed_kind);
/* Weights [G*D, d] (OUT_IN) or [d, G*D] (IN_OUT); w_q [H*D, d]; calibration hidden states [n, d];
 * calibration keys/values [m, G, D], queries [m, H, D]. Any of them may be absent where the C API
 * allows it. weight_dtype / calib_dtype: a starkv_dtype or SKV_DTYPE_AUTO. */
void skv_builder_add_layer(skv_handle* builder, int32_t layer, int32_t weight_layout,
                           int32_t weight_dtype, skv_in w_k, int64_t w_k_nbytes, int32_t w_k_kind,
                           skv_in w_v, int64_t w_v_nbytes, int32_t w_v_kind, skv_in w_q,
                           int64_t w_q_nbytes, int32_t w_q_kind, int32_t calib_dtype,
                           skv_in calib_hidden, int64_t calib_hidden_nbytes,
                           int32_t calib_hidden_kind, skv_in calib_k, int64_t calib_k_nbytes,
                           int32_t calib_k_kind, skv_in calib_v, int64_t calib_v_nbytes,
                           int32_t calib_v_kind, skv_in calib_q, int64_t calib_q_nbytes,
                           int32_t calib_q_kind);
/* Factors (host float32): ranks int32 (G entries for head-wise, 1 for joint), down matrices
 * concatenated over groups [in_dim x rank], up matrices [rank x in_dim] or absent. */
void skv_builder_set_layer_factors(skv_handle* builder, int32_t layer, int32_t key_decomposition,
                                   int32_t value_decomposition, skv_in key_ranks,
                                   int64_t key_ranks_nbytes, int32_t key_ranks_kind,
                                   skv_in key_down, int64_t key_down_nbytes, int32_t key_down_kind,
                                   skv_in key_up, int64_t key_up_nbytes, int32_t key_up_kind,
                                   skv_in value_ranks, int64_t value_ranks_nbytes,
                                   int32_t value_ranks_kind, skv_in value_down,
                                   int64_t value_down_nbytes, int32_t value_down_kind,
                                   skv_in value_up, int64_t value_up_nbytes, int32_t value_up_kind);
/* The profile; the builder is spent afterwards (close it). */
skv_handle* skv_builder_finish(skv_handle* builder);

/* ---- profile -------------------------------------------------------------------------------- */

skv_handle* skv_profile_load(const char* path);
skv_handle* skv_profile_load_from_buffer(skv_in data, int64_t data_nbytes, int32_t data_kind);
void skv_profile_save(skv_handle* profile, const char* path);
/* Bytes save_to_buffer needs. */
int64_t skv_profile_save_size(skv_handle* profile);
/* Writes the profile into out; returns the bytes written. */
int64_t skv_profile_save_to_buffer(skv_handle* profile, skv_out out, int64_t out_nbytes,
                                   int32_t out_kind);
starkv_profile_info skv_profile_info(skv_handle* profile);
starkv_layer_info skv_profile_layer_info(skv_handle* profile, int32_t layer);
/* Factor groups of a layer's keys or values. */
int32_t skv_profile_group_count(skv_handle* profile, int32_t layer, int32_t kind);
/* Writes the groups' ranks into out (int32, at least group_count entries); returns the count. */
int32_t skv_profile_get_ranks(skv_handle* profile, int32_t layer, int32_t kind, skv_out out,
                              int64_t out_nbytes, int32_t out_kind);
/* Elements of one group's DOWN or UP projection. */
int64_t skv_profile_projection_size(skv_handle* profile, int32_t layer, int32_t kind, int32_t group,
                                    int32_t which);
/* Writes it into out (float32, exactly projection_size elements); returns the count. */
int64_t skv_profile_get_projection(skv_handle* profile, int32_t layer, int32_t kind, int32_t group,
                                   int32_t which, skv_out out, int64_t out_nbytes,
                                   int32_t out_kind);
int32_t skv_profile_latent_width(skv_handle* profile, int32_t layer);

/* ---- pool and sequences --------------------------------------------------------------------- */

/* params NULL: the defaults. */
skv_handle* skv_pool_create(skv_handle* ctx, skv_handle* profile, const starkv_pool_params* params);
starkv_pool_usage skv_pool_usage(skv_handle* pool);
int32_t skv_seq_create(skv_handle* pool);
int32_t skv_seq_fork(skv_handle* pool, int32_t parent);
void skv_seq_release(skv_handle* pool, int32_t seq);
int32_t skv_seq_length(skv_handle* pool, int32_t seq);
/* Bytes a snapshot of seq takes. */
int64_t skv_seq_export_size(skv_handle* pool, int32_t seq);
/* Writes the snapshot into out; returns the bytes written. */
int64_t skv_seq_export(skv_handle* pool, int32_t seq, skv_out out, int64_t out_nbytes,
                       int32_t out_kind);
int32_t skv_seq_import(skv_handle* pool, skv_in data, int64_t data_nbytes, int32_t data_kind);

/* ---- append and attend ---------------------------------------------------------------------- */

/* seq_ids, positions: int32 [n]; keys, values: [n, G, D] of one dtype (SKV_DTYPE_AUTO: from the
 * data). */
void skv_append(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                int32_t seq_ids_kind, skv_in positions, int64_t positions_nbytes,
                int32_t positions_kind, skv_in keys, int64_t keys_nbytes, int32_t keys_kind,
                skv_in values, int64_t values_nbytes, int32_t values_kind, int32_t dtype);
/* latents: [n, latent_width(layer)]. */
void skv_append_latents(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                        int32_t seq_ids_kind, skv_in positions, int64_t positions_nbytes,
                        int32_t positions_kind, skv_in latents, int64_t latents_nbytes,
                        int32_t latents_kind, int32_t dtype);
/* seq_ids, kv_lengths (may be absent): int32 [n]; queries, out: [n, H, D]. */
void skv_attend(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                int32_t seq_ids_kind, skv_in kv_lengths, int64_t kv_lengths_nbytes,
                int32_t kv_lengths_kind, skv_in queries, int64_t queries_nbytes,
                int32_t queries_kind, int32_t query_dtype, skv_out out, int64_t out_nbytes,
                int32_t out_kind, int32_t out_dtype);

skv_handle* skv_step_create(skv_handle* pool);
void skv_step_plan(skv_handle* step, skv_in seq_ids, int64_t seq_ids_nbytes, int32_t seq_ids_kind,
                   skv_in kv_lengths, int64_t kv_lengths_nbytes, int32_t kv_lengths_kind);
/* Queries in the current plan (-1 before the first plan). */
int32_t skv_step_planned(skv_handle* step);
void skv_step_run(skv_handle* step, int32_t layer, skv_in queries, int64_t queries_nbytes,
                  int32_t queries_kind, int32_t query_dtype, skv_out out, int64_t out_nbytes,
                  int32_t out_kind, int32_t out_dtype);

#ifdef __cplusplus
}
#endif

#endif /* STARKV_BINDING_H */
