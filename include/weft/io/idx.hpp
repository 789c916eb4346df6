#pragma once
// Readers for IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic
// 0x0000TTNN with element type TT and NN dimensions, then NN 32-bit extents) and the elements in
// row-major order. Files may be gzip-compressed (detected by the gzip magic 1f 8b, not by name).
// A gzip file must be complete: every member ends with its trailer, whose CRC-32 and length are
// checked. Several members are read one after another, as gzip does; any other bytes after the
// compressed data are a DataError (gzip merely warns of "trailing garbage").
#include <cstdint>
#include <filesystem>
#include <vector>

#include "weft/io/data_error.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// IDX magic numbers of unsigned-byte files: 1-D labels and 3-D images.
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;
inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;

/// The raw content of an unsigned-byte IDX file.
struct IdxData {
  std::vector<std::int64_t> dims;   // extents from the header, outermost first
  std::vector<std::uint8_t> bytes;  // product(dims) elements, row-major
};

/// Reads an unsigned-byte IDX file (type 0x08) of any rank, gzip-compressed or not.
[[nodiscard]] IdxData read_idx(const std::filesystem::path& path);

/// Reads an images file (magic 0x00000803, [n, rows, cols]) as float32 [n, rows, cols, 1],
/// each byte divided by 255 (so 0 -> 0.0f and 255 -> 1.0f exactly).
[[nodiscard]] Tensor read_idx_images(const std::filesystem::path& path);

/// Reads a labels file (magic 0x00000801, [n]) as int32 [n].
[[nodiscard]] Tensor read_idx_labels(const std::filesystem::path& path);

/// Images and their labels, row i of one belonging to row i of the other.
struct LabeledImages {
  Tensor images;  // float32 [n, rows, cols, 1]
  Tensor labels;  // int32 [n]
};

/// Reads an images file and its labels file; throws DataError naming both files when their
/// counts of examples disagree.
[[nodiscard]] LabeledImages read_idx_pair(const std::filesystem::path& images_path,
                                          const std::filesystem::path& labels_path);

}  // namespace weft::io
