#pragma once
// Internal: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord files,
// and TFRecord's masked form of it. Table-driven, one byte at a time: event files are small.
#include <array>
#include <cstdint>
#include <string_view>

namespace weft::training::detail {

inline constexpr std::array<std::uint32_t, 256> kCrc32cTable = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1U) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;
    table[i] = c;
  }
  return table;
}();

[[nodiscard]] constexpr std::uint32_t crc32c(std::string_view bytes) noexcept {
  std::uint32_t crc = 0xFFFFFFFFU;
  for (const char ch : bytes) crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFU;
}

/// TFRecord stores CRCs rotated and offset, because a CRC of data that holds CRCs is weak.
[[nodiscard]] constexpr std::uint32_t masked_crc32c(std::string_view bytes) noexcept {
  const std::uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8U;
}

}  // namespace weft::training::detail
