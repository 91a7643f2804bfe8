/*
 * The binding layer (see starkv_binding.h): handles, buffer checks and recorded failures.
 * starkv.i inserts this file into every language's generated wrapper, so each binding is one
 * self-contained shared library linked against libstarkv and nothing else.
 */
#ifndef STARKV_BINDING_H /* inserted after the header into SWIG wrappers */
#include "starkv_binding.h"
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * Failures: one record per thread
 * ============================================================================================== */

static __thread int32_t skv_tls_status;
static __thread char skv_tls_message[1024];

void skv_error_reset(void) {
  skv_tls_status = STARKV_OK;
  skv_tls_message[0] = '\0';
}

int32_t skv_error_status(void) { return skv_tls_status; }

const char* skv_error_message(void) { return skv_tls_message; }

void skv_error_set(int32_t status, const char* message) {
  skv_tls_status = status == STARKV_OK ? STARKV_ERR_INTERNAL : status;
  snprintf(skv_tls_message, sizeof skv_tls_message, "%s", message ? message : "");
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
skv_fail(int32_t status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  skv_tls_status = status;
  vsnprintf(skv_tls_message, sizeof skv_tls_message, format, args);
  va_end(args);
  return 0;
}

/* Records a failed C call; returns 1 when the call succeeded. */
static int skv_ok(starkv_status status) {
  if (status == STARKV_OK) return 1;
  skv_tls_status = status;
  snprintf(skv_tls_message, sizeof skv_tls_message, "%s", starkv_last_error());
  if (skv_tls_message[0] == '\0') {
    snprintf(skv_tls_message, sizeof skv_tls_message, "%s", starkv_status_string(status));
  }
  return 0;
}

/* ================================================================================================
 * Handles
 * ============================================================================================== */

struct skv_handle {
  int32_t kind;       /* skv_handle_kinds */
  int32_t refs;       /* the program's reference plus one per handle made from this one */
  void* raw;          /* the starkv_* handle */
  skv_handle* ctx;    /* the context it was made from (a reference), NULL for profiles */
  skv_handle* parent; /* pool: its profile; step: its pool (a reference) */

  /* context only: handles the garbage collector gave up while others of the context live */
  int32_t backend;
  pthread_mutex_t lock; /* guards live and dead */
  int32_t live;         /* handles of this context the program still holds (itself included) */
  skv_handle* dead;     /* finalized handles waiting for the context's thread */
  skv_handle* next_dead;

  /* profile and builder: the geometry the buffer checks need */
  int32_t n_layers, n_heads, n_kv_heads, head_dim, hidden_dim;
  int32_t* latent_width; /* profile: per layer */

  int32_t n_planned; /* step: queries in the current plan */
};

static const char* const skv_handle_names[] = {"handle",          "context", "profile",
                                               "profile builder", "pool",    "decode step"};

static skv_handle* skv_handle_new(int32_t kind, void* raw) {
  skv_handle* h = (skv_handle*)calloc(1, sizeof *h);
  if (h == NULL) {
    skv_fail(STARKV_ERR_OUT_OF_MEMORY, "out of host memory for a binding handle");
    return NULL;
  }
  h->kind = kind;
  h->refs = 1;
  h->raw = raw;
  h->n_planned = -1;
  return h;
}

static void skv_ref(skv_handle* h) {
  if (h) __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

static void skv_unref(skv_handle* h) {
  if (h == NULL || __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  switch (h->kind) {
    case SKV_HANDLE_CONTEXT:
      starkv_context_destroy((starkv_context*)h->raw);
      pthread_mutex_destroy(&h->lock);
      break;
    case SKV_HANDLE_PROFILE:
      starkv_profile_destroy((starkv_profile*)h->raw);
      break;
    case SKV_HANDLE_BUILDER:
      starkv_profile_builder_destroy((starkv_profile_builder*)h->raw);
      break;
    case SKV_HANDLE_POOL:
      starkv_cache_pool_destroy((starkv_cache_pool*)h->raw);
      break;
    case SKV_HANDLE_STEP:
      starkv_decode_step_destroy((starkv_decode_step*)h->raw);
      break;
    default:
      break;
  }
  skv_unref(h->parent);
  skv_unref(h->ctx);
  free(h->latent_width);
  free(h);
}

/* The context whose thread a handle belongs to (NULL: any thread may release it). */
static skv_handle* skv_family(skv_handle* h) { return h->kind == SKV_HANDLE_CONTEXT ? h : h->ctx; }

/* A new handle of ctx's family: it counts as live until the program closes or loses it. */
static void skv_join(skv_handle* ctx, skv_handle* h) {
  skv_ref(ctx);
  h->ctx = ctx;
  pthread_mutex_lock(&ctx->lock);
  ctx->live++;
  pthread_mutex_unlock(&ctx->lock);
}

/* Destroys the handles finalized while others of this context were in use. Runs on the thread
 * that uses the context (a call on one of its handles), or when none of them is live. */
static void skv_drain(skv_handle* ctx) {
  skv_handle* dead;
  if (__atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE) == NULL) return;
  pthread_mutex_lock(&ctx->lock);
  dead = ctx->dead;
  ctx->dead = NULL;
  pthread_mutex_unlock(&ctx->lock);
  while (dead) {
    skv_handle* next = dead->next_dead;
    skv_unref(dead);
    dead = next;
  }
}

void skv_close(skv_handle* h) {
  skv_handle* ctx;
  if (h == NULL) return;
  ctx = skv_family(h);
  if (ctx == NULL) {
    skv_unref(h);
    return;
  }
  skv_ref(ctx); /* survives h's release */
  pthread_mutex_lock(&ctx->lock);
  ctx->live--;
  pthread_mutex_unlock(&ctx->lock);
  skv_drain(ctx);
  skv_unref(h);
  skv_unref(ctx);
}

void skv_finalize(skv_handle* h) {
  skv_handle* ctx;
  int32_t live;
  if (h == NULL) return;
  ctx = skv_family(h);
  if (ctx == NULL) { /* profiles are immutable and shareable: any thread may drop them */
    skv_unref(h);
    return;
  }
  pthread_mutex_lock(&ctx->lock);
  live = --ctx->live;
  if (live > 0 && h != ctx) {
    h->next_dead = ctx->dead;
    __atomic_store_n(&ctx->dead, h, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ctx->lock);
    return;
  }
  pthread_mutex_unlock(&ctx->lock);
  /* Nothing made from this context is reachable any more (every handle refers to its context,
   * so an unreachable context means unreachable handles): no thread can be using it. */
  skv_ref(ctx);
  skv_drain(ctx);
  skv_unref(h);
  skv_unref(ctx);
}

int32_t skv_handle_kind(skv_handle* h) { return h ? h->kind : 0; }

/* The live handle of the kind a call needs; records NULL_HANDLE for a closed (NULL) one. Runs
 * the context's deferred releases first: this is that context's thread. */
static skv_handle* skv_use(skv_handle* h, int32_t kind) {
  if (h == NULL) {
    skv_fail(STARKV_ERR_NULL_HANDLE, "the %s is closed", skv_handle_names[kind]);
    return NULL;
  }
  if (h->kind != kind) {
    skv_fail(STARKV_ERR_INVALID_ARGUMENT, "a %s was passed where a %s is needed",
             skv_handle_names[h->kind >= 1 && h->kind <= 5 ? h->kind : 0], skv_handle_names[kind]);
    return NULL;
  }
  if (skv_family(h)) skv_drain(skv_family(h));
  return h;
}

/* ================================================================================================
 * Buffers
 * ============================================================================================== */

typedef struct skv_view {
  const char* what; /* the argument's name, for messages */
  const void* data;
  int64_t nbytes;
  int32_t kind; /* skv_kind without the flag */
  int device;
} skv_view;

static skv_view skv_view_of(const char* what, const void* data, int64_t nbytes, int32_t kind) {
  skv_view v;
  v.what = what;
  v.data = data;
  v.nbytes = nbytes;
  v.kind = kind & 0xff;
  v.device = (kind & SKV_DEVICE) != 0;
  return v;
}

static int skv_given(const skv_view* v) { return v->kind != SKV_KIND_NONE; }

static const char* skv_dtype_name(int32_t dtype) {
  switch (dtype) {
    case STARKV_DTYPE_F32:
      return "float32";
    case STARKV_DTYPE_F16:
      return "float16";
    case STARKV_DTYPE_BF16:
      return "bfloat16";
    default:
      return "an unknown dtype";
  }
}

static const char* skv_kind_name(int32_t kind) {
  switch (kind) {
    case SKV_KIND_F32:
      return "float32";
    case SKV_KIND_F16:
      return "float16";
    case SKV_KIND_BF16:
      return "bfloat16";
    case SKV_KIND_U16:
      return "16-bit";
    case SKV_KIND_BYTES:
      return "untyped byte";
    case SKV_KIND_I32:
      return "int32";
    case SKV_KIND_NONE:
      return "no";
    default:
      return "unsupported (e.g. float64 or int64)";
  }
}

static int skv_require(const skv_view* v) {
  if (skv_given(v)) return 1;
  return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s is required", v->what);
}

/* Host memory, or device memory on a CUDA context, as the call needs. */
static int skv_check_space(const skv_view* v, int want_device) {
  if (!skv_given(v) || v->device == want_device) return 1;
  if (v->device) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT,
                    "%s is device memory, but this call takes host memory (a CPU context, or a "
                    "host-side argument)",
                    v->what);
  }
  return skv_fail(STARKV_ERR_INVALID_ARGUMENT,
                  "%s is host memory, but the pool's context runs on CUDA: pass device memory",
                  v->what);
}

/* The dtype of a floating-point tensor: from its element kind, and the requested dtype
 * (SKV_DTYPE_AUTO or a starkv_dtype). float32_only: the call takes host float32 only. */
static int skv_resolve_dtype(const skv_view* v, int32_t requested, int float32_only,
                             int32_t* dtype) {
  int32_t from_data;
  if (requested != SKV_DTYPE_AUTO && starkv_dtype_size((starkv_dtype)requested) == 0) {
    return skv_fail(STARKV_ERR_DTYPE, "%s: unknown dtype %d", v->what, (int)requested);
  }
  switch (v->kind) {
    case SKV_KIND_F32:
      from_data = STARKV_DTYPE_F32;
      break;
    case SKV_KIND_F16:
      from_data = STARKV_DTYPE_F16;
      break;
    case SKV_KIND_BF16:
      from_data = STARKV_DTYPE_BF16;
      break;
    case SKV_KIND_U16:
      from_data = requested == STARKV_DTYPE_BF16 ? STARKV_DTYPE_BF16 : STARKV_DTYPE_F16;
      break;
    case SKV_KIND_BYTES:
      if (requested == SKV_DTYPE_AUTO) {
        return skv_fail(STARKV_ERR_DTYPE, "%s is untyped bytes: say its dtype", v->what);
      }
      from_data = requested;
      break;
    default:
      return skv_fail(STARKV_ERR_DTYPE,
                      "%s holds %s elements; starkv takes float32, or float16/bfloat16 as "
                      "16-bit values",
                      v->what, skv_kind_name(v->kind));
  }
  if (requested != SKV_DTYPE_AUTO && requested != from_data) {
    return skv_fail(STARKV_ERR_DTYPE, "%s holds %s data, but dtype %s was asked for", v->what,
                    skv_dtype_name(from_data), skv_dtype_name(requested));
  }
  if (float32_only && from_data != STARKV_DTYPE_F32) {
    return skv_fail(STARKV_ERR_DTYPE, "%s must be float32, got %s", v->what,
                    skv_dtype_name(from_data));
  }
  *dtype = from_data;
  return 1;
}

/* The number of elements of size elem_size the view holds. */
static int skv_count(const skv_view* v, size_t elem_size, int64_t* count) {
  if (v->nbytes < 0 || (v->nbytes > 0 && v->data == NULL)) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s: a buffer of %lld bytes at NULL", v->what,
                    (long long)v->nbytes);
  }
  if (v->nbytes % (int64_t)elem_size != 0) {
    return skv_fail(STARKV_ERR_SIZE_MISMATCH,
                    "%s: %lld bytes is not a whole number of %zu-byte "
                    "elements",
                    v->what, (long long)v->nbytes, elem_size);
  }
  *count = v->nbytes / (int64_t)elem_size;
  return 1;
}

static int skv_expect(const skv_view* v, int32_t dtype, int64_t expected, const char* shape) {
  int64_t count;
  if (!skv_count(v, starkv_dtype_size((starkv_dtype)dtype), &count)) return 0;
  if (count != expected) {
    return skv_fail(STARKV_ERR_SIZE_MISMATCH, "%s: expected %lld %s elements (%s), got %lld",
                    v->what, (long long)expected, skv_dtype_name(dtype), shape, (long long)count);
  }
  return 1;
}

/* A host int32 array (ids, positions, lengths, ranks); its length goes to *n. */
static int skv_indices(const skv_view* v, int64_t* n) {
  if (!skv_require(v) || !skv_check_space(v, 0)) return 0;
  if (v->kind != SKV_KIND_I32) {
    return skv_fail(STARKV_ERR_DTYPE, "%s must be int32, got %s elements", v->what,
                    skv_kind_name(v->kind));
  }
  if (!skv_count(v, sizeof(int32_t), n)) return 0;
  if (*n > INT32_MAX) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s: %lld entries is too many", v->what,
                    (long long)*n);
  }
  return 1;
}

/* Optional int32 array that must have n entries when given. */
static int skv_indices_like(const skv_view* v, int64_t n, const char* like) {
  int64_t m;
  if (!skv_given(v)) return 1;
  if (!skv_indices(v, &m)) return 0;
  if (m != n) {
    return skv_fail(STARKV_ERR_SIZE_MISMATCH, "%s has %lld entries, %s has %lld", v->what,
                    (long long)m, like, (long long)n);
  }
  return 1;
}

/* A host buffer of bytes (files, snapshots): any element type. */
static int skv_bytes(const skv_view* v) {
  if (!skv_require(v) || !skv_check_space(v, 0)) return 0;
  if (v->kind == SKV_KIND_OTHER) {
    return skv_fail(STARKV_ERR_DTYPE, "%s: pass bytes (or any plain buffer)", v->what);
  }
  if (v->nbytes < 0 || (v->nbytes > 0 && v->data == NULL)) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s: a buffer of %lld bytes at NULL", v->what,
                    (long long)v->nbytes);
  }
  return 1;
}

/* a * b without overflow (inputs are non-negative). */
static int skv_mul(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, out)) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "a size overflows (%lld x %lld)", (long long)a,
                    (long long)b);
  }
  return 1;
}

/* ================================================================================================
 * Library and context
 * ============================================================================================== */

int32_t skv_abi_supported(uint32_t abi_version) {
  return starkv_get_api(abi_version) != NULL ? 1 : 0;
}

skv_handle* skv_context_create(const starkv_context_params* params, int64_t stream) {
  starkv_context_params p = params ? *params : starkv_context_params_default();
  starkv_context* raw = NULL;
  skv_handle* h;
  p.stream = (void*)(intptr_t)stream;
  if (!skv_ok(starkv_context_create(&p, &raw))) return NULL;
  h = skv_handle_new(SKV_HANDLE_CONTEXT, raw);
  if (h == NULL) {
    starkv_context_destroy(raw);
    return NULL;
  }
  h->backend = (int32_t)p.backend;
  h->live = 1;
  if (pthread_mutex_init(&h->lock, NULL) != 0) {
    free(h);
    starkv_context_destroy(raw);
    skv_fail(STARKV_ERR_INTERNAL, "pthread_mutex_init failed");
    return NULL;
  }
  return h;
}

void skv_context_set_stream(skv_handle* ctx, int64_t stream) {
  if (!(ctx = skv_use(ctx, SKV_HANDLE_CONTEXT))) return;
  skv_ok(starkv_context_set_stream((starkv_context*)ctx->raw, (void*)(intptr_t)stream));
}

void skv_context_synchronize(skv_handle* ctx) {
  if (!(ctx = skv_use(ctx, SKV_HANDLE_CONTEXT))) return;
  skv_ok(starkv_context_synchronize((starkv_context*)ctx->raw));
}

int32_t skv_context_backend(skv_handle* ctx) {
  if (!(ctx = skv_use(ctx, SKV_HANDLE_CONTEXT))) return -1;
  return ctx->backend;
}

/* ================================================================================================
 * Profile builder
 * ============================================================================================== */

skv_handle* skv_builder_create(skv_handle* ctx, int32_t use_cpu,
                               const starkv_profile_params* params, skv_in uncompressed,
                               int64_t uncompressed_nbytes, int32_t uncompressed_kind) {
  skv_view list =
      skv_view_of("uncompressed_layers", uncompressed, uncompressed_nbytes, uncompressed_kind);
  starkv_profile_params p;
  starkv_profile_builder* raw = NULL;
  int64_t n_list = 0;
  skv_handle* h;
  if (!use_cpu && !(ctx = skv_use(ctx, SKV_HANDLE_CONTEXT))) return NULL;
  if (use_cpu) ctx = NULL;
  if (params == NULL) {
    skv_fail(STARKV_ERR_INVALID_ARGUMENT, "profile params are required");
    return NULL;
  }
  if (skv_given(&list) && !skv_indices(&list, &n_list)) return NULL;
  p = *params;
  p.uncompressed_layers = n_list > 0 ? (const int32_t*)list.data : NULL;
  p.n_uncompressed_layers = (int32_t)n_list;
  p.progress = NULL;
  p.progress_user = NULL;
  if (!skv_ok(starkv_profile_builder_create(ctx ? (starkv_context*)ctx->raw : NULL, &p, &raw))) {
    return NULL;
  }
  h = skv_handle_new(SKV_HANDLE_BUILDER, raw);
  if (h == NULL) {
    starkv_profile_builder_destroy(raw);
    return NULL;
  }
  h->n_layers = p.n_layers;
  h->n_heads = p.n_heads;
  h->n_kv_heads = p.n_kv_heads;
  h->head_dim = p.head_dim;
  h->hidden_dim = p.hidden_dim;
  if (ctx) skv_join(ctx, h);
  return h;
}

/* A builder input tensor: host memory, weight dtypes, count = rows x cols. */
static int skv_builder_tensor(const skv_view* v, int32_t requested, int32_t* dtype, int64_t rows,
                              int64_t cols, const char* shape) {
  int64_t expected;
  if (!skv_check_space(v, 0) || !skv_resolve_dtype(v, requested, 0, dtype)) return 0;
  if (!skv_mul(rows, cols, &expected)) return 0;
  return skv_expect(v, *dtype, expected, shape);
}

/* Rows of a calibration tensor whose row holds `width` elements. */
static int skv_rows(const skv_view* v, int32_t requested, int32_t* dtype, int64_t width,
                    int64_t* rows) {
  int64_t count;
  if (!skv_check_space(v, 0) || !skv_resolve_dtype(v, requested, 0, dtype)) return 0;
  if (!skv_count(v, starkv_dtype_size((starkv_dtype)*dtype), &count)) return 0;
  if (width <= 0 || count % width != 0 || count == 0) {
    return skv_fail(STARKV_ERR_SIZE_MISMATCH,
                    "%s: %lld elements is not a positive whole number of rows of %lld", v->what,
                    (long long)count, (long long)width);
  }
  *rows = count / width;
  return 1;
}

static int skv_same_dtype(const skv_view* a, int32_t da, const skv_view* b, int32_t db) {
  if (da == db) return 1;
  return skv_fail(STARKV_ERR_DTYPE, "%s is %s but %s is %s: they share one dtype", a->what,
                  skv_dtype_name(da), b->what, skv_dtype_name(db));
}

void skv_builder_add_layer(skv_handle* builder, int32_t layer, int32_t weight_layout,
                           int32_t weight_dtype, skv_in w_k, int64_t w_k_nbytes, int32_t w_k_kind,
                           skv_in w_v, int64_t w_v_nbytes, int32_t w_v_kind, skv_in w_q,
                           int64_t w_q_nbytes, int32_t w_q_kind, int32_t calib_dtype,
                           skv_in calib_hidden, int64_t calib_hidden_nbytes,
                           int32_t calib_hidden_kind, skv_in calib_k, int64_t calib_k_nbytes,
                           int32_t calib_k_kind, skv_in calib_v, int64_t calib_v_nbytes,
                           int32_t calib_v_kind, skv_in calib_q, int64_t calib_q_nbytes,
                           int32_t calib_q_kind) {
  skv_view wk = skv_view_of("w_k", w_k, w_k_nbytes, w_k_kind);
  skv_view wv = skv_view_of("w_v", w_v, w_v_nbytes, w_v_kind);
  skv_view wq = skv_view_of("w_q", w_q, w_q_nbytes, w_q_kind);
  skv_view ch = skv_view_of("calib_hidden", calib_hidden, calib_hidden_nbytes, calib_hidden_kind);
  skv_view ck = skv_view_of("calib_k", calib_k, calib_k_nbytes, calib_k_kind);
  skv_view cv = skv_view_of("calib_v", calib_v, calib_v_nbytes, calib_v_kind);
  skv_view cq = skv_view_of("calib_q", calib_q, calib_q_nbytes, calib_q_kind);
  starkv_layer_data data = starkv_layer_data_default();
  int64_t kv_width, q_width, rows;
  int32_t dt = SKV_DTYPE_AUTO, weight_dt = SKV_DTYPE_AUTO;
  const skv_view* first_weight = NULL;
  if (!(builder = skv_use(builder, SKV_HANDLE_BUILDER))) return;
  kv_width = (int64_t)builder->n_kv_heads * builder->head_dim;
  q_width = (int64_t)builder->n_heads * builder->head_dim;

  /* weights: one dtype for all three */
  {
    const skv_view* weights[3] = {&wk, &wv, &wq};
    const void** slots[3] = {&data.w_k, &data.w_v, &data.w_q};
    const int64_t widths[3] = {kv_width, kv_width, q_width};
    const char* shapes[3] = {"[n_kv_heads*head_dim, hidden_dim]",
                             "[n_kv_heads*head_dim, hidden_dim]", "[n_heads*head_dim, hidden_dim]"};
    int i;
    for (i = 0; i < 3; ++i) {
      if (!skv_given(weights[i])) continue;
      if (builder->hidden_dim <= 0) {
        skv_fail(STARKV_ERR_INVALID_ARGUMENT,
                 "%s given, but the profile params say hidden_dim = %d: set hidden_dim to use "
                 "weights",
                 weights[i]->what, (int)builder->hidden_dim);
        return;
      }
      if (!skv_builder_tensor(weights[i], weight_dtype, &dt, widths[i], builder->hidden_dim,
                              shapes[i])) {
        return;
      }
      if (first_weight && !skv_same_dtype(first_weight, weight_dt, weights[i], dt)) return;
      first_weight = weights[i];
      weight_dt = dt;
      *slots[i] = weights[i]->data;
    }
  }
  data.weight_dtype = (starkv_dtype)(weight_dt == SKV_DTYPE_AUTO ? STARKV_DTYPE_F32 : weight_dt);
  data.weight_layout = (starkv_weight_layout)weight_layout;

  /* calibration: hidden states [n, d]; keys/values [m, G, D] and queries [m, H, D] share m */
  if (skv_given(&ch)) {
    if (!skv_rows(&ch, calib_dtype, &dt, builder->hidden_dim, &rows)) return;
    data.calib_hidden = ch.data;
    data.n_calib_hidden = rows;
    data.calib_hidden_dtype = (starkv_dtype)dt;
  }
  {
    const skv_view* calib[3] = {&ck, &cv, &cq};
    const void** slots[3] = {&data.calib_k, &data.calib_v, &data.calib_q};
    const int64_t widths[3] = {kv_width, kv_width, q_width};
    const skv_view* first = NULL;
    int32_t first_dt = STARKV_DTYPE_F32;
    int64_t first_rows = 0;
    int i;
    for (i = 0; i < 3; ++i) {
      if (!skv_given(calib[i])) continue;
      if (!skv_rows(calib[i], calib_dtype, &dt, widths[i], &rows)) return;
      if (first) {
        if (!skv_same_dtype(first, first_dt, calib[i], dt)) return;
        if (rows != first_rows) {
          skv_fail(STARKV_ERR_SIZE_MISMATCH, "%s has %lld tokens, %s has %lld", calib[i]->what,
                   (long long)rows, first->what, (long long)first_rows);
          return;
        }
      } else {
        first = calib[i];
        first_dt = dt;
        first_rows = rows;
      }
      *slots[i] = calib[i]->data;
    }
    data.n_calib_kv = first_rows;
    data.calib_kv_dtype = (starkv_dtype)first_dt;
  }
  skv_ok(starkv_profile_builder_add_layer((starkv_profile_builder*)builder->raw, layer, &data));
}

/* One tensor's factors: ranks (G entries head-wise, 1 joint), down and up [in_dim x sum(ranks)]. */
static int skv_factors(skv_handle* b, const char* name, int32_t decomposition,
                       const skv_view* ranks, const skv_view* down, const skv_view* up,
                       int64_t* n_ranks) {
  int64_t groups, in_dim, total = 0, expected, i;
  char shape[96];
  if (decomposition != STARKV_DECOMP_HEADWISE && decomposition != STARKV_DECOMP_JOINT) {
    return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s_decomposition: unknown value %d", name,
                    (int)decomposition);
  }
  groups = decomposition == STARKV_DECOMP_HEADWISE ? b->n_kv_heads : 1;
  in_dim =
      decomposition == STARKV_DECOMP_HEADWISE ? b->head_dim : (int64_t)b->n_kv_heads * b->head_dim;
  if (!skv_indices(ranks, n_ranks)) return 0;
  if (*n_ranks != groups) {
    return skv_fail(STARKV_ERR_SIZE_MISMATCH, "%s: %lld ranks for %lld %s groups", ranks->what,
                    (long long)*n_ranks, (long long)groups,
                    decomposition == STARKV_DECOMP_HEADWISE ? "head-wise" : "joint");
  }
  for (i = 0; i < groups; ++i) {
    const int32_t r = ((const int32_t*)ranks->data)[i];
    if (r < 0) {
      return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "%s[%lld] = %d is negative", ranks->what,
                      (long long)i, (int)r);
    }
    total += r;
  }
  expected = in_dim * total;
  snprintf(shape, sizeof shape, "in_dim %lld x total rank %lld", (long long)in_dim,
           (long long)total);
  {
    int32_t dt;
    if (!skv_require(down) || !skv_check_space(down, 0) ||
        !skv_resolve_dtype(down, SKV_DTYPE_AUTO, 1, &dt) ||
        !skv_expect(down, dt, expected, shape)) {
      return 0;
    }
    if (skv_given(up) &&
        (!skv_check_space(up, 0) || !skv_resolve_dtype(up, SKV_DTYPE_AUTO, 1, &dt) ||
         !skv_expect(up, dt, expected, shape))) {
      return 0;
    }
  }
  return 1;
}

void skv_builder_set_layer_factors(
    skv_handle* builder, int32_t layer, int32_t key_decomposition, int32_t value_decomposition,
    skv_in key_ranks, int64_t key_ranks_nbytes, int32_t key_ranks_kind, skv_in key_down,
    int64_t key_down_nbytes, int32_t key_down_kind, skv_in key_up, int64_t key_up_nbytes,
    int32_t key_up_kind, skv_in value_ranks, int64_t value_ranks_nbytes, int32_t value_ranks_kind,
    skv_in value_down, int64_t value_down_nbytes, int32_t value_down_kind, skv_in value_up,
    int64_t value_up_nbytes, int32_t value_up_kind) {
  skv_view kr = skv_view_of("key_ranks", key_ranks, key_ranks_nbytes, key_ranks_kind);
  skv_view kd = skv_view_of("key_down", key_down, key_down_nbytes, key_down_kind);
  skv_view ku = skv_view_of("key_up", key_up, key_up_nbytes, key_up_kind);
  skv_view vr = skv_view_of("value_ranks", value_ranks, value_ranks_nbytes, value_ranks_kind);
  skv_view vd = skv_view_of("value_down", value_down, value_down_nbytes, value_down_kind);
  skv_view vu = skv_view_of("value_up", value_up, value_up_nbytes, value_up_kind);
  starkv_layer_factors f = starkv_layer_factors_default();
  int64_t n;
  if (!(builder = skv_use(builder, SKV_HANDLE_BUILDER))) return;
  if (!skv_factors(builder, "key", key_decomposition, &kr, &kd, &ku, &n) ||
      !skv_factors(builder, "value", value_decomposition, &vr, &vd, &vu, &n)) {
    return;
  }
  f.key_decomposition = (starkv_decomposition)key_decomposition;
  f.value_decomposition = (starkv_decomposition)value_decomposition;
  f.key_ranks = (const int32_t*)kr.data;
  f.key_down = (const float*)kd.data;
  f.key_up = skv_given(&ku) ? (const float*)ku.data : NULL;
  f.value_ranks = (const int32_t*)vr.data;
  f.value_down = (const float*)vd.data;
  f.value_up = skv_given(&vu) ? (const float*)vu.data : NULL;
  skv_ok(
      starkv_profile_builder_set_layer_factors((starkv_profile_builder*)builder->raw, layer, &f));
}

/* ================================================================================================
 * Profile
 * ============================================================================================== */

/* Wraps a new profile: caches its geometry and the latent width of every layer. */
static skv_handle* skv_profile_wrap(starkv_profile* raw) {
  starkv_profile_info info = starkv_profile_info_default();
  skv_handle* h;
  int32_t layer;
  if (!skv_ok(starkv_profile_get_info(raw, &info))) {
    starkv_profile_destroy(raw);
    return NULL;
  }
  h = skv_handle_new(SKV_HANDLE_PROFILE, raw);
  if (h == NULL) {
    starkv_profile_destroy(raw);
    return NULL;
  }
  h->n_layers = info.n_layers;
  h->n_heads = info.n_heads;
  h->n_kv_heads = info.n_kv_heads;
  h->head_dim = info.head_dim;
  h->latent_width =
      (int32_t*)calloc(info.n_layers > 0 ? (size_t)info.n_layers : 1, sizeof(int32_t));
  if (h->latent_width == NULL) {
    skv_unref(h);
    skv_fail(STARKV_ERR_OUT_OF_MEMORY, "out of host memory for a binding handle");
    return NULL;
  }
  for (layer = 0; layer < info.n_layers; ++layer) {
    if (!skv_ok(starkv_profile_latent_width(raw, layer, &h->latent_width[layer]))) {
      skv_unref(h);
      return NULL;
    }
  }
  return h;
}

skv_handle* skv_builder_finish(skv_handle* builder) {
  starkv_profile* raw = NULL;
  if (!(builder = skv_use(builder, SKV_HANDLE_BUILDER))) return NULL;
  if (!skv_ok(starkv_profile_builder_finish((starkv_profile_builder*)builder->raw, &raw))) {
    return NULL;
  }
  return skv_profile_wrap(raw);
}

skv_handle* skv_profile_load(const char* path) {
  starkv_profile* raw = NULL;
  if (path == NULL) {
    skv_fail(STARKV_ERR_INVALID_ARGUMENT, "path is required");
    return NULL;
  }
  if (!skv_ok(starkv_profile_load(path, &raw))) return NULL;
  return skv_profile_wrap(raw);
}

skv_handle* skv_profile_load_from_buffer(skv_in data, int64_t data_nbytes, int32_t data_kind) {
  skv_view v = skv_view_of("data", data, data_nbytes, data_kind);
  starkv_profile* raw = NULL;
  static const char empty = 0;
  if (!skv_bytes(&v)) return NULL;
  if (!skv_ok(starkv_profile_load_from_buffer(v.data ? v.data : &empty, (size_t)v.nbytes, &raw))) {
    return NULL;
  }
  return skv_profile_wrap(raw);
}

void skv_profile_save(skv_handle* profile, const char* path) {
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE))) return;
  if (path == NULL) {
    skv_fail(STARKV_ERR_INVALID_ARGUMENT, "path is required");
    return;
  }
  skv_ok(starkv_profile_save((const starkv_profile*)profile->raw, path));
}

int64_t skv_profile_save_size(skv_handle* profile) {
  size_t size = 0;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE))) return -1;
  if (!skv_ok(starkv_profile_save_to_buffer((const starkv_profile*)profile->raw, NULL, 0, &size))) {
    return -1;
  }
  return (int64_t)size;
}

int64_t skv_profile_save_to_buffer(skv_handle* profile, skv_out out, int64_t out_nbytes,
                                   int32_t out_kind) {
  skv_view v = skv_view_of("out", out, out_nbytes, out_kind);
  size_t size = 0;
  char scratch;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE)) || !skv_bytes(&v)) return -1;
  if (!skv_ok(starkv_profile_save_to_buffer((const starkv_profile*)profile->raw,
                                            v.data ? (void*)v.data : &scratch, (size_t)v.nbytes,
                                            &size))) {
    return -1;
  }
  return (int64_t)size;
}

starkv_profile_info skv_profile_info(skv_handle* profile) {
  starkv_profile_info info = starkv_profile_info_default();
  if ((profile = skv_use(profile, SKV_HANDLE_PROFILE))) {
    skv_ok(starkv_profile_get_info((const starkv_profile*)profile->raw, &info));
  }
  return info;
}

starkv_layer_info skv_profile_layer_info(skv_handle* profile, int32_t layer) {
  starkv_layer_info info = starkv_layer_info_default();
  if ((profile = skv_use(profile, SKV_HANDLE_PROFILE))) {
    skv_ok(starkv_profile_get_layer_info((const starkv_profile*)profile->raw, layer, &info));
  }
  return info;
}

static int skv_tensor_kind_ok(int32_t kind) {
  if (kind == STARKV_KEYS || kind == STARKV_VALUES) return 1;
  return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "kind must be KEYS or VALUES, got %d", (int)kind);
}

int32_t skv_profile_group_count(skv_handle* profile, int32_t layer, int32_t kind) {
  int32_t count = 0;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE)) || !skv_tensor_kind_ok(kind)) return -1;
  if (!skv_ok(starkv_profile_get_ranks((const starkv_profile*)profile->raw, layer,
                                       (starkv_tensor_kind)kind, NULL, 0, &count))) {
    return -1;
  }
  return count;
}

int32_t skv_profile_get_ranks(skv_handle* profile, int32_t layer, int32_t kind, skv_out out,
                              int64_t out_nbytes, int32_t out_kind) {
  skv_view v = skv_view_of("ranks", out, out_nbytes, out_kind);
  int32_t count = 0;
  int64_t capacity;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE)) || !skv_tensor_kind_ok(kind) ||
      !skv_indices(&v, &capacity)) {
    return -1;
  }
  if (!skv_ok(starkv_profile_get_ranks((const starkv_profile*)profile->raw, layer,
                                       (starkv_tensor_kind)kind, NULL, 0, &count))) {
    return -1;
  }
  if (capacity < count) {
    skv_fail(STARKV_ERR_SIZE_MISMATCH, "ranks: %lld entries for %d groups", (long long)capacity,
             (int)count);
    return -1;
  }
  if (count > 0 && !skv_ok(starkv_profile_get_ranks((const starkv_profile*)profile->raw, layer,
                                                    (starkv_tensor_kind)kind, (int32_t*)out,
                                                    (int32_t)capacity, &count))) {
    return -1;
  }
  return count;
}

static int skv_projection_ok(int32_t kind, int32_t which) {
  if (!skv_tensor_kind_ok(kind)) return 0;
  if (which == STARKV_DOWN || which == STARKV_UP) return 1;
  return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "which must be DOWN or UP, got %d", (int)which);
}

int64_t skv_profile_projection_size(skv_handle* profile, int32_t layer, int32_t kind, int32_t group,
                                    int32_t which) {
  size_t count = 0;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE)) || !skv_projection_ok(kind, which)) {
    return -1;
  }
  if (!skv_ok(starkv_profile_get_projection((const starkv_profile*)profile->raw, layer,
                                            (starkv_tensor_kind)kind, group,
                                            (starkv_projection)which, NULL, 0, &count))) {
    return -1;
  }
  return (int64_t)count;
}

int64_t skv_profile_get_projection(skv_handle* profile, int32_t layer, int32_t kind, int32_t group,
                                   int32_t which, skv_out out, int64_t out_nbytes,
                                   int32_t out_kind) {
  skv_view v = skv_view_of("out", out, out_nbytes, out_kind);
  int64_t count = skv_profile_projection_size(profile, layer, kind, group, which);
  int32_t dt;
  size_t written = 0;
  if (count < 0) return -1;
  if (!skv_require(&v) || !skv_check_space(&v, 0) ||
      !skv_resolve_dtype(&v, SKV_DTYPE_AUTO, 1, &dt) ||
      !skv_expect(&v, dt, count, "the projection's size")) {
    return -1;
  }
  if (count > 0 && !skv_ok(starkv_profile_get_projection(
                       (const starkv_profile*)profile->raw, layer, (starkv_tensor_kind)kind, group,
                       (starkv_projection)which, (float*)out, (size_t)count, &written))) {
    return -1;
  }
  return (int64_t)written;
}

int32_t skv_profile_latent_width(skv_handle* profile, int32_t layer) {
  int32_t width = 0;
  if (!(profile = skv_use(profile, SKV_HANDLE_PROFILE))) return -1;
  if (!skv_ok(starkv_profile_latent_width((const starkv_profile*)profile->raw, layer, &width))) {
    return -1;
  }
  return width;
}

/* ================================================================================================
 * Pool and sequences
 * ============================================================================================== */

skv_handle* skv_pool_create(skv_handle* ctx, skv_handle* profile,
                            const starkv_pool_params* params) {
  starkv_cache_pool* raw = NULL;
  skv_handle* h;
  if (!(ctx = skv_use(ctx, SKV_HANDLE_CONTEXT)) ||
      !(profile = skv_use(profile, SKV_HANDLE_PROFILE))) {
    return NULL;
  }
  if (!skv_ok(starkv_cache_pool_create((starkv_context*)ctx->raw, (starkv_profile*)profile->raw,
                                       params, &raw))) {
    return NULL;
  }
  h = skv_handle_new(SKV_HANDLE_POOL, raw);
  if (h == NULL) {
    starkv_cache_pool_destroy(raw);
    return NULL;
  }
  skv_ref(profile);
  h->parent = profile;
  skv_join(ctx, h);
  return h;
}

starkv_pool_usage skv_pool_usage(skv_handle* pool) {
  starkv_pool_usage usage = starkv_pool_usage_default();
  if ((pool = skv_use(pool, SKV_HANDLE_POOL))) {
    skv_ok(starkv_cache_pool_get_usage((const starkv_cache_pool*)pool->raw, &usage));
  }
  return usage;
}

int32_t skv_seq_create(skv_handle* pool) {
  int32_t seq = -1;
  if ((pool = skv_use(pool, SKV_HANDLE_POOL))) {
    skv_ok(starkv_seq_create((starkv_cache_pool*)pool->raw, &seq));
  }
  return seq;
}

int32_t skv_seq_fork(skv_handle* pool, int32_t parent) {
  int32_t seq = -1;
  if ((pool = skv_use(pool, SKV_HANDLE_POOL))) {
    skv_ok(starkv_seq_fork((starkv_cache_pool*)pool->raw, parent, &seq));
  }
  return seq;
}

void skv_seq_release(skv_handle* pool, int32_t seq) {
  if ((pool = skv_use(pool, SKV_HANDLE_POOL))) {
    skv_ok(starkv_seq_release((starkv_cache_pool*)pool->raw, seq));
  }
}

int32_t skv_seq_length(skv_handle* pool, int32_t seq) {
  int32_t length = -1;
  if ((pool = skv_use(pool, SKV_HANDLE_POOL))) {
    skv_ok(starkv_seq_length((const starkv_cache_pool*)pool->raw, seq, &length));
  }
  return length;
}

int64_t skv_seq_export_size(skv_handle* pool, int32_t seq) {
  size_t size = 0;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL))) return -1;
  if (!skv_ok(starkv_seq_export((starkv_cache_pool*)pool->raw, seq, NULL, 0, &size))) return -1;
  return (int64_t)size;
}

int64_t skv_seq_export(skv_handle* pool, int32_t seq, skv_out out, int64_t out_nbytes,
                       int32_t out_kind) {
  skv_view v = skv_view_of("out", out, out_nbytes, out_kind);
  size_t size = 0;
  char scratch;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL)) || !skv_bytes(&v)) return -1;
  if (!skv_ok(starkv_seq_export((starkv_cache_pool*)pool->raw, seq,
                                v.data ? (void*)v.data : &scratch, (size_t)v.nbytes, &size))) {
    return -1;
  }
  return (int64_t)size;
}

int32_t skv_seq_import(skv_handle* pool, skv_in data, int64_t data_nbytes, int32_t data_kind) {
  skv_view v = skv_view_of("data", data, data_nbytes, data_kind);
  int32_t seq = -1;
  static const char empty = 0;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL)) || !skv_bytes(&v)) return -1;
  skv_ok(starkv_seq_import((starkv_cache_pool*)pool->raw, v.data ? v.data : &empty,
                           (size_t)v.nbytes, &seq));
  return seq;
}

/* ================================================================================================
 * Append and attend
 * ============================================================================================== */

static skv_handle* skv_pool_profile(skv_handle* pool) { return pool->parent; }

static int skv_on_device(skv_handle* pool) { return pool->ctx->backend == STARKV_BACKEND_CUDA; }

static int skv_layer_ok(skv_handle* profile, int32_t layer) {
  if (layer >= 0 && layer < profile->n_layers) return 1;
  return skv_fail(STARKV_ERR_INVALID_ARGUMENT, "layer %d is out of range [0, %d)", (int)layer,
                  (int)profile->n_layers);
}

/* A floating-point tensor of the pool's memory space holding rows x width elements. */
static int skv_pool_tensor(skv_handle* pool, const skv_view* v, int32_t requested, int32_t* dtype,
                           int64_t rows, int64_t width, const char* shape) {
  int64_t expected;
  if (!skv_require(v) || !skv_check_space(v, skv_on_device(pool)) ||
      !skv_resolve_dtype(v, requested, 0, dtype) || !skv_mul(rows, width, &expected)) {
    return 0;
  }
  return skv_expect(v, *dtype, expected, shape);
}

void skv_append(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                int32_t seq_ids_kind, skv_in positions, int64_t positions_nbytes,
                int32_t positions_kind, skv_in keys, int64_t keys_nbytes, int32_t keys_kind,
                skv_in values, int64_t values_nbytes, int32_t values_kind, int32_t dtype) {
  skv_view ids = skv_view_of("seq_ids", seq_ids, seq_ids_nbytes, seq_ids_kind);
  skv_view pos = skv_view_of("positions", positions, positions_nbytes, positions_kind);
  skv_view k = skv_view_of("keys", keys, keys_nbytes, keys_kind);
  skv_view v = skv_view_of("values", values, values_nbytes, values_kind);
  skv_handle* profile;
  int64_t n;
  int32_t dk, dv;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL))) return;
  profile = skv_pool_profile(pool);
  if (!skv_layer_ok(profile, layer) || !skv_indices(&ids, &n) || !skv_require(&pos) ||
      !skv_indices_like(&pos, n, "seq_ids") ||
      !skv_pool_tensor(pool, &k, dtype, &dk, n, (int64_t)profile->n_kv_heads * profile->head_dim,
                       "[n_tokens, n_kv_heads, head_dim]") ||
      !skv_pool_tensor(pool, &v, dtype, &dv, n, (int64_t)profile->n_kv_heads * profile->head_dim,
                       "[n_tokens, n_kv_heads, head_dim]") ||
      !skv_same_dtype(&k, dk, &v, dv)) {
    return;
  }
  skv_ok(starkv_append((starkv_cache_pool*)pool->raw, layer, (int32_t)n, (const int32_t*)ids.data,
                       (const int32_t*)pos.data, keys, values, (starkv_dtype)dk));
}

void skv_append_latents(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                        int32_t seq_ids_kind, skv_in positions, int64_t positions_nbytes,
                        int32_t positions_kind, skv_in latents, int64_t latents_nbytes,
                        int32_t latents_kind, int32_t dtype) {
  skv_view ids = skv_view_of("seq_ids", seq_ids, seq_ids_nbytes, seq_ids_kind);
  skv_view pos = skv_view_of("positions", positions, positions_nbytes, positions_kind);
  skv_view l = skv_view_of("latents", latents, latents_nbytes, latents_kind);
  skv_handle* profile;
  int64_t n;
  int32_t dl;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL))) return;
  profile = skv_pool_profile(pool);
  if (!skv_layer_ok(profile, layer) || !skv_indices(&ids, &n) || !skv_require(&pos) ||
      !skv_indices_like(&pos, n, "seq_ids") ||
      !skv_pool_tensor(pool, &l, dtype, &dl, n, profile->latent_width[layer],
                       "[n_tokens, latent_width(layer)]")) {
    return;
  }
  skv_ok(starkv_append_latents((starkv_cache_pool*)pool->raw, layer, (int32_t)n,
                               (const int32_t*)ids.data, (const int32_t*)pos.data, latents,
                               (starkv_dtype)dl));
}

/* queries and out [n, H, D] in the pool's memory space. */
static int skv_attention_buffers(skv_handle* pool, int64_t n, const skv_view* q,
                                 int32_t query_dtype, int32_t* dq, const skv_view* o,
                                 int32_t out_dtype, int32_t* dout) {
  skv_handle* profile = skv_pool_profile(pool);
  const int64_t width = (int64_t)profile->n_heads * profile->head_dim;
  return skv_pool_tensor(pool, q, query_dtype, dq, n, width, "[n_queries, n_heads, head_dim]") &&
         skv_pool_tensor(pool, o, out_dtype, dout, n, width, "[n_queries, n_heads, head_dim]");
}

void skv_attend(skv_handle* pool, int32_t layer, skv_in seq_ids, int64_t seq_ids_nbytes,
                int32_t seq_ids_kind, skv_in kv_lengths, int64_t kv_lengths_nbytes,
                int32_t kv_lengths_kind, skv_in queries, int64_t queries_nbytes,
                int32_t queries_kind, int32_t query_dtype, skv_out out, int64_t out_nbytes,
                int32_t out_kind, int32_t out_dtype) {
  skv_view ids = skv_view_of("seq_ids", seq_ids, seq_ids_nbytes, seq_ids_kind);
  skv_view len = skv_view_of("kv_lengths", kv_lengths, kv_lengths_nbytes, kv_lengths_kind);
  skv_view q = skv_view_of("queries", queries, queries_nbytes, queries_kind);
  skv_view o = skv_view_of("out", out, out_nbytes, out_kind);
  int64_t n;
  int32_t dq, dout;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL))) return;
  if (!skv_layer_ok(skv_pool_profile(pool), layer) || !skv_indices(&ids, &n) ||
      !skv_indices_like(&len, n, "seq_ids") ||
      !skv_attention_buffers(pool, n, &q, query_dtype, &dq, &o, out_dtype, &dout)) {
    return;
  }
  skv_ok(starkv_attend((starkv_cache_pool*)pool->raw, layer, (int32_t)n, (const int32_t*)ids.data,
                       skv_given(&len) ? (const int32_t*)len.data : NULL, queries, (starkv_dtype)dq,
                       out, (starkv_dtype)dout));
}

skv_handle* skv_step_create(skv_handle* pool) {
  starkv_decode_step* raw = NULL;
  skv_handle* h;
  if (!(pool = skv_use(pool, SKV_HANDLE_POOL))) return NULL;
  if (!skv_ok(starkv_decode_step_create((starkv_cache_pool*)pool->raw, &raw))) return NULL;
  h = skv_handle_new(SKV_HANDLE_STEP, raw);
  if (h == NULL) {
    starkv_decode_step_destroy(raw);
    return NULL;
  }
  skv_ref(pool);
  h->parent = pool;
  skv_join(pool->ctx, h);
  return h;
}

void skv_step_plan(skv_handle* step, skv_in seq_ids, int64_t seq_ids_nbytes, int32_t seq_ids_kind,
                   skv_in kv_lengths, int64_t kv_lengths_nbytes, int32_t kv_lengths_kind) {
  skv_view ids = skv_view_of("seq_ids", seq_ids, seq_ids_nbytes, seq_ids_kind);
  skv_view len = skv_view_of("kv_lengths", kv_lengths, kv_lengths_nbytes, kv_lengths_kind);
  int64_t n;
  if (!(step = skv_use(step, SKV_HANDLE_STEP))) return;
  if (!skv_indices(&ids, &n) || !skv_indices_like(&len, n, "seq_ids")) return;
  if (!skv_ok(starkv_decode_step_plan((starkv_decode_step*)step->raw, (int32_t)n,
                                      (const int32_t*)ids.data,
                                      skv_given(&len) ? (const int32_t*)len.data : NULL))) {
    return;
  }
  step->n_planned = (int32_t)n;
}

int32_t skv_step_planned(skv_handle* step) {
  if (!(step = skv_use(step, SKV_HANDLE_STEP))) return -1;
  return step->n_planned;
}

void skv_step_run(skv_handle* step, int32_t layer, skv_in queries, int64_t queries_nbytes,
                  int32_t queries_kind, int32_t query_dtype, skv_out out, int64_t out_nbytes,
                  int32_t out_kind, int32_t out_dtype) {
  skv_view q = skv_view_of("queries", queries, queries_nbytes, queries_kind);
  skv_view o = skv_view_of("out", out, out_nbytes, out_kind);
  int32_t dq, dout;
  if (!(step = skv_use(step, SKV_HANDLE_STEP))) return;
  if (step->n_planned < 0) {
    skv_fail(STARKV_ERR_INVALID_STATE, "run before plan: plan the decode step first");
    return;
  }
  if (!skv_layer_ok(skv_pool_profile(step->parent), layer) ||
      !skv_attention_buffers(step->parent, step->n_planned, &q, query_dtype, &dq, &o, out_dtype,
                             &dout)) {
    return;
  }
  skv_ok(starkv_decode_step_run((starkv_decode_step*)step->raw, layer, queries, (starkv_dtype)dq,
                                out, (starkv_dtype)dout));
}
