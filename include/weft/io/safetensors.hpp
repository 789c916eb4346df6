#pragma once
// Hugging Face's safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON mapping each tensor's name to its dtype, shape
// and data_offsets (plus an optional "__metadata__" object of string -> string), then the raw
// little-endian tensor data. Tensor names are weft's '/'-joined paths ("params/Dense_0/kernel").
//
//   io::save_safetensors("model.safetensors", variables, {{"epoch", "3"}});
//   const Variables loaded = io::restore(variables, io::load_safetensors("model.safetensors"));
//
// In Python: safetensors.numpy.load_file("model.safetensors")["params/Dense_0/kernel"].
#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "weft/io/data_error.hpp"
#include "weft/variables.hpp"

namespace weft::io {

/// The "__metadata__" of a safetensors file: free-form string -> string pairs.
using SafetensorsMetadata = std::map<std::string, std::string>;

/// Writes every leaf of `variables` (all collections) as dtype F32 or I32, in sorted path order,
/// with the header padded by spaces to a multiple of 8 bytes so that the data is aligned (as the
/// safetensors package does). The save is atomic and durable: the file is written beside `path`
/// under a temporary name, flushed to disk and renamed over `path`, so `path` holds the previous
/// file or the new one, never part of one. A file that cannot be written is a DataError.
void save_safetensors(const std::filesystem::path& path, const Variables& variables,
                      const SafetensorsMetadata& metadata = {});

/// Reads a safetensors file into a Variables, each tensor read straight into its buffer. F32 and
/// I32 tensors load as they are; F16, BF16 and F64 tensors load converted to float32 (F64 values
/// rounded to nearest, those beyond float32's range becoming infinities), since weft computes in
/// float32. Any other dtype, a name that is not a weft path (two or more '/'-joined names), and
/// every kind of corrupt file (truncated, a header that is not JSON or is longer than the file,
/// offsets out of range, overlapping or leaving gaps, a shape whose size disagrees with its byte
/// range) is a DataError naming the file and the tensor.
[[nodiscard]] Variables load_safetensors(const std::filesystem::path& path);

/// The "__metadata__" of a safetensors file (empty when it has none); reads only the header.
[[nodiscard]] SafetensorsMetadata load_safetensors_metadata(const std::filesystem::path& path);

/// The bytes of the file save_safetensors writes (as safetensors.numpy.save).
[[nodiscard]] std::vector<std::byte> to_safetensors_bytes(const Variables& variables,
                                                          const SafetensorsMetadata& metadata = {});
/// load_safetensors from bytes in memory (as safetensors.numpy.load); `name` stands for the file
/// in error messages.
[[nodiscard]] Variables from_safetensors_bytes(std::span<const std::byte> bytes, const std::string& name = "<bytes>");

}  // namespace weft::io
