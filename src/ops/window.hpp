#pragma once
// Internal: the geometry of a 2-D window op (convolution, pooling) over an NHWC input.
#include "../format.hpp"
#include <cstdint>
#include <vector>

#include "weft/ops.hpp"

namespace weft::detail {

/// Sizes, strides, dilation and low padding of a window sliding over the spatial axes of an NHWC
/// input, with the output extents they give; checked and resolved by `window2d`.
struct Window2d {
  std::int64_t n = 0, h = 0, w = 0, c = 0;  // input extents
  std::int64_t kh = 1, kw = 1;              // window extents
  std::int64_t sh = 1, sw = 1;              // strides
  std::int64_t dh = 1, dw = 1;              // window dilation
  std::int64_t pad_h = 0, pad_w = 0;        // low (top, left) padding; the high side follows from oh, ow
  std::int64_t oh = 0, ow = 0;              // output extents

  [[nodiscard]] std::int64_t rows() const noexcept { return n * oh * ow; }
  /// The input row under window row `k` of output row `o`; outside [0, h) it lies in the padding.
  [[nodiscard]] std::int64_t in_row(std::int64_t o, std::int64_t k) const noexcept { return o * sh - pad_h + k * dh; }
  [[nodiscard]] std::int64_t in_col(std::int64_t o, std::int64_t k) const noexcept { return o * sw - pad_w + k * dw; }
  /// The window has no padding and stride 1 everywhere: output pixels are input pixels.
  [[nodiscard]] bool is_pointwise() const noexcept {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pad_h == 0 && pad_w == 0 && oh == h && ow == w;
  }
};

/// (window - 1) * dilation + 1, the input positions a dilated window spans; ValueError naming `op`
/// when that overflows int64.
std::int64_t dilated_extent(std::int64_t window, std::int64_t dilation, const char* op);

/// The window geometry of `op` for an NHWC input of shape `x` (rank 4). `strides` and `dilation`
/// have one entry per spatial axis. Throws ValueError or ShapeError naming `op` (through
/// Padding::resolve) when an option is out of range or the window does not fit the padded input.
Window2d window2d(const Shape& x, std::int64_t kh, std::int64_t kw, const std::vector<std::int64_t>& strides,
                  const Padding& padding, const std::vector<std::int64_t>& dilation, const char* op);


}  // namespace weft::detail
