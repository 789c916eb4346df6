#pragma once
// Internal: int64 arithmetic that reports overflow instead of wrapping (signed overflow is
// undefined behaviour). Every element count, byte size and extent computed from user input goes
// through these.
#include <cstdint>
#include <optional>
#include <span>

namespace weft::detail {

[[nodiscard]] constexpr std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

[[nodiscard]] constexpr std::optional<std::int64_t> checked_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) return std::nullopt;
  return r;
}

[[nodiscard]] constexpr std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// The product of non-negative `extents` (1 for none), or nullopt when the product of the non-zero
/// ones does not fit in int64. Zeros are skipped in the check, as NumPy does, so that every partial
/// product (a stride) of an accepted shape fits too, whatever the order of the axes.
[[nodiscard]] constexpr std::optional<std::int64_t> checked_product(std::span<const std::int64_t> extents) noexcept {
  std::int64_t nonzero = 1;
  bool any_zero = false;
  for (const std::int64_t e : extents) {
    if (e == 0) {
      any_zero = true;
      continue;
    }
    const auto p = checked_mul(nonzero, e);
    if (!p) return std::nullopt;
    nonzero = *p;
  }
  return any_zero ? 0 : nonzero;
}

}  // namespace weft::detail
