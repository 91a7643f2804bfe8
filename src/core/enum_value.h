// Reading a C enum field as the integer the caller stored. A C caller may put any int into an enum
// field; in C++ loading such a value through the enum type is undefined (UBSan flags it), so
// validation reads the bytes as an integer first and only then trusts the enum.
#pragma once

#include <cstdint>
#include <cstring>

namespace starkv {

template <typename Enum>
int32_t enum_value(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "starkv's C enums are int-sized");
  int32_t value;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

// True when the field holds one of the listed enumerators.
template <typename Enum, typename... Allowed>
bool enum_is_one_of(const Enum& field, Allowed... allowed) {
  const int32_t value = enum_value(field);
  return ((value == static_cast<int32_t>(allowed)) || ...);
}

}  // namespace starkv
