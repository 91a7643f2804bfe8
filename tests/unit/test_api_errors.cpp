// Bad input never crashes and never changes a pool: every failing call returns its status, sets a
// message, and leaves the pool exactly as it was (checked through usage and a snapshot's bytes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "support/api_fixtures.h"

using namespace starkv_test;

namespace {

class ApiErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    shape_.n_heads = 4;
    shape_.n_kv_heads = 2;
    shape_.head_dim = 16;
    ctx_ = make_cpu_context();
    profile_ = make_identity_profile(shape_, 2);
    pool_ = make_pool(ctx_.get(), profile_.get(), /*page_tokens=*/8, /*pages=*/4, /*max seqs=*/3);
    ASSERT_EQ(starkv_seq_create(pool_.get(), &seq_), STARKV_OK);
    append(seq_, 0, 0, 10);
    append(seq_, 1, 0, 10);
  }

  starkv_status append(int32_t seq, int32_t layer, int32_t first_position, int32_t n,
                       starkv_dtype dtype = STARKV_DTYPE_F32) {
    const size_t count = static_cast<size_t>(std::max(n, 1));  // n < 0 is tested too
    std::vector<int32_t> ids(count, seq), pos(count);
    for (int32_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = first_position + i;
    const std::vector<float> k = random_half_exact(count * 32, 5);
    return starkv_append(pool_.get(), layer, n, ids.data(), pos.data(), k.data(), k.data(), dtype);
  }

  // Everything observable about the pool: usage and the bytes of a snapshot of the sequence.
  std::string fingerprint() {
    starkv_pool_usage u = starkv_pool_usage_default();
    EXPECT_EQ(starkv_cache_pool_get_usage(pool_.get(), &u), STARKV_OK);
    size_t size = 0;
    EXPECT_EQ(starkv_seq_export(pool_.get(), seq_, nullptr, 0, &size), STARKV_OK);
    std::vector<uint8_t> bytes(size);
    EXPECT_EQ(starkv_seq_export(pool_.get(), seq_, bytes.data(), size, &size), STARKV_OK);
    int32_t len = -1;
    EXPECT_EQ(starkv_seq_length(pool_.get(), seq_, &len), STARKV_OK);
    return std::to_string(u.free_pages) + "/" + std::to_string(u.n_sequences) + "/" +
           std::to_string(u.stored_tokens) + "/" + std::to_string(len) + "/" +
           std::string(bytes.begin(), bytes.end());
  }

  void expect_error(starkv_status got, starkv_status want, const char* what) {
    EXPECT_EQ(got, want) << what << ": " << starkv_last_error();
    EXPECT_GT(std::strlen(starkv_last_error()), 10u) << what << " must explain itself";
  }

  AttentionShape shape_;
  ContextPtr ctx_;
  ProfilePtr profile_;
  PoolPtr pool_;
  int32_t seq_ = 0;
};

TEST_F(ApiErrors, NullHandlesAreRejected) {
  int32_t id = 0, len = 0;
  size_t size = 0;
  float buf[4] = {};
  expect_error(starkv_seq_create(nullptr, &id), STARKV_ERR_NULL_HANDLE, "seq_create");
  expect_error(starkv_seq_fork(nullptr, 1, &id), STARKV_ERR_NULL_HANDLE, "seq_fork");
  expect_error(starkv_seq_release(nullptr, 1), STARKV_ERR_NULL_HANDLE, "seq_release");
  expect_error(starkv_seq_length(nullptr, 1, &len), STARKV_ERR_NULL_HANDLE, "seq_length");
  expect_error(starkv_seq_export(nullptr, 1, nullptr, 0, &size), STARKV_ERR_NULL_HANDLE, "export");
  expect_error(starkv_seq_import(nullptr, buf, 4, &id), STARKV_ERR_NULL_HANDLE, "import");
  expect_error(starkv_append(nullptr, 0, 1, &id, &id, buf, buf, STARKV_DTYPE_F32),
               STARKV_ERR_NULL_HANDLE, "append");
  expect_error(starkv_attend(nullptr, 0, 1, &id, nullptr, buf, STARKV_DTYPE_F32, buf,
                             STARKV_DTYPE_F32),
               STARKV_ERR_NULL_HANDLE, "attend");
  expect_error(starkv_cache_pool_create(nullptr, profile_.get(), nullptr, nullptr),
               STARKV_ERR_NULL_HANDLE, "pool_create");
  expect_error(starkv_profile_get_info(nullptr, nullptr), STARKV_ERR_NULL_HANDLE, "get_info");
  expect_error(starkv_profile_save(nullptr, "/tmp/x"), STARKV_ERR_NULL_HANDLE, "save");
  expect_error(starkv_decode_step_plan(nullptr, 1, &id, nullptr), STARKV_ERR_NULL_HANDLE, "plan");
  expect_error(starkv_decode_step_run(nullptr, 0, buf, STARKV_DTYPE_F32, buf, STARKV_DTYPE_F32),
               STARKV_ERR_NULL_HANDLE, "run");
  expect_error(starkv_profile_builder_add_layer(nullptr, 0, nullptr), STARKV_ERR_NULL_HANDLE,
               "add_layer");
  expect_error(starkv_context_synchronize(nullptr), STARKV_ERR_NULL_HANDLE, "synchronize");
  // Destroy functions accept NULL.
  starkv_context_destroy(nullptr);
  starkv_profile_destroy(nullptr);
  starkv_cache_pool_destroy(nullptr);
  starkv_decode_step_destroy(nullptr);
  starkv_profile_builder_destroy(nullptr);
}

TEST_F(ApiErrors, StructSizesAreChecked) {
  starkv_pool_params pp = starkv_pool_params_default();
  starkv_cache_pool* pool = nullptr;
  pp.struct_size = 0;
  expect_error(starkv_cache_pool_create(ctx_.get(), profile_.get(), &pp, &pool),
               STARKV_ERR_SIZE_MISMATCH, "struct_size 0");
  pp.struct_size = sizeof(pp) + 8;
  expect_error(starkv_cache_pool_create(ctx_.get(), profile_.get(), &pp, &pool),
               STARKV_ERR_SIZE_MISMATCH, "struct_size from a newer header");
  EXPECT_EQ(pool, nullptr);
  // An older program's shorter struct is accepted: the missing fields keep their defaults.
  pp = starkv_pool_params_default();
  pp.page_tokens = 4;
  pp.struct_size = offsetof(starkv_pool_params, capacity_pages);
  ASSERT_EQ(starkv_cache_pool_create(ctx_.get(), profile_.get(), &pp, &pool), STARKV_OK)
      << starkv_last_error();
  starkv_pool_usage u = starkv_pool_usage_default();
  ASSERT_EQ(starkv_cache_pool_get_usage(pool, &u), STARKV_OK);
  EXPECT_EQ(u.page_tokens, 4);
  EXPECT_EQ(u.capacity_tokens, 65536);
  starkv_cache_pool_destroy(pool);
}

TEST_F(ApiErrors, BadAppendsLeaveThePoolUnchanged) {
  const std::string before = fingerprint();
  expect_error(append(seq_, 0, 11, 1), STARKV_ERR_POSITION, "a gap in positions");
  // (The message is built only on failure, core/error.h; it still names the positions.)
  EXPECT_NE(std::string(starkv_last_error()).find("has position 11"), std::string::npos)
      << starkv_last_error();
  EXPECT_NE(std::string(starkv_last_error()).find("expects position 10"), std::string::npos)
      << starkv_last_error();
  expect_error(append(seq_, 0, 9, 1), STARKV_ERR_POSITION, "a repeated position");
  expect_error(append(seq_ + 100, 0, 0, 1), STARKV_ERR_UNKNOWN_SEQUENCE, "unknown sequence");
  expect_error(append(seq_, 2, 10, 1), STARKV_ERR_INVALID_ARGUMENT, "layer out of range");
  expect_error(append(seq_, -1, 10, 1), STARKV_ERR_INVALID_ARGUMENT, "negative layer");
  // 3 is the only unnamed value C++ lets an enum of 0..2 hold (UBSan flags others); C callers
  // can pass anything, and the check is the same.
  expect_error(append(seq_, 0, 10, 1, static_cast<starkv_dtype>(3)), STARKV_ERR_DTYPE,
               "unknown dtype");
  expect_error(append(seq_, 0, 10, -3), STARKV_ERR_INVALID_ARGUMENT, "negative count");
  // Positions out of order inside one batch: the valid first token must not be stored either.
  {
    int32_t ids[2] = {seq_, seq_}, pos[2] = {10, 12};
    const std::vector<float> k = random_half_exact(64, 1);
    expect_error(starkv_append(pool_.get(), 0, 2, ids, pos, k.data(), k.data(), STARKV_DTYPE_F32),
                 STARKV_ERR_POSITION, "out of order in a batch");
  }
  {
    int32_t ids[1] = {seq_}, pos[1] = {10};
    expect_error(starkv_append(pool_.get(), 0, 1, ids, pos, nullptr, nullptr, STARKV_DTYPE_F32),
                 STARKV_ERR_INVALID_ARGUMENT, "NULL data");
    expect_error(starkv_append(pool_.get(), 0, 1, nullptr, pos, ids, ids, STARKV_DTYPE_F32),
                 STARKV_ERR_INVALID_ARGUMENT, "NULL seq_ids");
  }
  // Non-finite keys, values or latents: refused before anything is stored (the CPU backend reads
  // its input, so it can check it).
  for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    int32_t ids[1] = {seq_}, pos[1] = {10};
    // 64 covers a token's keys (G*D = 32) and its full-rank latents (2*G*D).
    std::vector<float> good = random_half_exact(64, 2), poisoned = good;
    poisoned[17] = bad;
    expect_error(starkv_append(pool_.get(), 0, 1, ids, pos, poisoned.data(), good.data(),
                               STARKV_DTYPE_F32),
                 STARKV_ERR_NUMERICAL, "non-finite key");
    expect_error(starkv_append(pool_.get(), 0, 1, ids, pos, good.data(), poisoned.data(),
                               STARKV_DTYPE_F32),
                 STARKV_ERR_NUMERICAL, "non-finite value");
    expect_error(starkv_append_latents(pool_.get(), 0, 1, ids, pos, poisoned.data(),
                                       STARKV_DTYPE_F32),
                 STARKV_ERR_NUMERICAL, "non-finite latent");
  }
  EXPECT_EQ(fingerprint(), before);
}

TEST_F(ApiErrors, FullPoolReturnsPoolFullAndChangesNothing) {
  // 4 pages of 8 tokens: the sequence holds 10 tokens (2 pages); 23 more need 3 more pages.
  const std::string before = fingerprint();
  expect_error(append(seq_, 0, 10, 23), STARKV_ERR_POOL_FULL, "append past capacity");
  EXPECT_EQ(fingerprint(), before);
  // A fork whose copy-on-write needs more pages than are free fails the same way.
  int32_t child = 0;
  ASSERT_EQ(starkv_seq_fork(pool_.get(), seq_, &child), STARKV_OK);
  ASSERT_EQ(append(child, 0, 10, 14), STARKV_OK) << starkv_last_error();  // copies page 1, takes 2
  const std::string with_child = fingerprint();
  expect_error(append(seq_, 0, 10, 7), STARKV_ERR_POOL_FULL, "no page left for copy-on-write");
  EXPECT_EQ(fingerprint(), with_child);
  // Too many sequences is a full pool too.
  int32_t third = 0, fourth = 0;
  ASSERT_EQ(starkv_seq_create(pool_.get(), &third), STARKV_OK);
  expect_error(starkv_seq_create(pool_.get(), &fourth), STARKV_ERR_POOL_FULL, "max_sequences");
  // Importing a snapshot that does not fit fails cleanly.
  size_t size = 0;
  ASSERT_EQ(starkv_seq_export(pool_.get(), seq_, nullptr, 0, &size), STARKV_OK);
  std::vector<uint8_t> snap(size);
  ASSERT_EQ(starkv_seq_export(pool_.get(), seq_, snap.data(), size, &size), STARKV_OK);
  ASSERT_EQ(starkv_seq_release(pool_.get(), third), STARKV_OK);
  const std::string full = fingerprint();
  expect_error(starkv_seq_import(pool_.get(), snap.data(), snap.size(), &fourth),
               STARKV_ERR_POOL_FULL, "import into a full pool");
  EXPECT_EQ(fingerprint(), full);
}

TEST_F(ApiErrors, AttendChecksLengthsAndBuffers) {
  std::vector<float> q(64, 0.5f), out(64);
  int32_t len = 11;
  expect_error(starkv_attend(pool_.get(), 0, 1, &seq_, &len, q.data(), STARKV_DTYPE_F32,
                             out.data(), STARKV_DTYPE_F32),
               STARKV_ERR_POSITION, "attending unstored tokens");
  len = 0;
  expect_error(starkv_attend(pool_.get(), 0, 1, &seq_, &len, q.data(), STARKV_DTYPE_F32,
                             out.data(), STARKV_DTYPE_F32),
               STARKV_ERR_INVALID_ARGUMENT, "zero tokens");
  len = 10;
  expect_error(starkv_attend(pool_.get(), 0, 1, &seq_, &len, q.data(),
                             static_cast<starkv_dtype>(3), out.data(), STARKV_DTYPE_F32),
               STARKV_ERR_DTYPE, "query dtype");
  expect_error(starkv_attend(pool_.get(), 0, 1, &seq_, &len, nullptr, STARKV_DTYPE_F32,
                             out.data(), STARKV_DTYPE_F32),
               STARKV_ERR_INVALID_ARGUMENT, "NULL queries");
  int32_t ghost = 999;
  expect_error(starkv_attend(pool_.get(), 0, 1, &ghost, &len, q.data(), STARKV_DTYPE_F32,
                             out.data(), STARKV_DTYPE_F32),
               STARKV_ERR_UNKNOWN_SEQUENCE, "unknown sequence");
  starkv_decode_step* step = nullptr;
  ASSERT_EQ(starkv_decode_step_create(pool_.get(), &step), STARKV_OK);
  expect_error(starkv_decode_step_run(step, 0, q.data(), STARKV_DTYPE_F32, out.data(),
                                      STARKV_DTYPE_F32),
               STARKV_ERR_INVALID_STATE, "run before plan");
  ASSERT_EQ(starkv_decode_step_plan(step, 1, &seq_, nullptr), STARKV_OK);
  ASSERT_EQ(starkv_seq_release(pool_.get(), seq_), STARKV_OK);
  expect_error(starkv_decode_step_run(step, 0, q.data(), STARKV_DTYPE_F32, out.data(),
                                      STARKV_DTYPE_F32),
               STARKV_ERR_UNKNOWN_SEQUENCE, "run after the sequence was released");
  starkv_decode_step_destroy(step);
}

TEST_F(ApiErrors, BadSnapshotsAreRejectedAndChangeNothing) {
  size_t size = 0;
  ASSERT_EQ(starkv_seq_export(pool_.get(), seq_, nullptr, 0, &size), STARKV_OK);
  std::vector<uint8_t> snap(size);
  ASSERT_EQ(starkv_seq_export(pool_.get(), seq_, snap.data(), size, &size), STARKV_OK);
  std::vector<uint8_t> small(size / 2);
  expect_error(starkv_seq_export(pool_.get(), seq_, small.data(), small.size(), &size),
               STARKV_ERR_BUFFER_TOO_SMALL, "export into a small buffer");
  const std::string before = fingerprint();
  int32_t id = 0;
  for (size_t cut = 0; cut < snap.size(); cut += 7) {
    const starkv_status s = starkv_seq_import(pool_.get(), snap.data(), cut, &id);
    EXPECT_TRUE(s == STARKV_ERR_CORRUPT_DATA || s == STARKV_ERR_FORMAT) << cut << ": " << s;
  }
  std::vector<uint8_t> flipped = snap;
  flipped[flipped.size() / 2] ^= 0x5a;
  expect_error(starkv_seq_import(pool_.get(), flipped.data(), flipped.size(), &id),
               STARKV_ERR_CORRUPT_DATA, "a flipped byte");
  const char foreign[] = "this is not a starkv snapshot at all, just text";
  expect_error(starkv_seq_import(pool_.get(), foreign, sizeof foreign, &id), STARKV_ERR_FORMAT,
               "a foreign buffer");
  // A snapshot of a pool with another profile.
  AttentionShape other = shape_;
  other.rope_theta = 500000.0f;
  ProfilePtr other_profile = make_identity_profile(other, 2);
  PoolPtr other_pool = make_pool(ctx_.get(), other_profile.get(), 8, 4);
  expect_error(starkv_seq_import(other_pool.get(), snap.data(), snap.size(), &id),
               STARKV_ERR_PROFILE_MISMATCH, "another profile");
  // A profile given as a snapshot.
  size_t psize = 0;
  ASSERT_EQ(starkv_profile_save_to_buffer(profile_.get(), nullptr, 0, &psize), STARKV_OK);
  std::vector<uint8_t> pbytes(psize);
  ASSERT_EQ(starkv_profile_save_to_buffer(profile_.get(), pbytes.data(), psize, &psize), STARKV_OK);
  expect_error(starkv_seq_import(pool_.get(), pbytes.data(), pbytes.size(), &id),
               STARKV_ERR_FORMAT, "a profile as a snapshot");
  EXPECT_EQ(fingerprint(), before);
}

TEST_F(ApiErrors, ExportMidStepIsRefused) {
  ASSERT_EQ(append(seq_, 0, 10, 1), STARKV_OK);  // layer 0 has 11 tokens, layer 1 has 10
  size_t size = 0;
  expect_error(starkv_seq_export(pool_.get(), seq_, nullptr, 0, &size), STARKV_ERR_INVALID_STATE,
               "export with layers of different lengths");
  int32_t len = 0;
  ASSERT_EQ(starkv_seq_length(pool_.get(), seq_, &len), STARKV_OK);
  EXPECT_EQ(len, 10);
}

TEST_F(ApiErrors, StatusStringsAndVersions) {
  for (int s = STARKV_OK; s <= STARKV_ERR_INTERNAL; ++s) {
    EXPECT_STRNE(starkv_status_string(static_cast<starkv_status>(s)), "unknown status") << s;
  }
  EXPECT_STREQ(starkv_status_string(static_cast<starkv_status>(30)), "unknown status");
  EXPECT_EQ(starkv_version_number(), static_cast<uint32_t>(STARKV_VERSION_NUMBER));
  EXPECT_EQ(starkv_abi_version(), static_cast<uint32_t>(STARKV_ABI_VERSION));
  EXPECT_NE(starkv_get_api(STARKV_ABI_VERSION), nullptr);
  EXPECT_EQ(starkv_get_api(0), nullptr);
  EXPECT_NE(std::string(starkv_last_error()).find("ABI"), std::string::npos);
  EXPECT_EQ(starkv_backend_available(STARKV_BACKEND_CPU), 1);
}

}  // namespace
