// Half and bfloat16 conversions in integer arithmetic (fp16.h): exact, independent of the
// floating-point rounding mode, and for every non-nan input the result the GPU's __float2half_rn /
// __float2bfloat16_rn give, so fp16 latents written by either backend are the same bytes.
#include "core/fp16.h"

#include "core/enum_value.h"

#include <cmath>
#include <cstring>

namespace starkv {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return float_of(sign | 0x7f800000u | (mantissa << 13));  // inf, nan
  if (exponent != 0) return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  return sign ? -magnitude : magnitude;
}

uint16_t float_to_half(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {
    // Inf stays inf. A nan keeps the top 10 bits of its payload, so every half nan survives a
    // round trip through float unchanged; a payload that would truncate to 0 (which would read
    // as inf) becomes the quiet nan.
    if (abs == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    const uint32_t payload = (abs >> 13) & 0x3ffu;
    return static_cast<uint16_t>(sign | 0x7c00u | (payload != 0 ? payload : 0x200u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {
    // The result is subnormal (or zero): round |f| / 2^-24 to an integer, nearest even. Done in
    // integers so it does not depend on the caller's floating-point rounding mode.
    const uint32_t exponent = abs >> 23;  // biased; |f| = m * 2^(exponent - 150)
    if (exponent < 102) return sign;      // |f| < 2^-25: rounds to zero
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exponent;  // 14..24: |f| / 2^-24 = m / 2^shift
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    uint32_t result = m >> shift;
    if (rest > half || (rest == half && (result & 1u))) ++result;  // may carry into the normals
    return static_cast<uint16_t>(sign | result);
  }
  // Normal: drop 13 mantissa bits with round to nearest even; a carry into the exponent is right.
  const uint32_t rebased = abs - (112u << 23);
  const uint32_t lower = rebased & 0x1fffu;
  uint32_t result = rebased >> 13;
  if (lower > 0x1000u || (lower == 0x1000u && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

uint16_t float_to_half_round_up(float f) {
  uint16_t h = float_to_half(f);
  if (f > 0.0f && std::isfinite(f) && half_to_float(h) < f) {
    ++h;  // the next half up (for positive values the bit patterns are ordered)
  }
  return h;
}

float bf16_to_float(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    // A nan keeps its top payload bits (so bf16 -> float -> bf16 is the identity); one whose
    // payload lives only in the dropped low bits becomes quiet rather than turning into inf.
    const uint16_t truncated = static_cast<uint16_t>(u >> 16);
    return (truncated & 0x7fu) != 0 ? truncated : static_cast<uint16_t>(truncated | 0x40u);
  }
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

bool is_valid_dtype(starkv_dtype dtype) {
  return enum_is_one_of(dtype, STARKV_DTYPE_F32, STARKV_DTYPE_F16, STARKV_DTYPE_BF16);
}

float load_as_float(const void* data, starkv_dtype dtype, size_t i) {
  switch (dtype) {
    case STARKV_DTYPE_F32: return static_cast<const float*>(data)[i];
    case STARKV_DTYPE_F16: return half_to_float(static_cast<const uint16_t*>(data)[i]);
    case STARKV_DTYPE_BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
  }
  return 0.0f;
}

void store_from_float(void* data, starkv_dtype dtype, size_t i, float value) {
  switch (dtype) {
    case STARKV_DTYPE_F32: static_cast<float*>(data)[i] = value; break;
    case STARKV_DTYPE_F16: static_cast<uint16_t*>(data)[i] = float_to_half(value); break;
    case STARKV_DTYPE_BF16: static_cast<uint16_t*>(data)[i] = float_to_bf16(value); break;
  }
}

void convert_to_float(const void* data, starkv_dtype dtype, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = load_as_float(data, dtype, i);
}

}  // namespace starkv
