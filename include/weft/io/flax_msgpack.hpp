#pragma once
// Flax's checkpoint bytes: flax.serialization.to_bytes / from_bytes. A msgpack map of the nested
// state dict (collection -> module -> ... -> leaf), each array a msgpack extension of type 1
// (Flax's _MsgpackExtType.ndarray) whose payload is the msgpack of (shape, dtype name, raw
// C-order bytes); arrays of more than 2^30 bytes (flax.serialization.MAX_CHUNK_SIZE) are split
// into Flax's chunked form {"__msgpack_chunked_array__": true, "shape": {"0": ...},
// "chunks": {"0": ..., ...}}.
//
//   io::save_flax_msgpack("model.msgpack", variables);
//   # Python: variables = flax.serialization.from_bytes(variables, open("model.msgpack", "rb").read())
//
// Where weft differs: weft writes the keys of each map in sorted order (Flax keeps the dict's
// insertion order; from_bytes ignores the order), and empty dicts of a Flax state (an optimizer
// state without leaves) load as nothing, since a Variables holds only leaves.
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "weft/io/data_error.hpp"
#include "weft/variables.hpp"

namespace weft::io {

/// Writes `variables` as flax.serialization.to_bytes does; atomically and durably, as
/// save_safetensors. A file that cannot be written is a DataError.
void save_flax_msgpack(const std::filesystem::path& path, const Variables& variables);

/// Reads the bytes of flax.serialization.to_bytes (or msgpack_serialize) into a Variables: paths
/// are the '/'-joined keys. Arrays (extension type 1), NumPy scalars (type 3, as 0-d tensors) and
/// chunked arrays load; float32 and int32 as they are, float16, bfloat16 and float64 converted to
/// float32; plain msgpack numbers load as 0-d int32 (when they fit) or float32 tensors. Anything
/// else (a truncated or corrupt file, trailing bytes, keys that are not strings, lists, other
/// extension types or dtypes, a shape that disagrees with its bytes) is a DataError naming the
/// file and the path.
[[nodiscard]] Variables load_flax_msgpack(const std::filesystem::path& path);

/// The bytes save_flax_msgpack writes (flax.serialization.to_bytes).
[[nodiscard]] std::vector<std::byte> to_flax_msgpack_bytes(const Variables& variables);
/// load_flax_msgpack from bytes in memory (flax.serialization.msgpack_restore); `name` stands for
/// the file in error messages.
[[nodiscard]] Variables from_flax_msgpack_bytes(std::span<const std::byte> bytes, const std::string& name = "<bytes>");

}  // namespace weft::io
