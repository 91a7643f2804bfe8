/* starkv loaded at run time, the way an inference engine with an optional plugin uses it: dlopen
 * the shared library, fetch the function table with starkv_get_api, and call nothing else by
 * name. Only the header is needed at build time:
 *   cc -std=c99 dlopen_basic.c -I<prefix>/include -ldl && ./a.out <prefix>/lib/libstarkv.so.0 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <starkv/starkv.h>

enum { HEADS = 4, KV_HEADS = 2, HEAD_DIM = 32, HIDDEN = 128, TOKENS = 40 };

static const starkv_api* api;

#define CHECK(call)                                                                        \
  do {                                                                                     \
    starkv_status s_ = (call);                                                             \
    if (s_ != STARKV_OK) {                                                                 \
      fprintf(stderr, "%s failed: %s (%s)\n", #call, api->status_string(s_),               \
              api->last_error());                                                          \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

static void fill(float* x, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
}

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "libstarkv.so.0"; /* 0: the SOVERSION */
  starkv_get_api_fn get_api;
  void* library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  static float w_k[KV_HEADS * HEAD_DIM * HIDDEN], w_v[KV_HEADS * HEAD_DIM * HIDDEN];
  static float keys[TOKENS * KV_HEADS * HEAD_DIM], values[TOKENS * KV_HEADS * HEAD_DIM];
  float query[HEADS * HEAD_DIM], out[HEADS * HEAD_DIM], again[HEADS * HEAD_DIM];
  int32_t ids[TOKENS], positions[TOKENS], seq, restored, length = TOKENS, t;
  starkv_context* ctx;
  starkv_profile_builder* builder;
  starkv_profile* profile;
  starkv_cache_pool* pool;
  starkv_context_params cp;
  starkv_profile_params pp;
  starkv_pool_params pool_params;
  starkv_layer_data data;
  size_t size;
  void* snapshot;

  if (library == NULL) {
    fprintf(stderr, "dlopen(%s): %s\n", path, dlerror());
    return 1;
  }
  /* POSIX guarantees a dlsym result converts to a function pointer; memcpy says so in C99. */
  {
    void* symbol = dlsym(library, "starkv_get_api");
    if (symbol == NULL) {
      fprintf(stderr, "no starkv_get_api in %s\n", path);
      return 1;
    }
    memcpy(&get_api, &symbol, sizeof get_api);
  }
  api = get_api(STARKV_ABI_VERSION);
  if (api == NULL || api->struct_size < sizeof(starkv_api)) {
    fprintf(stderr, "%s does not serve ABI version %d\n", path, STARKV_ABI_VERSION);
    return 1;
  }
  printf("loaded %s: starkv %s, ABI %u\n", path, api->version_string(), api->abi_version);

  cp = api->context_params_default();
  CHECK(api->context_create(&cp, &ctx));
  pp = api->profile_params_default();
  pp.n_layers = 1;
  pp.n_heads = HEADS;
  pp.n_kv_heads = KV_HEADS;
  pp.head_dim = HEAD_DIM;
  pp.hidden_dim = HIDDEN;
  pp.target_compression = 0.5f;
  CHECK(api->profile_builder_create(ctx, &pp, &builder));
  fill(w_k, sizeof w_k / sizeof w_k[0], 1u);
  fill(w_v, sizeof w_v / sizeof w_v[0], 2u);
  data = api->layer_data_default();
  data.w_k = w_k;
  data.w_v = w_v;
  data.weight_dtype = STARKV_DTYPE_F32;
  CHECK(api->profile_builder_add_layer(builder, 0, &data));
  CHECK(api->profile_builder_finish(builder, &profile));
  api->profile_builder_destroy(builder);

  pool_params = api->pool_params_default();
  pool_params.capacity_tokens = 256;
  CHECK(api->cache_pool_create(ctx, profile, &pool_params, &pool));
  api->profile_destroy(profile);
  CHECK(api->seq_create(pool, &seq));
  for (t = 0; t < TOKENS; ++t) {
    ids[t] = seq;
    positions[t] = t;
  }
  fill(keys, sizeof keys / sizeof keys[0], 3u);
  fill(values, sizeof values / sizeof values[0], 4u);
  fill(query, sizeof query / sizeof query[0], 5u);
  CHECK(api->append(pool, 0, TOKENS, ids, positions, keys, values, STARKV_DTYPE_F32));
  CHECK(api->attend(pool, 0, 1, &seq, &length, query, STARKV_DTYPE_F32, out, STARKV_DTYPE_F32));

  CHECK(api->seq_export(pool, seq, NULL, 0, &size));
  snapshot = malloc(size);
  CHECK(api->seq_export(pool, seq, snapshot, size, &size));
  CHECK(api->seq_import(pool, snapshot, size, &restored));
  CHECK(api->attend(pool, 0, 1, &restored, &length, query, STARKV_DTYPE_F32, again,
                    STARKV_DTYPE_F32));
  printf("out[0..2] = %.6f %.6f %.6f; restored copy %s\n", out[0], out[1], out[2],
         memcmp(out, again, sizeof out) == 0 ? "identical" : "DIFFERS");

  /* A bad call through the table: a status and a message, no crash. */
  if (api->seq_length(pool, 12345, &length) != STARKV_ERR_UNKNOWN_SEQUENCE) return 1;
  printf("unknown sequence -> %s\n", api->last_error());

  free(snapshot);
  api->cache_pool_destroy(pool);
  api->context_destroy(ctx);
  dlclose(library);
  return memcmp(out, again, sizeof out) == 0 ? 0 : 1;
}
