#include "weft/core/conv.hpp"

#include <algorithm>
#include <limits>
#include <vector>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "../format.hpp"
#include "messages.hpp"
#include "../tensor_impl.hpp"

namespace weft::core {

namespace {

using detail::in_scope;

using weft::detail::extents_str;
using Pairs = std::vector<std::pair<std::int64_t, std::int64_t>>;

/// A per-axis option: one entry applies to every spatial axis (Flax's int), else one per axis.
std::vector<std::int64_t> per_axis(const std::vector<std::int64_t>& v, std::size_t rank, const char* what,
                                   const char* op, const std::string& where) {
  if (v.size() == 1) return std::vector<std::int64_t>(rank, v[0]);
  if (v.size() != rank)
    throw ValueError(fmt::format("weft::{}: {} {} must have one entry (the same along every axis) or one per spatial "
                                 "axis ({}){}",
                                 op, what, extents_str(v), rank, where));
  return v;
}

/// x (batch..., spatial (r axes)..., channels) flattened to (batch, spatial..., channels), one batch
/// axis added for a single example; and the leading axes to restore.
std::pair<Tensor, std::vector<std::int64_t>> with_one_batch_axis(const Tensor& x, std::size_t r) {
  const int rank = x.rank(), lead = rank - static_cast<int>(r) - 1;
  std::vector<std::int64_t> batch(x.shape().begin(), x.shape().begin() + lead);
  std::int64_t n = 1;
  for (const std::int64_t b : batch) n *= b;
  std::vector<std::int64_t> dims{n};
  dims.insert(dims.end(), x.shape().begin() + lead, x.shape().end());
  return {lead == 1 ? x : reshape(x, dims), batch};
}

/// y (batch, spatial..., channels) with the leading axes of the input put back.
Tensor restore_batch(const Tensor& y, const std::vector<std::int64_t>& batch) {
  if (batch.size() == 1) return y;
  std::vector<std::int64_t> dims = batch;
  dims.insert(dims.end(), y.shape().begin() + 1, y.shape().end());
  return reshape(y, dims);
}

/// (low, high) padding of one spatial axis, with the window's dilated extent checked to fit.
std::int64_t fitted_outputs(std::int64_t in, std::pair<std::int64_t, std::int64_t> pad, std::int64_t window,
                            std::int64_t stride, std::int64_t dilation, const Tensor& x, const char* op) {
  const std::int64_t span = (window - 1) * dilation + 1, padded = in + pad.first + pad.second;
  if (span > padded)
    throw ShapeError(fmt::format("weft::{}: the window's extent {} along the first spatial axis is larger than the "
                                 "padded input extent {} (input {}); use a smaller window or dilation, or pad more "
                                 "(\"SAME\" always fits)",
                                 op, span, padded, x.shape().str()));
  return (padded - span) / stride + 1;
}

/// Depth windows of a (batch, depth, rest...) tensor: for each window position k, the strided
/// slice of the depth-padded tensor that output depth d reads at d * stride + k * dilation.
std::vector<Tensor> depth_taps(const Tensor& x, std::pair<std::int64_t, std::int64_t> pad, std::int64_t window,
                               std::int64_t stride, std::int64_t dilation, std::int64_t outputs, float pad_value) {
  std::vector<Tensor> parts;
  auto filler = [&](std::int64_t extent) {
    std::vector<std::int64_t> dims = x.shape().to_vector();
    dims[1] = extent;
    return full(Shape(dims), pad_value);
  };
  if (pad.first > 0) parts.push_back(filler(pad.first));
  parts.push_back(x);
  if (pad.second > 0) parts.push_back(filler(pad.second));
  const Tensor padded = parts.size() == 1 ? x : concat(parts, 1);
  std::vector<Tensor> taps;
  for (std::int64_t k = 0; k < window; ++k) {
    std::vector<std::int64_t> start(static_cast<std::size_t>(x.rank()), 0), limit = padded.shape().to_vector(),
        strides(static_cast<std::size_t>(x.rank()), 1);
    start[1] = k * dilation;
    limit[1] = start[1] + (outputs - 1) * stride + 1;
    strides[1] = stride;
    taps.push_back(slice(padded, start, limit, strides));
  }
  return taps;
}

/// (n, d, rest...) <-> (n * d, rest...).
Tensor merge_depth(const Tensor& t) {
  std::vector<std::int64_t> dims{t.shape()[0] * t.shape()[1]};
  dims.insert(dims.end(), t.shape().begin() + 2, t.shape().end());
  return reshape(t, dims);
}
Tensor split_depth(const Tensor& t, std::int64_t n) {
  std::vector<std::int64_t> dims{n, t.shape()[0] / n};
  dims.insert(dims.end(), t.shape().begin() + 1, t.shape().end());
  return reshape(t, dims);
}

/// The spatial extents of x (batch, spatial..., channels).
std::vector<std::int64_t> spatial_of(const Tensor& x) {
  return std::vector<std::int64_t>(x.shape().begin() + 1, x.shape().end() - 1);
}

/// lax.conv_general_dilated over 1, 2 or 3 spatial axes of x (batch, spatial..., C) with kernel
/// (spatial..., C / groups, O). 1-D is conv2d over a height of 1; 3-D sums, over the kernel's depth,
/// the conv2d of the strided depth slices of the zero-padded input with that depth's kernel.
Tensor conv_nd(const Tensor& x, const Tensor& kernel, const std::vector<std::int64_t>& strides,
               const Padding& padding, const std::vector<std::int64_t>& dilation, std::int64_t groups) {
  const std::size_t r = static_cast<std::size_t>(kernel.rank() - 2);
  const std::vector<std::int64_t> window(kernel.shape().begin(), kernel.shape().begin() + static_cast<int>(r));
  const Pairs pads = padding.resolve(spatial_of(x), window, strides, dilation, "core::conv");
  const std::int64_t in = kernel.shape()[kernel.rank() - 2], out = kernel.shape()[kernel.rank() - 1];
  if (r == 2)
    return conv2d(x, kernel, Conv2dOptions{.strides = strides, .padding = pads, .dilation = dilation,
                                           .feature_group_count = groups});
  if (r == 1) {
    const std::int64_t n = x.shape()[0], w = x.shape()[1], c = x.shape()[2];
    const Tensor y = conv2d(reshape(x, {n, 1, w, c}), reshape(kernel, {1, window[0], in, out}),
                            Conv2dOptions{.strides = {1, strides[0]},
                                          .padding = Pairs{{0, 0}, pads[0]},
                                          .dilation = {1, dilation[0]},
                                          .feature_group_count = groups});
    return reshape(y, {n, y.shape()[2], out});
  }
  const std::int64_t n = x.shape()[0];
  const std::int64_t depth_out = fitted_outputs(x.shape()[1], pads[0], window[0], strides[0], dilation[0], x, "core::conv");
  const std::vector<Tensor> taps = depth_taps(x, pads[0], window[0], strides[0], dilation[0], depth_out, 0.0f);
  Tensor y;
  for (std::int64_t k = 0; k < window[0]; ++k) {
    const Tensor kk = reshape(slice_axis(kernel, 0, k, k + 1), {window[1], window[2], in, out});
    const Tensor yk = conv2d(merge_depth(taps[static_cast<std::size_t>(k)]), kk,
                             Conv2dOptions{.strides = {strides[1], strides[2]},
                                           .padding = Pairs{pads[1], pads[2]},
                                           .dilation = {dilation[1], dilation[2]},
                                           .feature_group_count = groups});
    y = k == 0 ? yk : y + yk;
  }
  return split_depth(y, n);
}

/// x (batch, spatial..., C) with stride - 1 zeros between the elements of each spatial axis
/// (lax's lhs_dilation), from ops so that the gradient takes the elements back.
Tensor dilate_input(const Tensor& x, const std::vector<std::int64_t>& strides) {
  Tensor y = x;
  for (std::size_t i = 0; i < strides.size(); ++i) {
    const std::int64_t s = strides[i];
    if (s == 1) continue;
    const int axis = static_cast<int>(i) + 1;
    const std::int64_t n = y.shape()[axis];
    if (n == 0) continue;
    std::vector<std::int64_t> dims = y.shape().to_vector();
    dims.insert(dims.begin() + axis + 1, 1);
    const Tensor expanded = reshape(y, dims);
    dims[static_cast<std::size_t>(axis + 1)] = s - 1;
    std::vector<std::int64_t> joined = y.shape().to_vector();
    joined[static_cast<std::size_t>(axis)] = n * s;
    y = slice_axis(reshape(concat({expanded, zeros(Shape(dims))}, axis + 1), joined), axis, 0, (n - 1) * s + 1);
  }
  return y;
}

/// `t` reversed along `axis` (a gather of rows, so the gradient flows back).
Tensor flip_axis(const Tensor& t, int axis) {
  const std::int64_t n = t.shape()[axis];
  std::vector<int> perm(static_cast<std::size_t>(t.rank()));
  for (int i = 0; i < t.rank(); ++i) perm[static_cast<std::size_t>(i)] = i;
  std::swap(perm[0], perm[static_cast<std::size_t>(axis)]);
  std::vector<std::int32_t> rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(n - 1 - i);
  return transpose(take(transpose(t, perm), Tensor(rows, Shape{n})), perm);  // a swap is its own inverse
}

enum class PoolKind { max, avg };

/// Pooling over 1, 2 or 3 spatial axes of x (batch, spatial..., C), as conv_nd reduces them to the
/// 2-D op: max and sum are separable, so 3-D pools each depth slice in 2-D, then combines the depth
/// taps (-inf padding for max; zeros and the count of depth positions inside the input for avg).
Tensor pool_nd(const Tensor& x, const std::vector<std::int64_t>& window, const std::vector<std::int64_t>& strides,
               const Padding& padding, bool count_include_pad, PoolKind kind) {
  const std::size_t r = window.size();
  const char* op = kind == PoolKind::max ? "core::max_pool" : "core::avg_pool";
  const std::vector<std::int64_t> ones_(r, 1);
  const Pairs pads = padding.resolve(spatial_of(x), window, strides, ones_, op);
  auto pool2d = [&](const Tensor& t, std::vector<std::int64_t> w, std::vector<std::int64_t> s, Pairs p) {
    const PoolOptions o{.window = std::move(w), .strides = std::move(s), .padding = std::move(p),
                        .count_include_pad = count_include_pad};
    return kind == PoolKind::max ? weft::max_pool(t, o) : weft::avg_pool(t, o);
  };
  if (r == 2) return pool2d(x, window, strides, pads);
  if (r == 1) {
    const std::int64_t n = x.shape()[0], w = x.shape()[1], c = x.shape()[2];
    const Tensor y = pool2d(reshape(x, {n, 1, w, c}), {1, window[0]}, {1, strides[0]}, Pairs{{0, 0}, pads[0]});
    return reshape(y, {n, y.shape()[2], c});
  }
  const std::int64_t n = x.shape()[0], depth = x.shape()[1];
  const std::int64_t depth_out = fitted_outputs(depth, pads[0], window[0], strides[0], 1, x, op);
  const Tensor planes = split_depth(pool2d(merge_depth(x), {window[1], window[2]}, {strides[1], strides[2]},
                                           Pairs{pads[1], pads[2]}),
                                    n);
  const float pad_value = kind == PoolKind::max ? -std::numeric_limits<float>::infinity() : 0.0f;
  const std::vector<Tensor> taps = depth_taps(planes, pads[0], window[0], strides[0], 1, depth_out, pad_value);
  Tensor y = taps[0];
  // max: the earlier depth wins a tie (where, not maximum, which splits a tied gradient), so the
  // gradient goes to the first maximum in (depth, height, width) order, as for 2-D.
  for (std::size_t k = 1; k < taps.size(); ++k)
    y = kind == PoolKind::max ? where(y >= taps[k], y, taps[k]) : y + taps[k];
  if (kind == PoolKind::max) return y;
  if (count_include_pad) return y / static_cast<float>(window[0]);
  // The depth positions of each output inside the input (the 2-D pool divided by its own count).
  std::vector<float> counts(static_cast<std::size_t>(depth_out));
  for (std::int64_t d = 0; d < depth_out; ++d) {
    const std::int64_t lo = d * strides[0] - pads[0].first;
    counts[static_cast<std::size_t>(d)] =
        static_cast<float>(std::min(lo + window[0], depth) - std::max<std::int64_t>(lo, 0));
  }
  return y / Tensor(counts, Shape{1, depth_out, 1, 1, 1});
}

/// Flax's pool: inputs (batch..., spatial..., features) with one spatial axis per window entry,
/// batch axes flattened (a single example gets one and loses it again).
Tensor pool(const Tensor& x, const std::vector<std::int64_t>& window_shape, const std::vector<std::int64_t>& strides,
            const Padding& padding, bool count_include_pad, PoolKind kind) {
  const char* op = kind == PoolKind::max ? "core::max_pool" : "core::avg_pool";
  weft::detail::require_float(x, op);
  const std::size_t r = window_shape.size();
  if (r < 1 || r > 3)
    throw ValueError(fmt::format("weft::{}: window_shape {} must have 1, 2 or 3 entries, one per spatial axis", op,
                                 extents_str(window_shape)));
  if (x.rank() < static_cast<int>(r) + 1)
    throw ShapeError(fmt::format("weft::{}: the input {} has fewer than the {} spatial axes of window_shape {} and a "
                                 "features axis; give (batch..., spatial..., features)",
                                 op, x.shape().str(), r, extents_str(window_shape)));
  const std::vector<std::int64_t> s = strides.empty() ? std::vector<std::int64_t>(r, 1) : strides;
  if (s.size() != r)
    throw ValueError(fmt::format("weft::{}: strides {} must have one entry per entry of window_shape {}", op,
                                 extents_str(s), extents_str(window_shape)));
  const bool single = x.rank() == static_cast<int>(r) + 1;
  std::vector<std::int64_t> dims{1};
  dims.insert(dims.end(), x.shape().begin(), x.shape().end());
  const Tensor batched = single ? reshape(x, dims) : x;
  auto [flat, batch] = with_one_batch_axis(batched, r);
  const Tensor y = restore_batch(pool_nd(flat, window_shape, s, padding, count_include_pad, kind), batch);
  if (!single) return y;
  return reshape(y, std::vector<std::int64_t>(y.shape().begin() + 1, y.shape().end()));
}

}  // namespace

Tensor conv_fn::operator()(const ConvOptions& options, Scope& scope, const Tensor& x) const {
  const std::int64_t features = options.features;
  const std::vector<std::int64_t>& kernel_size = options.kernel_size;
  const std::int64_t groups = options.feature_group_count;
  if (features <= 0)
    throw ValueError(fmt::format("weft::core::conv: features must be positive, got {}{}", features, in_scope(scope)));
  if (kernel_size.empty() || kernel_size.size() > 3 ||
      std::ranges::any_of(kernel_size, [](std::int64_t k) { return k <= 0; }))
    throw ValueError(fmt::format("weft::core::conv: kernel_size must be one, two or three positive extents (the "
                                 "spatial axes: width; height, width; or depth, height, width), got {}{}",
                                 extents_str(kernel_size), in_scope(scope)));
  const std::size_t r = kernel_size.size();
  if (groups < 1)
    throw ValueError(
        fmt::format("weft::core::conv: feature_group_count must be >= 1, got {}{}", groups, in_scope(scope)));
  const std::vector<std::int64_t> strides = per_axis(options.strides, r, "strides", "core::conv", in_scope(scope));
  const std::vector<std::int64_t> dilation =
      per_axis(options.kernel_dilation, r, "kernel_dilation", "core::conv", in_scope(scope));
  weft::detail::require_float(x, "core::conv");
  if (x.rank() < static_cast<int>(r) + 1)
    throw ShapeError(fmt::format("weft::core::conv: the input must be (batch..., spatial..., channels) or "
                                 "(spatial..., channels) with {} spatial axes (kernel_size {}), got shape {}{}",
                                 r, extents_str(kernel_size), x.shape().str(), in_scope(scope)));
  const std::int64_t in = x.shape()[x.rank() - 1];
  if (in % groups != 0 || features % groups != 0)
    throw ValueError(fmt::format("weft::core::conv: feature_group_count {} must divide both the input channels ({}) "
                                 "and features ({}){}",
                                 groups, in, features, in_scope(scope)));
  std::vector<std::int64_t> kernel_dims = kernel_size;
  kernel_dims.insert(kernel_dims.end(), {in / groups, features});
  const Tensor kernel = scope.param("kernel", options.kernel_init, Shape(kernel_dims));

  // One batch axis: added for a single example (as Flax), batch axes flattened into one otherwise.
  const bool single = x.rank() == static_cast<int>(r) + 1;
  std::vector<std::int64_t> dims{1};
  dims.insert(dims.end(), x.shape().begin(), x.shape().end());
  auto [flat, batch] = with_one_batch_axis(single ? reshape(x, dims) : x, r);
  Tensor y = restore_batch(conv_nd(flat, kernel, strides, options.padding, dilation, groups), batch);
  if (single) y = reshape(y, std::vector<std::int64_t>(y.shape().begin() + 1, y.shape().end()));
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{features});
  return y;
}

Tensor conv_transpose_fn::operator()(const ConvTransposeOptions& options, Scope& scope, const Tensor& x) const {
  const std::int64_t features = options.features;
  const std::vector<std::int64_t>& kernel_size = options.kernel_size;
  if (features <= 0)
    throw ValueError(
        fmt::format("weft::core::conv_transpose: features must be positive, got {}{}", features, in_scope(scope)));
  if (kernel_size.empty() || kernel_size.size() > 3 ||
      std::ranges::any_of(kernel_size, [](std::int64_t k) { return k <= 0; }))
    throw ValueError(fmt::format("weft::core::conv_transpose: kernel_size must be one, two or three positive extents "
                                 "(the spatial axes), got {}{}",
                                 extents_str(kernel_size), in_scope(scope)));
  const std::size_t r = kernel_size.size();
  const std::vector<std::int64_t> strides =
      per_axis(options.strides, r, "strides", "core::conv_transpose", in_scope(scope));
  const std::vector<std::int64_t> dilation =
      per_axis(options.kernel_dilation, r, "kernel_dilation", "core::conv_transpose", in_scope(scope));
  for (const auto* v : {&strides, &dilation})
    if (std::ranges::any_of(*v, [](std::int64_t e) { return e <= 0; }))
      throw ValueError(fmt::format("weft::core::conv_transpose: strides and kernel_dilation must be positive, got {} "
                                   "and {}{}",
                                   extents_str(strides), extents_str(dilation), in_scope(scope)));
  weft::detail::require_float(x, "core::conv_transpose");
  if (x.rank() < static_cast<int>(r) + 1)
    throw ShapeError(fmt::format("weft::core::conv_transpose: the input must be (batch..., spatial..., channels) or "
                                 "(spatial..., channels) with {} spatial axes (kernel_size {}), got shape {}{}",
                                 r, extents_str(kernel_size), x.shape().str(), in_scope(scope)));
  const std::int64_t in = x.shape()[x.rank() - 1];
  std::vector<std::int64_t> kernel_dims = kernel_size;
  if (options.transpose_kernel)
    kernel_dims.insert(kernel_dims.end(), {features, in});
  else
    kernel_dims.insert(kernel_dims.end(), {in, features});
  Tensor kernel = scope.param("kernel", options.kernel_init, Shape(kernel_dims));
  if (options.transpose_kernel) {  // lax.conv_transpose: flip the spatial axes, swap in and out
    for (std::size_t a = 0; a < r; ++a) kernel = flip_axis(kernel, static_cast<int>(a));
    std::vector<int> perm(r + 2);
    for (std::size_t a = 0; a < r + 2; ++a) perm[a] = static_cast<int>(a);
    std::swap(perm[r], perm[r + 1]);
    kernel = transpose(kernel, perm);
  }
  // lax.conv_transpose's padding of the dilated input, from the dilated kernel extent.
  Padding padding = options.padding;
  if (padding.is_same() || padding.is_valid()) {
    Pairs pads;
    for (std::size_t a = 0; a < r; ++a) {
      const std::int64_t k = (kernel_size[a] - 1) * dilation[a] + 1, s = strides[a];
      const std::int64_t len = padding.is_same() ? k + s - 2 : k + s - 2 + std::max<std::int64_t>(k - s, 0);
      const std::int64_t low = padding.is_same() && s <= k - 1 ? (len + 1) / 2 : k - 1;
      pads.emplace_back(low, len - low);
    }
    padding = Padding(pads);
  }
  const bool single = x.rank() == static_cast<int>(r) + 1;
  std::vector<std::int64_t> dims{1};
  dims.insert(dims.end(), x.shape().begin(), x.shape().end());
  auto [flat, batch] = with_one_batch_axis(single ? reshape(x, dims) : x, r);
  const std::vector<std::int64_t> unit(r, 1);
  Tensor y = restore_batch(conv_nd(dilate_input(flat, strides), kernel, unit, padding, dilation, 1), batch);
  if (single) y = reshape(y, std::vector<std::int64_t>(y.shape().begin() + 1, y.shape().end()));
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{features});
  return y;
}

Tensor max_pool(const Tensor& x, std::vector<std::int64_t> window_shape, std::vector<std::int64_t> strides,
                Padding padding) {
  return pool(x, window_shape, strides, padding, true, PoolKind::max);
}

Tensor avg_pool(const Tensor& x, std::vector<std::int64_t> window_shape, std::vector<std::int64_t> strides,
                Padding padding, bool count_include_pad) {
  return pool(x, window_shape, strides, padding, count_include_pad, PoolKind::avg);
}

}  // namespace weft::core
