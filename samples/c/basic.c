/* The whole starkv round trip from C: build a profile from (random) projection weights, create a
 * pool, append a sequence's keys and values, attend, snapshot the sequence and restore it.
 * Build against an installed starkv:  cc basic.c $(pkg-config --cflags --libs starkv) -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <starkv/starkv.h>

enum { LAYERS = 2, HEADS = 8, KV_HEADS = 2, HEAD_DIM = 64, HIDDEN = 256, TOKENS = 100 };

#define CHECK(call)                                                               \
  do {                                                                            \
    starkv_status s_ = (call);                                                    \
    if (s_ != STARKV_OK) {                                                        \
      fprintf(stderr, "%s failed: %s (%s)\n", #call, starkv_status_string(s_),    \
              starkv_last_error());                                               \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

/* A reproducible pseudo-random number in [-1, 1). */
static float next_random(unsigned* state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float* x, size_t n, unsigned seed, float scale) {
  size_t i;
  for (i = 0; i < n; ++i) x[i] = scale * next_random(&seed);
}

int main(void) {
  const size_t kv_width = KV_HEADS * HEAD_DIM, q_width = HEADS * HEAD_DIM;
  float* w_k = malloc(sizeof(float) * kv_width * HIDDEN);
  float* w_v = malloc(sizeof(float) * kv_width * HIDDEN);
  float* keys = malloc(sizeof(float) * TOKENS * kv_width);
  float* values = malloc(sizeof(float) * TOKENS * kv_width);
  float query[HEADS * HEAD_DIM], out[HEADS * HEAD_DIM], out_restored[HEADS * HEAD_DIM];
  int32_t seq_ids[TOKENS], positions[TOKENS];
  starkv_context_params cp = starkv_context_params_default();
  starkv_profile_params pp = starkv_profile_params_default();
  starkv_pool_params pool_params = starkv_pool_params_default();
  starkv_profile_info info = starkv_profile_info_default();
  starkv_context* ctx;
  starkv_profile_builder* builder;
  starkv_profile* profile;
  starkv_cache_pool* pool;
  int32_t seq, restored, layer, t, kv_length = TOKENS;
  size_t snapshot_size;
  void* snapshot;
  double diff = 0.0, norm = 0.0;
  size_t i;

  CHECK(starkv_context_create(&cp, &ctx));

  /* 1. A profile: 75% low-rank compression, 4-bit outliers and 3-bit inliers. */
  pp.n_layers = LAYERS;
  pp.n_heads = HEADS;
  pp.n_kv_heads = KV_HEADS;
  pp.head_dim = HEAD_DIM;
  pp.hidden_dim = HIDDEN;
  pp.target_compression = 0.75f;
  pp.inlier_bits = 3;
  pp.outlier_bits = 4;
  CHECK(starkv_profile_builder_create(ctx, &pp, &builder));
  for (layer = 0; layer < LAYERS; ++layer) {
    starkv_layer_data data = starkv_layer_data_default();
    fill(w_k, kv_width * HIDDEN, 11u + layer, 0.05f);
    fill(w_v, kv_width * HIDDEN, 23u + layer, 0.05f);
    data.w_k = w_k; /* [G*D, d]: the layout of HF/Llama checkpoints */
    data.w_v = w_v;
    data.weight_dtype = STARKV_DTYPE_F32;
    CHECK(starkv_profile_builder_add_layer(builder, layer, &data));
  }
  CHECK(starkv_profile_builder_finish(builder, &profile));
  starkv_profile_builder_destroy(builder);
  CHECK(starkv_profile_get_info(profile, &info));
  printf("profile: %lld bytes/token vs %lld dense fp16: compression %.1f%% (%.1fx)\n",
         (long long)info.bytes_per_token, (long long)info.dense_bytes_per_token,
         100.0 * info.compression, info.compression_factor);

  /* 2. A pool and one sequence of TOKENS tokens in every layer. */
  pool_params.capacity_tokens = 4096;
  CHECK(starkv_cache_pool_create(ctx, profile, &pool_params, &pool));
  starkv_profile_destroy(profile); /* the pool keeps its own reference */
  CHECK(starkv_seq_create(pool, &seq));
  for (t = 0; t < TOKENS; ++t) {
    seq_ids[t] = seq;
    positions[t] = t;
  }
  for (layer = 0; layer < LAYERS; ++layer) {
    fill(keys, TOKENS * kv_width, 101u + layer, 1.0f);
    fill(values, TOKENS * kv_width, 202u + layer, 1.0f);
    CHECK(starkv_append(pool, layer, TOKENS, seq_ids, positions, keys, values, STARKV_DTYPE_F32));
  }

  /* 3. Attend with a post-RoPE query in the last layer. */
  fill(query, q_width, 303u, 1.0f);
  CHECK(starkv_attend(pool, LAYERS - 1, 1, &seq, &kv_length, query, STARKV_DTYPE_F32, out,
                      STARKV_DTYPE_F32));

  /* 4. Snapshot the sequence, restore it as a new sequence, attend again: identical output. */
  CHECK(starkv_seq_export(pool, seq, NULL, 0, &snapshot_size));
  snapshot = malloc(snapshot_size);
  CHECK(starkv_seq_export(pool, seq, snapshot, snapshot_size, &snapshot_size));
  CHECK(starkv_seq_import(pool, snapshot, snapshot_size, &restored));
  CHECK(starkv_attend(pool, LAYERS - 1, 1, &restored, &kv_length, query, STARKV_DTYPE_F32,
                      out_restored, STARKV_DTYPE_F32));
  for (i = 0; i < q_width; ++i) {
    diff += fabs((double)out[i] - (double)out_restored[i]);
    norm += fabs((double)out[i]);
  }
  printf("attention output: out[0..3] = %.6f %.6f %.6f %.6f, mean |out| = %.6f\n", out[0], out[1],
         out[2], out[3], norm / (double)q_width);
  printf("snapshot: %zu bytes for %d tokens; restored output differs by %.3g\n", snapshot_size,
         TOKENS, diff);

  free(snapshot);
  starkv_cache_pool_destroy(pool);
  starkv_context_destroy(ctx);
  free(w_k);
  free(w_v);
  free(keys);
  free(values);
  return diff == 0.0 ? 0 : 1;
}
