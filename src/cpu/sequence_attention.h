// Causal attention of all queries of one sequence over that sequence's stored latent rows, with
// the work the queries share done once per call: each stored token is decoded and its key rebuilt
// (up-projection, then RoPE) once, not once per query; scores and value sums run over blocks of
// query rows against a chunk of keys at a time, so every key and value latent loaded from memory
// serves several rows; and the value up-projection is applied once per query head at the end
// (attention is linear in the values: sum_t p_t (latent_t · up) = (sum_t p_t latent_t) · up).
//
// Every output element is a sum in a fixed order that depends only on its own query (its
// kv_length and fixed chunk boundaries), never on which other queries share the call: one-shot
// attend and a planned batch give identical bits. That is why the inner products are plain loops
// (vectorized across outputs, not within a sum) rather than BLAS calls: BLAS kernels pick code
// paths by matrix shape, so a row's result changes with the number of rows beside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/profile.h"

namespace starkv {

// Where a layer's token rows are: the row of token t is at
// base + (pages[t / page_tokens] * page_tokens + t % page_tokens) * row_bytes.
struct LayerRows {
  const uint8_t* base = nullptr;
  size_t row_bytes = 0;
  int32_t page_tokens = 0;
};

// members: indices into `queries`, all of one sequence (so one page table); q and out are the
// whole batch's [n, H, D] buffers, of which only the members' rows are read and written.
// n_threads: OpenMP workers (worker_threads).
void attend_sequence(const Profile& profile, int32_t layer, const LayerRows& rows,
                     const std::vector<AttendQuery>& queries, const std::vector<size_t>& members,
                     const void* q, starkv_dtype q_dtype, void* out, starkv_dtype out_dtype,
                     int32_t n_threads);

}  // namespace starkv
