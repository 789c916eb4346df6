#pragma once
// Internal: Flax's msgpack writer with the chunk size as a parameter, so that tests can exercise
// the chunked form on small arrays.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "weft/variables.hpp"

namespace weft::io::detail {

/// flax.serialization.MAX_CHUNK_SIZE: arrays of more bytes are written in chunks.
inline constexpr std::uint64_t kFlaxMaxChunkBytes = std::uint64_t{1} << 30;

/// to_flax_msgpack_bytes with arrays of more than `max_chunk_bytes` bytes chunked as Flax's
/// _chunk does, in chunks of max(1, max_chunk_bytes / itemsize) elements.
[[nodiscard]] std::vector<std::byte> flax_msgpack_bytes(const Variables& variables, std::uint64_t max_chunk_bytes);

}  // namespace weft::io::detail
