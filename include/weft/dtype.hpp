#pragma once
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace weft {

/// Element types. float32 for values; int32 for labels, indices and comparison masks (0 or 1).
enum class DType : std::uint8_t { float32, int32 };

[[nodiscard]] constexpr std::string_view name(DType d) noexcept {
  return d == DType::float32 ? "float32" : "int32";
}

template <class T>
inline constexpr bool is_element_type = std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>;

template <class T>
[[nodiscard]] constexpr DType dtype_of() noexcept {
  static_assert(is_element_type<T>, "weft tensors hold float or std::int32_t elements");
  return std::is_same_v<T, float> ? DType::float32 : DType::int32;
}

}  // namespace weft
