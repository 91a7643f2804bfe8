// End-to-end through the public API: append keys and values, attend, and compare with the dense
// double-precision reference. Identity factors with fp16-exact inputs make every stored latent
// exact, so the only error left is fp32 arithmetic in the attention itself: tolerance 1e-5.
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "support/api_fixtures.h"
#include "support/reference_attention.h"

using namespace starkv_test;

namespace {

// What one sequence holds per layer, to build the reference from.
struct SequenceData {
  std::vector<std::vector<float>> keys, values;  // per layer [T, G, D]
};

class CacheAttention
    : public ::testing::TestWithParam<std::tuple<int32_t /*q per kv*/, starkv_rope_style>> {
 protected:
  void SetUp() override {
    shape_.n_kv_heads = 2;
    shape_.n_heads = 2 * std::get<0>(GetParam());
    shape_.head_dim = 32;
    shape_.rope_style = std::get<1>(GetParam());
    ctx_ = make_cpu_context();
    profile_ = make_identity_profile(shape_, kLayers);
    pool_ = make_pool(ctx_.get(), profile_.get(), /*page_tokens=*/16, /*pages=*/64);
  }

  size_t token_width() const { return static_cast<size_t>(shape_.n_kv_heads) * shape_.head_dim; }

  // Appends n new tokens of fresh data to each listed sequence in one interleaved batch.
  void append_tokens(starkv_cache_pool* pool, int32_t layer, const std::vector<int32_t>& seqs,
                     const std::vector<int32_t>& counts, uint32_t seed) {
    std::vector<int32_t> ids, positions;
    std::vector<float> k, v;
    std::map<int32_t, int32_t> next;
    for (int32_t s : seqs) next[s] = static_cast<int32_t>(data_[s].keys[layer].size() / token_width());
    int32_t remaining = 0;
    for (int32_t c : counts) remaining += c;
    std::vector<int32_t> left = counts;
    // Round-robin over sequences so the batch is interleaved.
    while (remaining > 0) {
      for (size_t i = 0; i < seqs.size(); ++i) {
        if (left[i] == 0) continue;
        const int32_t s = seqs[i];
        std::vector<float> tk = random_half_exact(token_width(), seed++);
        std::vector<float> tv = random_half_exact(token_width(), seed++);
        ids.push_back(s);
        positions.push_back(next[s]++);
        k.insert(k.end(), tk.begin(), tk.end());
        v.insert(v.end(), tv.begin(), tv.end());
        auto& dk = data_[s].keys[layer];
        auto& dv = data_[s].values[layer];
        dk.insert(dk.end(), tk.begin(), tk.end());
        dv.insert(dv.end(), tv.begin(), tv.end());
        --left[i];
        --remaining;
      }
    }
    ASSERT_EQ(starkv_append(pool, layer, static_cast<int32_t>(ids.size()), ids.data(),
                            positions.data(), k.data(), v.data(), STARKV_DTYPE_F32),
              STARKV_OK)
        << starkv_last_error();
  }

  int32_t new_sequence(starkv_cache_pool* pool) {
    int32_t id = 0;
    EXPECT_EQ(starkv_seq_create(pool, &id), STARKV_OK);
    data_[id].keys.resize(kLayers);
    data_[id].values.resize(kLayers);
    return id;
  }

  void expect_matches_reference(starkv_cache_pool* pool, int32_t layer,
                                const std::vector<int32_t>& seqs,
                                const std::vector<int32_t>& kv_lengths, uint32_t seed,
                                double tolerance = 1e-5) {
    const size_t qsize = static_cast<size_t>(shape_.n_heads) * shape_.head_dim;
    std::vector<float> queries;
    for (size_t i = 0; i < seqs.size(); ++i) {
      std::vector<float> q = random_half_exact(qsize, seed + static_cast<uint32_t>(i), 2.0f);
      queries.insert(queries.end(), q.begin(), q.end());
    }
    const std::vector<float> out = attend(pool, shape_, layer, seqs, kv_lengths, queries);
    for (size_t i = 0; i < seqs.size(); ++i) {
      const std::vector<float> q(queries.begin() + i * qsize, queries.begin() + (i + 1) * qsize);
      const std::vector<double> ref = reference_attention(
          shape_, data_[seqs[i]].keys[layer], data_[seqs[i]].values[layer], q, kv_lengths[i]);
      const std::vector<float> got(out.begin() + i * qsize, out.begin() + (i + 1) * qsize);
      EXPECT_LE(relative_error(got, ref), tolerance)
          << "layer " << layer << " sequence " << seqs[i] << " kv " << kv_lengths[i];
    }
  }

  static constexpr int32_t kLayers = 2;
  AttentionShape shape_;
  ContextPtr ctx_;
  ProfilePtr profile_;
  PoolPtr pool_;
  std::map<int32_t, SequenceData> data_;
};

TEST_P(CacheAttention, RaggedBatchMatchesDenseReference) {
  const int32_t a = new_sequence(pool_.get()), b = new_sequence(pool_.get()),
                c = new_sequence(pool_.get());
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    append_tokens(pool_.get(), layer, {a, b, c}, {1, 37, 100}, 100 * layer + 1);
    append_tokens(pool_.get(), layer, {c}, {30}, 100 * layer + 50000);
  }
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    expect_matches_reference(pool_.get(), layer, {a, b, c}, {1, 37, 130}, 7 + layer);
    // Causal prefill rows: several queries of one sequence with growing lengths.
    expect_matches_reference(pool_.get(), layer, {c, c, c, b}, {1, 64, 129, 16}, 70 + layer);
  }
}

TEST_P(CacheAttention, ForkSharesPrefixAndCopiesOnWrite) {
  const int32_t a = new_sequence(pool_.get());
  for (int32_t layer = 0; layer < kLayers; ++layer) append_tokens(pool_.get(), layer, {a}, {40}, 11 + layer * 1000);
  int32_t b = 0;
  ASSERT_EQ(starkv_seq_fork(pool_.get(), a, &b), STARKV_OK) << starkv_last_error();
  data_[b] = data_[a];
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    append_tokens(pool_.get(), layer, {a, b}, {10, 7}, 5000 + layer * 1000);
  }
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    expect_matches_reference(pool_.get(), layer, {a, b, a, b}, {50, 47, 40, 40}, 3);
  }
  int32_t len = 0;
  ASSERT_EQ(starkv_seq_length(pool_.get(), b, &len), STARKV_OK);
  EXPECT_EQ(len, 47);
  // Releasing the parent keeps the child's shared pages alive.
  ASSERT_EQ(starkv_seq_release(pool_.get(), a), STARKV_OK);
  for (int32_t layer = 0; layer < kLayers; ++layer) expect_matches_reference(pool_.get(), layer, {b}, {47}, 9);
}

TEST_P(CacheAttention, SnapshotRestoresIntoAnotherPool) {
  const int32_t a = new_sequence(pool_.get());
  for (int32_t layer = 0; layer < kLayers; ++layer) append_tokens(pool_.get(), layer, {a}, {45}, 21 + layer * 1000);
  size_t size = 0;
  ASSERT_EQ(starkv_seq_export(pool_.get(), a, nullptr, 0, &size), STARKV_OK) << starkv_last_error();
  std::vector<uint8_t> snapshot(size);
  ASSERT_EQ(starkv_seq_export(pool_.get(), a, snapshot.data(), snapshot.size(), &size), STARKV_OK);

  PoolPtr other = make_pool(ctx_.get(), profile_.get(), 16, 8);
  int32_t restored = 0;
  ASSERT_EQ(starkv_seq_import(other.get(), snapshot.data(), snapshot.size(), &restored), STARKV_OK)
      << starkv_last_error();
  data_[restored] = data_[a];
  const size_t qsize = static_cast<size_t>(shape_.n_heads) * shape_.head_dim;
  const std::vector<float> q = random_half_exact(qsize, 99);
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    const std::vector<float> original = attend(pool_.get(), shape_, layer, {a}, {45}, q);
    const std::vector<float> copy = attend(other.get(), shape_, layer, {restored}, {45}, q);
    EXPECT_EQ(original, copy) << "a restored sequence must attend bit for bit like the original";
    expect_matches_reference(other.get(), layer, {restored}, {45}, 31);
  }
  // The restored sequence keeps growing normally.
  for (int32_t layer = 0; layer < kLayers; ++layer) append_tokens(other.get(), layer, {restored}, {20}, 777 + layer);
  for (int32_t layer = 0; layer < kLayers; ++layer) expect_matches_reference(other.get(), layer, {restored}, {65}, 41);
}

TEST_P(CacheAttention, DecodeStepPlannedAheadOfAppends) {
  const int32_t a = new_sequence(pool_.get()), b = new_sequence(pool_.get());
  for (int32_t layer = 0; layer < kLayers; ++layer) append_tokens(pool_.get(), layer, {a, b}, {15, 16}, 3 + layer * 100);
  starkv_decode_step* raw = nullptr;
  ASSERT_EQ(starkv_decode_step_create(pool_.get(), &raw), STARKV_OK);
  StepPtr step(raw);
  const size_t qsize = static_cast<size_t>(shape_.n_heads) * shape_.head_dim;
  for (int32_t token = 0; token < 3; ++token) {
    // Plan for the lengths after this step's append (pages for token 16 are reserved now).
    std::vector<int32_t> seqs{a, b};
    std::vector<int32_t> lengths{16 + token, 17 + token};
    ASSERT_EQ(starkv_decode_step_plan(step.get(), 2, seqs.data(), lengths.data()), STARKV_OK)
        << starkv_last_error();
    for (int32_t layer = 0; layer < kLayers; ++layer) {
      append_tokens(pool_.get(), layer, {a, b}, {1, 1}, 9000 + token * 10 + layer);
      std::vector<float> q = random_half_exact(2 * qsize, 4242 + token);
      std::vector<float> out(2 * qsize);
      ASSERT_EQ(starkv_decode_step_run(step.get(), layer, q.data(), STARKV_DTYPE_F32, out.data(),
                                       STARKV_DTYPE_F32),
                STARKV_OK)
          << starkv_last_error();
      for (int32_t i = 0; i < 2; ++i) {
        const std::vector<float> qi(q.begin() + i * qsize, q.begin() + (i + 1) * qsize);
        const std::vector<float> oi(out.begin() + i * qsize, out.begin() + (i + 1) * qsize);
        EXPECT_LE(relative_error(oi, reference_attention(shape_, data_[seqs[i]].keys[layer],
                                                         data_[seqs[i]].values[layer], qi,
                                                         lengths[i])),
                  1e-5);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    MhaGqaRopeStyles, CacheAttention,
    ::testing::Combine(::testing::Values(1, 4), ::testing::Values(STARKV_ROPE_NEOX, STARKV_ROPE_GPTJ)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == 1 ? "MHA" : "GQA4") +
             (std::get<1>(info.param) == STARKV_ROPE_NEOX ? "_neox" : "_gptj");
    });

}  // namespace
