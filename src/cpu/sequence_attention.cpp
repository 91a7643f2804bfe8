#include "cpu/sequence_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/fp16.h"
#include "core/quantizer.h"
#include "core/rope.h"
#include "cpu/latent_projection.h"
#include "cpu/worker_threads.h"

// The kernels are also built for AVX2 (8 lanes instead of SSE2's 4), picked at load time where
// the CPU has it. AVX2 without FMA: a clone multiplies and adds exactly as the baseline does, so
// results do not depend on which clone runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STARKV_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STARKV_VECTOR_CLONES
#endif

// The `omp simd` loops below each compute many independent outputs (no reduction inside a
// vector), so vectorizing them changes no result bit; they are marked because GCC's -O2 cost
// model leaves loops of unknown trip count scalar.

namespace starkv {
namespace {

// Tokens per chunk: only one chunk's keys and latents are live at a time, so temporary memory is
// bounded for any context length (an online softmax carries each row's state across chunks).
// Chunks start at multiples of this, whatever the batch, which keeps results batch-independent.
constexpr int32_t kChunkTokens = 256;
// Query rows computed together: each key / value latent loaded serves this many rows. Queries
// are sorted by kv_length, so a group of a causal prefill skips the chunks none of its rows
// reaches.
constexpr int32_t kRowGroup = 4;
// Eight floats (one AVX register, two SSE ones); elementwise arithmetic on it is the scalar
// arithmetic lane by lane.
typedef float Vec8 __attribute__((vector_size(32)));
static_assert(sizeof(Vec8) == 8 * sizeof(float), "Vec8 is eight floats");

// Score columns per tile: kRowGroup x kScoreTile sums fit in 8 AVX registers.
constexpr int32_t kScoreTile = 16;
// Value-latent channels per tile of the P x V sums, for the same reason.
constexpr int32_t kValueTile = 16;
static_assert(kRowGroup == 4 && kScoreTile == 16 && kValueTile == 16,
              "the register tiles below are written for 4 rows x 16 columns");

// kRowGroup rows x 16 columns of running sums in eight named vectors, so the compiler keeps them
// in registers. add(a, b) adds a[r] * b[0..16) to row r: per element the same multiply and add,
// in the same order, as the scalar loops that handle partial tiles.
struct Tile4x16 {
  Vec8 r00{}, r01{}, r10{}, r11{}, r20{}, r21{}, r30{}, r31{};

  void add(float a0, float a1, float a2, float a3, const float* b) {
    Vec8 b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + 8, sizeof b1);
    r00 += a0 * b0;
    r01 += a0 * b1;
    r10 += a1 * b0;
    r11 += a1 * b1;
    r20 += a2 * b0;
    r21 += a2 * b1;
    r30 += a3 * b0;
    r31 += a3 * b1;
  }
  void load(const float* row0, const float* row1, const float* row2, const float* row3) {
    copy_in(r00, r01, row0);
    copy_in(r10, r11, row1);
    copy_in(r20, r21, row2);
    copy_in(r30, r31, row3);
  }
  void store(float* row0, float* row1, float* row2, float* row3) const {
    copy_out(r00, r01, row0);
    copy_out(r10, r11, row1);
    copy_out(r20, r21, row2);
    copy_out(r30, r31, row3);
  }

 private:
  static void copy_in(Vec8& lo, Vec8& hi, const float* row) {
    std::memcpy(&lo, row, sizeof lo);
    std::memcpy(&hi, row + 8, sizeof hi);
  }
  static void copy_out(const Vec8& lo, const Vec8& hi, float* row) {
    std::memcpy(row, &lo, sizeof lo);
    std::memcpy(row + 8, &hi, sizeof hi);
  }
};

// The value group covering one KV head, and where its channels start within the layer's value
// latents.
struct HeadValueGroup {
  const FactorGroup* group = nullptr;
  int32_t channel_offset = 0;
  int32_t rank() const { return group != nullptr ? group->rank : 0; }
};

std::vector<HeadValueGroup> value_group_per_kv_head(const LayerProfile& lp, int32_t n_kv_heads,
                                                    int32_t head_dim) {
  std::vector<HeadValueGroup> per_head(static_cast<size_t>(n_kv_heads));
  int32_t offset = 0;
  for (const FactorGroup& g : lp.values) {
    for (int32_t h = g.in_offset / head_dim; h < (g.in_offset + g.in_dim) / head_dim; ++h) {
      per_head[static_cast<size_t>(h)] = {&g, offset};
    }
    offset += g.rank;
  }
  return per_head;
}

// Online-softmax state of the query rows of one KV head g: row i * qpk + k is sorted query i,
// query head g * qpk + k.
struct KvHeadState {
  std::vector<float> q;            // [rows x D]
  std::vector<float> running_max;  // [rows]
  std::vector<float> running_sum;  // [rows]
  std::vector<float> value_acc;    // [rows x value rank]: sum_t p_t * value latent_t
};

// s[r][j] = scale * sum_c q[r][c] * kt[c][j] (c ascending, as a plain dot product would) for
// n_rows <= kRowGroup rows. kt: the chunk's keys of one KV head, transposed ([D x ldkt]). A full
// tile of kRowGroup x kScoreTile sums stays in registers; the partial tiles take the general loop,
// which performs the same operations in the same order.
STARKV_VECTOR_CLONES
void score_rows(int32_t n_rows, const float* q, int32_t D, const float* kt, int32_t ldkt,
                int32_t cols, float scale, float* s, int32_t lds) {
  const size_t d = static_cast<size_t>(D);
  for (int32_t j0 = 0; j0 < cols; j0 += kScoreTile) {
    const int32_t jn = std::min(kScoreTile, cols - j0);
    float acc[kRowGroup][kScoreTile] = {};
    if (n_rows == kRowGroup && jn == kScoreTile) {
      Tile4x16 tile;
      for (int32_t c = 0; c < D; ++c) {
        const size_t cc = static_cast<size_t>(c);
        tile.add(q[cc], q[d + cc], q[2 * d + cc], q[3 * d + cc],
                 kt + cc * static_cast<size_t>(ldkt) + j0);
      }
      tile.store(acc[0], acc[1], acc[2], acc[3]);
    } else {
      for (int32_t c = 0; c < D; ++c) {
        const float* k = kt + static_cast<size_t>(c) * static_cast<size_t>(ldkt) + j0;
        for (int32_t r = 0; r < n_rows; ++r) {
          const float qc = q[static_cast<size_t>(r) * d + static_cast<size_t>(c)];
          float* a = acc[r];
#pragma omp simd
          for (int32_t j = 0; j < jn; ++j) a[j] += qc * k[j];
        }
      }
    }
    for (int32_t r = 0; r < n_rows; ++r) {
      float* dst = s + static_cast<size_t>(r) * static_cast<size_t>(lds) + j0;
      for (int32_t j = 0; j < jn; ++j) dst[j] = acc[r][j] * scale;
    }
  }
}

// Turns a row's raw scores (its first n of cols valid) into exp(s - max), and the rest into 0,
// folding them into the row's running max and sum and rescaling its accumulator. n <= 0: the
// row's context ended before this chunk; the whole row becomes 0 and its state is kept.
void softmax_row(int32_t n, int32_t cols, float* s, float& running_max, float& running_sum,
                 float* value_acc, int32_t rank) {
  std::fill(s + std::max(n, 0), s + cols, 0.0f);
  if (n <= 0) return;
  float chunk_max = -std::numeric_limits<float>::infinity();
  for (int32_t j = 0; j < n; ++j) chunk_max = std::max(chunk_max, s[j]);
  const float new_max = std::max(running_max, chunk_max);
  const float rescale = std::exp(running_max - new_max);  // 0 on the row's first chunk
  float sum = running_sum * rescale;
  for (int32_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - new_max);
    sum += s[j];
  }
  running_sum = sum;
  running_max = new_max;
  for (int32_t c = 0; c < rank; ++c) value_acc[c] *= rescale;
}

// acc[r] += sum_{j < n} p[r][j] * v[j] (j ascending) for n_rows <= kRowGroup rows; v: the
// chunk's value latents of one group (row stride ldv). A row's p is 0 past its own kv_length, and
// adding 0 * v leaves a sum unchanged bit for bit (a sum that starts at +0 never becomes -0), so
// rows of different lengths share the loop without changing any row's result.
STARKV_VECTOR_CLONES
void accumulate_values(int32_t n_rows, int32_t n, const float* p, int32_t ldp, const float* v,
                       int32_t ldv, int32_t rank, float* acc) {
  const size_t lp = static_cast<size_t>(ldp), la = static_cast<size_t>(rank);
  int32_t c0 = 0;
  if (n_rows == kRowGroup) {
    for (; c0 + kValueTile <= rank; c0 += kValueTile) {
      float* r0 = acc + c0;
      float* r1 = acc + la + c0;
      float* r2 = acc + 2 * la + c0;
      float* r3 = acc + 3 * la + c0;
      Tile4x16 tile;  // 4 rows x 16 channels
      tile.load(r0, r1, r2, r3);
      for (int32_t j = 0; j < n; ++j) {
        const size_t jj = static_cast<size_t>(j);
        tile.add(p[jj], p[lp + jj], p[2 * lp + jj], p[3 * lp + jj],
                 v + jj * static_cast<size_t>(ldv) + c0);
      }
      tile.store(r0, r1, r2, r3);
    }
    for (; c0 + 8 <= rank; c0 += 8) {  // a remaining half tile
      float* r0 = acc + c0;
      float* r1 = acc + la + c0;
      float* r2 = acc + 2 * la + c0;
      float* r3 = acc + 3 * la + c0;
      Vec8 a0, a1, a2, a3;
      std::memcpy(&a0, r0, sizeof a0);
      std::memcpy(&a1, r1, sizeof a1);
      std::memcpy(&a2, r2, sizeof a2);
      std::memcpy(&a3, r3, sizeof a3);
      for (int32_t j = 0; j < n; ++j) {
        const size_t jj = static_cast<size_t>(j);
        Vec8 v0;
        std::memcpy(&v0, v + jj * static_cast<size_t>(ldv) + c0, sizeof v0);
        a0 += p[jj] * v0;
        a1 += p[lp + jj] * v0;
        a2 += p[2 * lp + jj] * v0;
        a3 += p[3 * lp + jj] * v0;
      }
      std::memcpy(r0, &a0, sizeof a0);
      std::memcpy(r1, &a1, sizeof a1);
      std::memcpy(r2, &a2, sizeof a2);
      std::memcpy(r3, &a3, sizeof a3);
    }
  }
  // The channels no full tile covered: the same sums, one row at a time.
  for (int32_t j = 0; j < n; ++j) {
    const float* vj = v + static_cast<size_t>(j) * static_cast<size_t>(ldv);
    for (int32_t r = 0; r < n_rows; ++r) {
      const float pj = p[static_cast<size_t>(r) * lp + static_cast<size_t>(j)];
      float* a = acc + static_cast<size_t>(r) * la;
#pragma omp simd
      for (int32_t c = c0; c < rank; ++c) a[c] += pj * vj[c];
    }
  }
}

// o[d] = sum_c acc[c] * up[c][d] (c ascending) for d < D; up: rows of stride ldu.
STARKV_VECTOR_CLONES
void project_value(const float* acc, int32_t rank, const float* up, int32_t ldu, int32_t D,
                   float* o) {
  std::fill(o, o + D, 0.0f);
  for (int32_t c = 0; c < rank; ++c) {
    const float a = acc[c];
    const float* u = up + static_cast<size_t>(c) * static_cast<size_t>(ldu);
#pragma omp simd
    for (int32_t d = 0; d < D; ++d) o[d] += a * u[d];
  }
}

}  // namespace

void attend_sequence(const Profile& profile, int32_t layer, const LayerRows& rows,
                     const std::vector<AttendQuery>& queries, const std::vector<size_t>& members,
                     const void* q, starkv_dtype q_dtype, void* out, starkv_dtype out_dtype,
                     int32_t n_threads) {
  const LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
  const int32_t H = profile.shape.n_heads, D = profile.shape.head_dim;
  const int32_t G = profile.shape.n_kv_heads;
  const int32_t kv_width = profile.shape.kv_width();
  const int32_t qpk = profile.shape.queries_per_kv();
  const int32_t key_width = lp.key_rank_total();
  const int32_t latent_width = layout.latent_width;
  const int32_t pt = rows.page_tokens;
  const int workers = worker_threads(n_threads);
  const std::vector<HeadValueGroup> vgroups = value_group_per_kv_head(lp, G, D);
  std::vector<float> inv_freq(static_cast<size_t>(std::max(1, profile.rope.rotary_dim / 2)));
  rope_inverse_frequencies(profile.rope, D, inv_freq.data());

  // Sorted by kv_length (a prefill chunk already is), so a row group's last row reaches furthest.
  std::vector<size_t> order = members;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return queries[a].kv_length < queries[b].kv_length;
  });
  const int32_t M = static_cast<int32_t>(order.size());
  const AttendQuery& longest = queries[order.back()];
  const int32_t kv_max = longest.kv_length;
  const size_t n_rows = static_cast<size_t>(M) * static_cast<size_t>(qpk);
  std::vector<int32_t> row_length(n_rows);
  for (size_t r = 0; r < n_rows; ++r) {
    row_length[r] = queries[order[r / static_cast<size_t>(qpk)]].kv_length;
  }

  std::vector<KvHeadState> state(static_cast<size_t>(G));
  for (int32_t g = 0; g < G; ++g) {
    KvHeadState& st = state[static_cast<size_t>(g)];
    const size_t head_run = static_cast<size_t>(qpk) * static_cast<size_t>(D);
    st.q.resize(n_rows * static_cast<size_t>(D));
    for (int32_t i = 0; i < M; ++i) {
      // The qpk query heads of KV head g are adjacent in a query, so they load as one run.
      const size_t src = order[static_cast<size_t>(i)] * static_cast<size_t>(H) * D +
                         static_cast<size_t>(g) * head_run;
      float* dst = st.q.data() + static_cast<size_t>(i) * head_run;
      for (size_t c = 0; c < head_run; ++c) dst[c] = load_as_float(q, q_dtype, src + c);
    }
    st.running_max.assign(n_rows, -std::numeric_limits<float>::infinity());
    st.running_sum.assign(n_rows, 0.0f);
    st.value_acc.assign(n_rows * static_cast<size_t>(vgroups[static_cast<size_t>(g)].rank()),
                        0.0f);
  }

  const int32_t chunk = std::min(kChunkTokens, kv_max);  // buffer width; boundaries stay fixed
  std::vector<float> latents(static_cast<size_t>(chunk) * static_cast<size_t>(latent_width));
  std::vector<float> keys(static_cast<size_t>(chunk) * static_cast<size_t>(kv_width));
  std::vector<float> keys_t(static_cast<size_t>(kv_width) * static_cast<size_t>(chunk));
  const int32_t n_groups = static_cast<int32_t>((n_rows + kRowGroup - 1) / kRowGroup);
  for (int32_t t0 = 0; t0 < kv_max; t0 += kChunkTokens) {
    const int32_t n = std::min(kChunkTokens, kv_max - t0);
    // Decode the chunk's rows and rebuild their post-RoPE keys, each token once for all queries.
#pragma omp parallel for num_threads(workers) if (workers > 1) schedule(static)
    for (int32_t j = 0; j < n; ++j) {
      const int32_t t = t0 + j;
      const size_t row = static_cast<size_t>(longest.pages[t / pt]) * static_cast<size_t>(pt) +
                         static_cast<size_t>(t % pt);
      float* lat = latents.data() + static_cast<size_t>(j) * static_cast<size_t>(latent_width);
      float* key = keys.data() + static_cast<size_t>(j) * static_cast<size_t>(kv_width);
      decode_row(layout, rows.base + row * rows.row_bytes, lat);
      reconstruct_key(lp, kv_width, lat, key);
      for (int32_t g = 0; g < G; ++g) {
        apply_rope(profile.rope, D, t, inv_freq.data(), key + static_cast<size_t>(g) * D);
      }
    }
    // Channel-major keys, so a score row is a sum of contiguous key columns scaled by q[c].
    for (int32_t j = 0; j < n; ++j) {
      for (int32_t c = 0; c < kv_width; ++c) {
        keys_t[static_cast<size_t>(c) * static_cast<size_t>(n) + static_cast<size_t>(j)] =
            keys[static_cast<size_t>(j) * static_cast<size_t>(kv_width) + static_cast<size_t>(c)];
      }
    }

    // One parallel loop over (KV head, group of kRowGroup rows): a single fork per chunk, since
    // every fork costs a wake-up of each worker (dear on a loaded machine).
    const int64_t n_items = static_cast<int64_t>(G) * n_groups;
#pragma omp parallel for num_threads(workers) if (workers > 1) schedule(dynamic)
    for (int64_t item = 0; item < n_items; ++item) {
      const int32_t g = static_cast<int32_t>(item / n_groups);
      const size_t r = static_cast<size_t>(item % n_groups) * kRowGroup;  // first row
      const int32_t nr = static_cast<int32_t>(std::min<size_t>(kRowGroup, n_rows - r));
      // Rows are sorted by kv_length, so the group's last row reaches furthest.
      const int32_t cols = std::min(n, row_length[r + static_cast<size_t>(nr) - 1] - t0);
      if (cols <= 0) continue;  // no row of the group reaches this chunk (causal prefill)
      KvHeadState& st = state[static_cast<size_t>(g)];
      const HeadValueGroup& vg = vgroups[static_cast<size_t>(g)];
      const int32_t rank = vg.rank();
      const float* kt = keys_t.data() + static_cast<size_t>(g) * D * static_cast<size_t>(n);
      float p[kRowGroup * kChunkTokens];
      score_rows(nr, st.q.data() + r * D, D, kt, n, cols, profile.attention_scale, p, cols);
      for (int32_t k = 0; k < nr; ++k) {
        const size_t rk = r + static_cast<size_t>(k);
        softmax_row(std::min(cols, row_length[rk] - t0), cols,
                    p + static_cast<size_t>(k) * static_cast<size_t>(cols), st.running_max[rk],
                    st.running_sum[rk], st.value_acc.data() + rk * static_cast<size_t>(rank),
                    rank);
      }
      if (rank > 0) {
        accumulate_values(nr, cols, p, cols, latents.data() + key_width + vg.channel_offset,
                          latent_width, rank, st.value_acc.data() + r * static_cast<size_t>(rank));
      }
    }
  }

  // o_h = (sum_t p_t latent_t / sum_t p_t) x (head g's columns of the value up-projection).
#pragma omp parallel for num_threads(workers) if (workers > 1) schedule(static)
  for (int64_t r = 0; r < static_cast<int64_t>(n_rows); ++r) {
    const size_t i = static_cast<size_t>(r) / static_cast<size_t>(qpk);
    const int32_t k = static_cast<int32_t>(static_cast<size_t>(r) % static_cast<size_t>(qpk));
    std::vector<float> o(static_cast<size_t>(D));
    for (int32_t g = 0; g < G; ++g) {
      const KvHeadState& st = state[static_cast<size_t>(g)];
      const HeadValueGroup& vg = vgroups[static_cast<size_t>(g)];
      const int32_t rank = vg.rank();
      if (rank > 0) {
        project_value(st.value_acc.data() + static_cast<size_t>(r) * static_cast<size_t>(rank),
                      rank, vg.group->up.data() + (g * D - vg.group->in_offset),
                      vg.group->in_dim, D, o.data());
      } else {
        std::fill(o.begin(), o.end(), 0.0f);
      }
      const float inv_sum = 1.0f / st.running_sum[static_cast<size_t>(r)];
      const size_t dst = (order[i] * static_cast<size_t>(H) + static_cast<size_t>(g) * qpk +
                          static_cast<size_t>(k)) * static_cast<size_t>(D);
      for (int32_t d = 0; d < D; ++d) {
        store_from_float(out, out_dtype, dst + static_cast<size_t>(d),
                         o[static_cast<size_t>(d)] * inv_sum);
      }
    }
  }
}

}  // namespace starkv
