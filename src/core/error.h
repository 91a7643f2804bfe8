// Errors inside the library are C++ exceptions carrying a starkv_status; the C shims in src/api
// catch them at the boundary and turn them into a status plus the thread's last-error message.
// Nothing thrown here ever crosses the C ABI.
#pragma once

#include <stdexcept>
#include <string>

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

}  // namespace starkv
