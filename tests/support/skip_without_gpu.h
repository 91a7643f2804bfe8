// GPU tests skip (GoogleTest SKIP, reported by ctest as skipped, not passed) where no CUDA device
// is present or starkv was built without the CUDA backend.
#pragma once

#include <gtest/gtest.h>

#include "starkv/starkv.h"

#define SKIP_WITHOUT_GPU()                                             \
  do {                                                                 \
    if (!starkv_backend_available(STARKV_BACKEND_CUDA)) {              \
      GTEST_SKIP() << "no CUDA device (or starkv built without CUDA)"; \
    }                                                                  \
  } while (0)
