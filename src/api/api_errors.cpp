// Versions, status strings and the thread-local last error.
#include <string>

#include "api/guard.h"
#include "core/fp16.h"

namespace starkv {
namespace {
thread_local std::string last_error_message;
}

void set_last_error(const std::string& message) { last_error_message = message; }
void clear_last_error() { last_error_message.clear(); }

}  // namespace starkv

extern "C" {

uint32_t starkv_version_number(void) { return STARKV_VERSION_NUMBER; }

const char* starkv_version_string(void) {
#define STARKV_STR2(x) #x
#define STARKV_STR(x) STARKV_STR2(x)
  return STARKV_STR(STARKV_VERSION_MAJOR) "." STARKV_STR(STARKV_VERSION_MINOR) "." STARKV_STR(
      STARKV_VERSION_PATCH);
#undef STARKV_STR
#undef STARKV_STR2
}

uint32_t starkv_abi_version(void) { return STARKV_ABI_VERSION; }

const char* starkv_status_string(starkv_status status) {
  switch (status) {
    case STARKV_OK: return "ok";
    case STARKV_ERR_INVALID_ARGUMENT: return "invalid argument";
    case STARKV_ERR_NULL_HANDLE: return "null handle";
    case STARKV_ERR_SIZE_MISMATCH: return "size mismatch";
    case STARKV_ERR_DTYPE: return "unsupported dtype";
    case STARKV_ERR_OUT_OF_MEMORY: return "out of memory";
    case STARKV_ERR_POOL_FULL: return "pool full";
    case STARKV_ERR_UNKNOWN_SEQUENCE: return "unknown sequence";
    case STARKV_ERR_POSITION: return "position out of order";
    case STARKV_ERR_CORRUPT_DATA: return "corrupt data";
    case STARKV_ERR_FORMAT: return "not a starkv file of this kind";
    case STARKV_ERR_VERSION: return "unsupported format version";
    case STARKV_ERR_PROFILE_MISMATCH: return "profile mismatch";
    case STARKV_ERR_IO: return "I/O error";
    case STARKV_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case STARKV_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case STARKV_ERR_UNSUPPORTED: return "unsupported";
    case STARKV_ERR_NUMERICAL: return "numerical failure";
    case STARKV_ERR_CANCELLED: return "cancelled";
    case STARKV_ERR_INVALID_STATE: return "invalid state";
    case STARKV_ERR_BACKEND: return "backend error";
    case STARKV_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* starkv_last_error(void) { return starkv::last_error_message.c_str(); }

void starkv_clear_error(void) { starkv::clear_last_error(); }

size_t starkv_dtype_size(starkv_dtype dtype) {
  switch (dtype) {
    case STARKV_DTYPE_F32: return 4;
    case STARKV_DTYPE_F16: return 2;
    case STARKV_DTYPE_BF16: return 2;
  }
  return 0;
}

}  // extern "C"
