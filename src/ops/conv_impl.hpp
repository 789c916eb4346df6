#pragma once
// Internal: the three computations of a 2-D convolution (forward, input gradient, kernel
// gradient). conv2d checks its arguments and records the gradient; these do the arithmetic, each on
// im2col and the GEMM or on oneDNN's convolution primitives.
#include <cstdint>

#include "../backend/conv_primitive.hpp"
#include "window.hpp"
#include "weft/tensor.hpp"

namespace weft::detail {

struct ConvGeometry {
  Window2d win;                   // over the input; win.kh, win.kw are the kernel's spatial extents
  std::int64_t groups = 1;        // feature_group_count
  std::int64_t in_per_group = 0;  // I = C / groups (kernel axis 2)
  std::int64_t out = 0;           // O (kernel axis 3), a multiple of groups
};

/// Checks x (NHWC), kernel (HWIO) and options the way lax.conv_general_dilated does; throws
/// ShapeError or ValueError naming conv2d, both shapes and the fix.
ConvGeometry conv2d_geometry(const Shape& x, const Shape& kernel, const Conv2dOptions& options);

/// How a pass runs: the faster way for its shapes (what conv2d does), or one way for tests and
/// conv-backends. ConvPath::primitives falls back to im2col where oneDNN has no direct kernel.
enum class ConvPath { chosen, im2col, primitives };

/// The path a pass takes when `path` is asked for: ConvPath::im2col or ConvPath::primitives.
ConvPath conv2d_path(backend::ConvPassKind pass, const ConvGeometry& g, ConvPath path = ConvPath::chosen);

/// y[n, oh, ow, o] = sum over kh, kw, i of x[n, oh*sh - pad_h + kh*dh, ow*sw - pad_w + kw*dw, g*I + i]
/// * kernel[kh, kw, i, o], with g = o / (O / groups) and zeros in the padding. No gradient recorded.
Tensor conv2d_forward(const Tensor& x, const Tensor& kernel, const ConvGeometry& g, ConvPath path = ConvPath::chosen);
/// The gradient with respect to x of sum(dy * conv2d_forward(x, kernel)).
Tensor conv2d_input_grad(const Tensor& dy, const Tensor& kernel, const ConvGeometry& g,
                         ConvPath path = ConvPath::chosen);
/// The gradient with respect to kernel of sum(dy * conv2d_forward(x, kernel)).
Tensor conv2d_kernel_grad(const Tensor& x, const Tensor& dy, const ConvGeometry& g,
                          ConvPath path = ConvPath::chosen);

}  // namespace weft::detail
