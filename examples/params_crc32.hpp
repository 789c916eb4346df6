#pragma once
// The checksum that weft-train and checkpoint-resume print on their final line, so that a test can
// compare two runs' parameters (or two ranks') bit for bit.
#include <zlib.h>

#include <cstdint>
#include <vector>

#include "weft/variables.hpp"

namespace examples {

/// CRC-32 of the parameters: each leaf's path and its float32 bytes, in path order.
inline std::uint32_t params_crc32(const weft::Variables& variables) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& [path, t] : variables.collection("params").leaves()) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(path.data()), static_cast<uInt>(path.size()));
    const std::vector<float> v = t.to_vector();
    crc = crc32(crc, reinterpret_cast<const Bytef*>(v.data()), static_cast<uInt>(v.size() * sizeof(float)));
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace examples
