#include "core/cache_pool.h"

#include <algorithm>
#include <limits>
#include <string>

#include "core/enum_value.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/snapshot_format.h"

namespace starkv {

namespace {

std::string seq_name(int32_t seq) { return "sequence " + std::to_string(seq); }

}  // namespace

CachePool::CachePool(std::shared_ptr<const Profile> profile, std::shared_ptr<Backend> backend,
                     const PoolConfig& config)
    : profile_(std::move(profile)),
      backend_(std::move(backend)),
      config_(config),
      pages_(config.n_pages) {
  require(config_.page_tokens >= 1 && config_.page_tokens <= 4096, STARKV_ERR_INVALID_ARGUMENT,
          [&] {
            return "page_tokens must be in [1, 4096], got " + std::to_string(config_.page_tokens);
          });
  require(config_.n_pages >= 1 && config_.n_pages <= std::numeric_limits<int32_t>::max(),
          STARKV_ERR_INVALID_ARGUMENT, [&] {
            return "the pool needs between 1 and 2^31-1 pages, got " +
                   std::to_string(config_.n_pages);
          });
  require(config_.max_sequences >= 1, STARKV_ERR_INVALID_ARGUMENT,
          "max_sequences must be at least 1");
  storage_ = backend_->create_pool_storage(*profile_, config_.n_pages, config_.page_tokens);
}

CachePool::~CachePool() = default;

const CachePool::Sequence& CachePool::sequence(int32_t seq) const {
  auto it = sequences_.find(seq);
  require(it != sequences_.end(), STARKV_ERR_UNKNOWN_SEQUENCE,
          [&] { return "the pool holds no " + seq_name(seq); });
  return it->second;
}

CachePool::Sequence& CachePool::sequence(int32_t seq) {
  return const_cast<Sequence&>(static_cast<const CachePool*>(this)->sequence(seq));
}

int32_t CachePool::new_sequence_id() {
  require(static_cast<int32_t>(sequences_.size()) < config_.max_sequences, STARKV_ERR_POOL_FULL,
          [&] {
            return "the pool already holds its maximum of " +
                   std::to_string(config_.max_sequences) + " sequences";
          });
  require(next_sequence_id_ < std::numeric_limits<int32_t>::max(), STARKV_ERR_POOL_FULL,
          "sequence ids exhausted");
  return next_sequence_id_++;
}

int32_t CachePool::create_sequence() {
  const int32_t id = new_sequence_id();
  Sequence s;
  s.layer_length.assign(static_cast<size_t>(profile_->shape.n_layers), 0);
  sequences_.emplace(id, std::move(s));
  return id;
}

int32_t CachePool::fork_sequence(int32_t parent) {
  const Sequence& p = sequence(parent);
  const int32_t id = new_sequence_id();
  Sequence child = p;
  for (int32_t page : child.pages) pages_.retain(page);
  sequences_.emplace(id, std::move(child));
  ++page_table_version_;
  return id;
}

void CachePool::release_sequence(int32_t seq) {
  Sequence& s = sequence(seq);
  for (int32_t page : s.pages) pages_.release(page);
  sequences_.erase(seq);
  ++page_table_version_;
}

int32_t CachePool::sequence_length(int32_t seq) const {
  const Sequence& s = sequence(seq);
  return *std::min_element(s.layer_length.begin(), s.layer_length.end());
}

int32_t CachePool::layer_length(int32_t seq, int32_t layer) const {
  require(layer >= 0 && layer < profile_->shape.n_layers, STARKV_ERR_INVALID_ARGUMENT,
          [&] { return "layer " + std::to_string(layer) + " is out of range"; });
  return sequence(seq).layer_length[static_cast<size_t>(layer)];
}

PoolUsage CachePool::usage() const {
  PoolUsage u;
  u.total_pages = pages_.total();
  u.free_pages = pages_.free_count();
  u.bytes_per_page = profile_->bytes_per_token() * config_.page_tokens;
  for (const auto& [id, s] : sequences_) {
    (void)id;
    u.stored_tokens += *std::min_element(s.layer_length.begin(), s.layer_length.end());
  }
  u.n_sequences = static_cast<int32_t>(sequences_.size());
  return u;
}

int64_t CachePool::pages_needed_to_write(const Sequence& seq, int32_t from, int32_t to) const {
  if (to <= from) return 0;
  const int32_t pt = config_.page_tokens;
  int64_t needed = 0;
  for (int32_t j = from / pt; j <= (to - 1) / pt; ++j) {
    if (j >= static_cast<int32_t>(seq.pages.size())) {
      ++needed;  // a new page
    } else if (pages_.ref_count(seq.pages[static_cast<size_t>(j)]) > 1) {
      ++needed;  // a shared page: copied before it is written
    }
  }
  return needed;
}

void CachePool::make_writable(Sequence& seq, int32_t from, int32_t to) {
  if (to <= from) return;
  const int32_t pt = config_.page_tokens;
  for (int32_t j = from / pt; j <= (to - 1) / pt; ++j) {
    if (j >= static_cast<int32_t>(seq.pages.size())) {
      seq.pages.push_back(pages_.take());
      ++page_table_version_;
    } else {
      int32_t& page = seq.pages[static_cast<size_t>(j)];
      if (pages_.ref_count(page) > 1) {
        const int32_t copy = pages_.take();
        backend_->copy_page(*profile_, *storage_, page, copy);
        pages_.release(page);
        page = copy;
        ++page_table_version_;
      }
    }
  }
}

std::vector<AppendTarget> CachePool::prepare_append(int32_t layer, int32_t n_tokens,
                                                    const int32_t* seq_ids,
                                                    const int32_t* positions, const void* data_a,
                                                    const void* data_b, bool data_is_latents,
                                                    starkv_dtype dtype) {
  require(layer >= 0 && layer < profile_->shape.n_layers, STARKV_ERR_INVALID_ARGUMENT, [&] {
    return "layer " + std::to_string(layer) + " is out of range [0, " +
           std::to_string(profile_->shape.n_layers) + ")";
  });
  require(n_tokens >= 0, STARKV_ERR_INVALID_ARGUMENT, "n_tokens is negative");
  if (n_tokens == 0) return {};
  require(seq_ids != nullptr && positions != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          "seq_ids and positions must not be NULL");
  require(data_a != nullptr && data_b != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          "the data pointers must not be NULL");
  require(is_valid_dtype(dtype), STARKV_ERR_DTYPE,
          [&] { return "unknown dtype " + std::to_string(enum_value(dtype)); });
  const int64_t values_per_token =
      data_is_latents ? profile_->row_layouts[static_cast<size_t>(layer)].latent_width
                      : profile_->shape.kv_width();
  backend_->check_append_input(data_a, n_tokens * values_per_token, dtype);
  if (!data_is_latents) backend_->check_append_input(data_b, n_tokens * values_per_token, dtype);

  // Every token must continue its sequence in this layer, in order.
  std::map<int32_t, int32_t> batch_count;  // sequence -> tokens of it in this batch so far
  for (int32_t i = 0; i < n_tokens; ++i) {
    const Sequence& s = sequence(seq_ids[i]);
    int32_t& count = batch_count[seq_ids[i]];
    const int64_t expected =
        static_cast<int64_t>(s.layer_length[static_cast<size_t>(layer)]) + count;
    require(expected < std::numeric_limits<int32_t>::max(), STARKV_ERR_POSITION,
            [&] { return seq_name(seq_ids[i]) + " is at the maximum length"; });
    require(positions[i] == expected, STARKV_ERR_POSITION, [&] {
      return "token " + std::to_string(i) + " of " + seq_name(seq_ids[i]) + " has position " +
             std::to_string(positions[i]) + " but layer " + std::to_string(layer) +
             " expects position " + std::to_string(expected) +
             " (append positions in order, without gaps)";
    });
    ++count;
  }

  int64_t needed = 0;
  for (const auto& [id, count] : batch_count) {
    const Sequence& s = sequence(id);
    const int32_t from = s.layer_length[static_cast<size_t>(layer)];
    needed += pages_needed_to_write(s, from, from + count);
  }
  require(needed <= pages_.free_count(), STARKV_ERR_POOL_FULL, [&] {
    return "the append needs " + std::to_string(needed) + " free pages but the pool has " +
           std::to_string(pages_.free_count()) + " (nothing was written)";
  });

  for (const auto& [id, count] : batch_count) {
    Sequence& s = sequence(id);
    const int32_t from = s.layer_length[static_cast<size_t>(layer)];
    make_writable(s, from, from + count);
  }
  std::vector<AppendTarget> targets(static_cast<size_t>(n_tokens));
  for (int32_t i = 0; i < n_tokens; ++i) {
    const Sequence& s = sequence(seq_ids[i]);
    const int32_t pos = positions[i];
    targets[static_cast<size_t>(i)].page =
        s.pages[static_cast<size_t>(pos / config_.page_tokens)];
    targets[static_cast<size_t>(i)].slot = pos % config_.page_tokens;
  }
  return targets;
}

void CachePool::commit_lengths(int32_t layer, const std::vector<AppendTarget>& targets,
                               int32_t n_tokens, const int32_t* seq_ids) {
  (void)targets;
  for (int32_t i = 0; i < n_tokens; ++i) {
    ++sequence(seq_ids[i]).layer_length[static_cast<size_t>(layer)];
  }
}

void CachePool::append(int32_t layer, int32_t n_tokens, const int32_t* seq_ids,
                       const int32_t* positions, const void* keys, const void* values,
                       starkv_dtype dtype) {
  std::vector<AppendTarget> targets =
      prepare_append(layer, n_tokens, seq_ids, positions, keys, values, false, dtype);
  if (targets.empty()) return;
  backend_->append(*profile_, *storage_, layer, targets, keys, values, dtype);
  commit_lengths(layer, targets, n_tokens, seq_ids);
}

void CachePool::append_latents(int32_t layer, int32_t n_tokens, const int32_t* seq_ids,
                               const int32_t* positions, const void* latents,
                               starkv_dtype dtype) {
  std::vector<AppendTarget> targets =
      prepare_append(layer, n_tokens, seq_ids, positions, latents, latents, true, dtype);
  if (targets.empty()) return;
  backend_->append_latents(*profile_, *storage_, layer, targets, latents, dtype);
  commit_lengths(layer, targets, n_tokens, seq_ids);
}

void CachePool::reserve(int32_t n, const int32_t* seq_ids, const int32_t* lengths) {
  require(n >= 0, STARKV_ERR_INVALID_ARGUMENT, "the query count is negative");
  if (n == 0) return;
  require(seq_ids != nullptr && lengths != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          "seq_ids and kv_lengths must not be NULL");
  // The longest request per sequence decides; count pages for all before taking any.
  std::map<int32_t, int32_t> longest;
  for (int32_t i = 0; i < n; ++i) {
    sequence(seq_ids[i]);
    require(lengths[i] >= 1, STARKV_ERR_INVALID_ARGUMENT,
            [&] { return "kv_lengths[" + std::to_string(i) + "] must be at least 1"; });
    int32_t& l = longest[seq_ids[i]];
    l = std::max(l, lengths[i]);
  }
  int64_t needed = 0;
  for (const auto& [id, length] : longest) {
    const Sequence& s = sequence(id);
    needed += pages_needed_to_write(s, sequence_length(id), length);
  }
  require(needed <= pages_.free_count(), STARKV_ERR_POOL_FULL, [&] {
    return "the step needs " + std::to_string(needed) + " free pages but the pool has " +
           std::to_string(pages_.free_count());
  });
  for (const auto& [id, length] : longest) make_writable(sequence(id), sequence_length(id), length);
}

std::vector<AttendQuery> CachePool::resolve_queries(int32_t layer, int32_t n,
                                                    const int32_t* seq_ids,
                                                    const int32_t* kv_lengths) const {
  require(n >= 0, STARKV_ERR_INVALID_ARGUMENT, "the query count is negative");
  require(n == 0 || (seq_ids != nullptr && kv_lengths != nullptr), STARKV_ERR_INVALID_ARGUMENT,
          "seq_ids must not be NULL");
  if (layer >= 0) {
    require(layer < profile_->shape.n_layers, STARKV_ERR_INVALID_ARGUMENT, [&] {
      return "layer " + std::to_string(layer) + " is out of range [0, " +
             std::to_string(profile_->shape.n_layers) + ")";
    });
  }
  std::vector<AttendQuery> queries(static_cast<size_t>(n));
  const int32_t pt = config_.page_tokens;
  for (int32_t i = 0; i < n; ++i) {
    const Sequence& s = sequence(seq_ids[i]);
    const int32_t kv = kv_lengths[i];
    require(kv >= 1, STARKV_ERR_INVALID_ARGUMENT, [&] {
      return "query " + std::to_string(i) + " attends " + std::to_string(kv) +
             " tokens; it must attend at least 1";
    });
    if (layer >= 0) {
      const int32_t stored = s.layer_length[static_cast<size_t>(layer)];
      require(kv <= stored, STARKV_ERR_POSITION, [&] {
        return seq_name(seq_ids[i]) + " holds " + std::to_string(stored) + " tokens in layer " +
               std::to_string(layer) + " but query " + std::to_string(i) + " attends " +
               std::to_string(kv);
      });
    }
    AttendQuery& q = queries[static_cast<size_t>(i)];
    q.seq_id = seq_ids[i];
    q.kv_length = kv;
    q.pages = s.pages.data();
    q.n_pages = std::min<int32_t>(static_cast<int32_t>(s.pages.size()), (kv + pt - 1) / pt);
  }
  return queries;
}

std::vector<uint8_t> CachePool::export_sequence(int32_t seq) {
  const Sequence& s = sequence(seq);
  const int32_t n = s.layer_length.front();
  for (size_t l = 0; l < s.layer_length.size(); ++l) {
    require(s.layer_length[l] == n, STARKV_ERR_INVALID_STATE, [&] {
      return seq_name(seq) + " holds " + std::to_string(n) + " tokens in layer 0 but " +
             std::to_string(s.layer_length[l]) + " in layer " + std::to_string(l) +
             "; export it between steps, when every layer holds the same tokens";
    });
  }
  SequenceSnapshot snap;
  snap.profile_fingerprint = profile_->fingerprint();
  snap.n_tokens = n;
  const int32_t pt = config_.page_tokens;
  for (int32_t l = 0; l < profile_->shape.n_layers; ++l) {
    const int32_t row_bytes = profile_->row_layouts[static_cast<size_t>(l)].row_bytes;
    snap.row_bytes.push_back(row_bytes);
    std::vector<uint8_t> rows(static_cast<size_t>(n) * static_cast<size_t>(row_bytes));
    for (int32_t t = 0; t < n; t += pt) {
      const int32_t count = std::min(pt, n - t);
      backend_->read_rows(*profile_, *storage_, l, s.pages[static_cast<size_t>(t / pt)], 0, count,
                          rows.data() + static_cast<size_t>(t) * static_cast<size_t>(row_bytes));
    }
    snap.layer_rows.push_back(std::move(rows));
  }
  return encode_snapshot(snap);
}

int32_t CachePool::import_sequence(const void* data, size_t size) {
  require(data != nullptr || size == 0, STARKV_ERR_INVALID_ARGUMENT, "the buffer is NULL");
  SequenceSnapshot snap = decode_snapshot(data, size);
  require(snap.profile_fingerprint == profile_->fingerprint(), STARKV_ERR_PROFILE_MISMATCH,
          "the snapshot was made on a pool with a different profile");
  const int32_t n_layers = profile_->shape.n_layers;
  require(static_cast<int32_t>(snap.row_bytes.size()) == n_layers &&
              static_cast<int32_t>(snap.layer_rows.size()) == n_layers,
          STARKV_ERR_PROFILE_MISMATCH, "the snapshot has a different number of layers");
  require(snap.n_tokens >= 0, STARKV_ERR_CORRUPT_DATA, "the snapshot has a negative length");
  for (int32_t l = 0; l < n_layers; ++l) {
    const int32_t row_bytes = profile_->row_layouts[static_cast<size_t>(l)].row_bytes;
    require(snap.row_bytes[static_cast<size_t>(l)] == row_bytes, STARKV_ERR_PROFILE_MISMATCH, [&] {
      return "the snapshot's rows of layer " + std::to_string(l) + " have another size";
    });
    require(snap.layer_rows[static_cast<size_t>(l)].size() ==
                static_cast<size_t>(snap.n_tokens) * static_cast<size_t>(row_bytes),
            STARKV_ERR_CORRUPT_DATA, [&] {
              return "the snapshot's rows of layer " + std::to_string(l) +
                     " do not match its length";
            });
  }
  const int32_t pt = config_.page_tokens;
  const int64_t needed = (static_cast<int64_t>(snap.n_tokens) + pt - 1) / pt;
  require(needed <= pages_.free_count(), STARKV_ERR_POOL_FULL, [&] {
    return "the snapshot needs " + std::to_string(needed) + " free pages but the pool has " +
           std::to_string(pages_.free_count());
  });
  const int32_t id = new_sequence_id();
  Sequence s;
  s.layer_length.assign(static_cast<size_t>(n_layers), snap.n_tokens);
  for (int64_t j = 0; j < needed; ++j) s.pages.push_back(pages_.take());
  try {
    write_snapshot_rows(snap, s);
  } catch (...) {
    for (int32_t page : s.pages) pages_.release(page);  // leave the pool as it was
    throw;
  }
  sequences_.emplace(id, std::move(s));
  ++page_table_version_;
  return id;
}

void CachePool::write_snapshot_rows(const SequenceSnapshot& snap, const Sequence& s) {
  const int32_t pt = config_.page_tokens;
  for (int32_t l = 0; l < profile_->shape.n_layers; ++l) {
    const size_t row_bytes = static_cast<size_t>(snap.row_bytes[static_cast<size_t>(l)]);
    for (int32_t t = 0; t < snap.n_tokens; t += pt) {
      const int32_t count = std::min(pt, snap.n_tokens - t);
      backend_->write_rows(*profile_, *storage_, l, s.pages[static_cast<size_t>(t / pt)], 0,
                           count,
                           snap.layer_rows[static_cast<size_t>(l)].data() +
                               static_cast<size_t>(t) * row_bytes);
    }
  }
}

}  // namespace starkv
