// The boundary between the C ABI and the C++ inside: every public function runs its body through
// guarded(), which clears this thread's last error, catches every exception and turns it into a
// status plus a message. Nothing thrown inside ever crosses into the caller.
#pragma once

#include <cstring>
#include <new>
#include <string>

#include "core/error.h"
#include "starkv/starkv.h"

namespace starkv {

void set_last_error(const std::string& message);
void clear_last_error();

template <class Body>
starkv_status guarded(const char* function, Body&& body) noexcept {
  clear_last_error();
  try {
    body();
    return STARKV_OK;
  } catch (const Error& e) {
    set_last_error(std::string(function) + ": " + e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(function) + ": out of host memory");
    return STARKV_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string(function) + ": internal error: " + e.what());
    return STARKV_ERR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(function) + ": internal error (unknown exception)");
    return STARKV_ERR_INTERNAL;
  }
}

// Copies the caller's params struct over the defaults: the caller's struct_size says how many
// bytes its program knows of (an older program knows fewer fields; the rest keep their defaults).
// A struct larger than ours comes from a newer header than this library.
template <class Params>
Params merge_params(const Params* user, Params defaults, const char* name) {
  if (user == nullptr) return defaults;
  require(user->struct_size >= sizeof(size_t), STARKV_ERR_SIZE_MISMATCH,
          std::string(name) + ".struct_size is not set (use the *_default() initializer)");
  require(user->struct_size <= sizeof(Params), STARKV_ERR_SIZE_MISMATCH,
          std::string(name) + ".struct_size " + std::to_string(user->struct_size) +
              " is larger than this library's " + std::to_string(sizeof(Params)) +
              " (the program was built against a newer starkv)");
  std::memcpy(static_cast<void*>(&defaults), user, user->struct_size);
  defaults.struct_size = sizeof(Params);
  return defaults;
}

template <class Handle>
void require_handle(const Handle* handle, const char* name) {
  require(handle != nullptr, STARKV_ERR_NULL_HANDLE, std::string(name) + " is NULL");
}

inline void require_out(const void* out, const char* name) {
  require(out != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          std::string("output pointer ") + name + " is NULL");
}

}  // namespace starkv
