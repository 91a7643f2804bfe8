// Errors inside the library are C++ exceptions carrying a starkv_status; the C shims in src/api
// catch them at the boundary and turn them into a status plus the thread's last-error message.
// Nothing thrown here ever crosses the C ABI.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "starkv/starkv.h"

namespace starkv {

class Error : public std::runtime_error {
 public:
  Error(starkv_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  starkv_status status() const { return status_; }

 private:
  starkv_status status_;
};

// Throws Error(status, message) when the condition is false. Used for argument validation.
inline void require(bool condition, starkv_status status, const std::string& message) {
  if (!condition) throw Error(status, message);
}

// The same with the message built only on failure: make_message() returns it. Checks that run per
// token or per query of a decode step take this form, so that a passing check costs a comparison
// and not the string concatenations of its message (a 16-token append's checks built several
// hundred strings per call).
template <typename MakeMessage,
          typename = std::enable_if_t<std::is_invocable_r_v<std::string, MakeMessage>>>
inline void require(bool condition, starkv_status status, MakeMessage&& make_message) {
  if (!condition) throw Error(status, make_message());
}

}  // namespace starkv
