// How many OpenMP threads a CPU loop may use (1 when the library is built without OpenMP).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace starkv {

inline int worker_threads(int requested) {
  if (requested > 0) return requested;
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}

}  // namespace starkv
