// The CPU backend's per-sequence attention (src/cpu/sequence_attention.h) over contexts longer
// than one key chunk (256 tokens) and batches larger than one query block (64 queries): a causal
// prefill batch must match the dense reference, and every query's output must be bit for bit the
// output it gets when attended alone (results never depend on the rest of the batch).
#include <gtest/gtest.h>

#include <cstring>

#include "support/api_fixtures.h"
#include "support/reference_attention.h"

using namespace starkv_test;

namespace {

TEST(SequenceAttention, LongPrefillBatchMatchesReferenceAndSingleQueries) {
  AttentionShape shape;
  shape.n_heads = 6;
  shape.n_kv_heads = 2;  // 3 query heads per KV head
  shape.head_dim = 32;
  ContextPtr ctx = make_cpu_context();
  ProfilePtr profile = make_identity_profile(shape, 1);
  PoolPtr pool = make_pool(ctx.get(), profile.get(), /*page_tokens=*/16, /*pages=*/64);

  const size_t width = static_cast<size_t>(shape.n_kv_heads) * shape.head_dim;
  const int32_t lengths[2] = {600, 70};
  int32_t seq[2] = {0, 0};
  std::vector<float> keys[2], values[2];
  for (int s = 0; s < 2; ++s) {
    ASSERT_EQ(starkv_seq_create(pool.get(), &seq[s]), STARKV_OK);
    const size_t n = static_cast<size_t>(lengths[s]);
    keys[s] = random_half_exact(n * width, 11 + static_cast<uint32_t>(s));
    values[s] = random_half_exact(n * width, 21 + static_cast<uint32_t>(s));
    std::vector<int32_t> ids(n, seq[s]), positions(n);
    for (size_t t = 0; t < n; ++t) positions[t] = static_cast<int32_t>(t);
    ASSERT_EQ(starkv_append(pool.get(), 0, lengths[s], ids.data(), positions.data(),
                            keys[s].data(), values[s].data(), STARKV_DTYPE_F32),
              STARKV_OK)
        << starkv_last_error();
  }

  // 150 prefill rows of the long sequence (lengths 451..600: three query blocks, three chunks)
  // interleaved with queries of the short one.
  std::vector<int32_t> seqs, kv_lengths;
  for (int32_t i = 0; i < 150; ++i) {
    seqs.push_back(seq[0]);
    kv_lengths.push_back(451 + i);
    if (i % 40 == 0) {
      seqs.push_back(seq[1]);
      kv_lengths.push_back(1 + i % 70);
    }
  }
  const size_t qsize = static_cast<size_t>(shape.n_heads) * shape.head_dim;
  const std::vector<float> queries = random_half_exact(seqs.size() * qsize, 5, 2.0f);
  const std::vector<float> out = attend(pool.get(), shape, 0, seqs, kv_lengths, queries);

  for (size_t i = 0; i < seqs.size(); ++i) {
    const int s = seqs[i] == seq[0] ? 0 : 1;
    const std::vector<float> q(queries.begin() + static_cast<ptrdiff_t>(i * qsize),
                               queries.begin() + static_cast<ptrdiff_t>((i + 1) * qsize));
    const std::vector<float> got(out.begin() + static_cast<ptrdiff_t>(i * qsize),
                                 out.begin() + static_cast<ptrdiff_t>((i + 1) * qsize));
    EXPECT_LE(relative_error(got, reference_attention(shape, keys[s], values[s], q, kv_lengths[i])),
              1e-5)
        << "query " << i << " kv " << kv_lengths[i];
    const std::vector<float> alone = attend(pool.get(), shape, 0, {seqs[i]}, {kv_lengths[i]}, q);
    EXPECT_EQ(std::memcmp(alone.data(), got.data(), qsize * sizeof(float)), 0)
        << "query " << i << " kv " << kv_lengths[i] << " differs when attended alone";
  }
}

}  // namespace
