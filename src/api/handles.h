// What the opaque C handles hold. Each wraps C++ objects from src/core; shared ownership lets a
// pool keep its profile and its context's backend alive after the caller destroys them.
#pragma once

#include <memory>

#include "core/backend.h"
#include "core/cache_pool.h"
#include "core/decode_step.h"
#include "core/profile.h"
#include "core/profile_builder.h"
#include "starkv/starkv.h"

struct starkv_context {
  starkv_context_params params;
  std::shared_ptr<starkv::Backend> backend;
};

struct starkv_profile {
  std::shared_ptr<const starkv::Profile> profile;
};

struct starkv_profile_builder {
  std::unique_ptr<starkv::ProfileBuilder> builder;
};

struct starkv_cache_pool {
  std::shared_ptr<starkv::CachePool> pool;  // decode steps share it
};

struct starkv_decode_step {
  std::unique_ptr<starkv::DecodeStep> step;
};
