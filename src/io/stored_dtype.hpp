#pragma once
// Internal: the element types that checkpoint files may hold and how each loads into weft's
// float32 / int32 tensors. safetensors and Flax's msgpack name them differently ("F16",
// "float16"); both load the same way.
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "weft/dtype.hpp"

namespace weft::io::detail {

static_assert(std::endian::native == std::endian::little,
              "weft's checkpoint readers and writers copy little-endian data as it is in memory");

enum class StoredType : std::uint8_t { float32, int32, float16, bfloat16, float64 };

struct StoredDType {
  StoredType type;
  std::string_view safetensors_name;
  std::string_view numpy_name;
  std::size_t itemsize;
};

inline constexpr std::array<StoredDType, 5> kStoredDTypes{{
    {StoredType::float32, "F32", "float32", 4},
    {StoredType::int32, "I32", "int32", 4},
    {StoredType::float16, "F16", "float16", 2},
    {StoredType::bfloat16, "BF16", "bfloat16", 2},
    {StoredType::float64, "F64", "float64", 8},
}};

/// What error messages say weft can load.
inline constexpr std::string_view kLoadableSafetensors =
    "weft loads F32 and I32, and F16, BF16 and F64 converted to float32";
inline constexpr std::string_view kLoadableNumpy =
    "weft loads float32 and int32, and float16, bfloat16 and float64 converted to float32";

[[nodiscard]] inline const StoredDType* find_safetensors_dtype(std::string_view name) noexcept {
  for (const auto& d : kStoredDTypes)
    if (d.safetensors_name == name) return &d;
  return nullptr;
}
[[nodiscard]] inline const StoredDType* find_numpy_dtype(std::string_view name) noexcept {
  for (const auto& d : kStoredDTypes)
    if (d.numpy_name == name) return &d;
  return nullptr;
}
[[nodiscard]] inline const StoredDType& stored_dtype_of(DType d) noexcept {
  return kStoredDTypes[d == DType::float32 ? 0 : 1];
}

/// The dtype a stored type loads as: int32 stays int32, every float type becomes float32.
[[nodiscard]] constexpr DType loaded_dtype(StoredType t) noexcept {
  return t == StoredType::int32 ? DType::int32 : DType::float32;
}

/// IEEE binary16 to float32, exactly (every half is a float).
[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// Decodes `count` elements of type `from` at `src` into `dst` (float32 or int32, loaded_dtype).
inline void decode(StoredType from, const std::byte* src, std::size_t count, std::byte* dst) noexcept {
  if (count == 0) return;  // empty arrays may have null pointers, which memcpy must not see
  switch (from) {
    case StoredType::float32:
    case StoredType::int32: std::memcpy(dst, src, count * 4); return;
    case StoredType::float16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h = 0;
        std::memcpy(&h, src + 2 * i, 2);
        const float f = half_to_float(h);
        std::memcpy(dst + 4 * i, &f, 4);
      }
      return;
    case StoredType::bfloat16:  // the upper half of a float32
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h = 0;
        std::memcpy(&h, src + 2 * i, 2);
        const std::uint32_t bits = std::uint32_t{h} << 16;
        std::memcpy(dst + 4 * i, &bits, 4);
      }
      return;
    case StoredType::float64:  // rounded to nearest; beyond float32's range: infinity
      for (std::size_t i = 0; i < count; ++i) {
        double d = 0;
        std::memcpy(&d, src + 8 * i, 8);
        // Above the midpoint of FLT_MAX and 2^128 a double rounds to infinity.
        const float f = std::isfinite(d) && std::fabs(d) > 0x1.fffffefffffffp127 ? (d > 0 ? INFINITY : -INFINITY)
                                                                                  : static_cast<float>(d);
        std::memcpy(dst + 4 * i, &f, 4);
      }
      return;
  }
}

}  // namespace weft::io::detail
