// Max and average pooling with the semantics of flax.linen.max_pool / avg_pool (lax.reduce_window
// over the spatial axes of NHWC), and their gradients.
//
// max_pool's gradient goes, in each window, to the first element (in row-major window order) equal
// to the window's maximum, as XLA's select-and-scatter with `>=` does for jax.grad of max_pool;
// padding never receives it. A window with a NaN has maximum NaN and routes to its first NaN.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"
#include "window.hpp"

namespace weft {

namespace {

using detail::Window2d;

std::int64_t image_grain(const Window2d& w) {
  return std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(1, w.oh * w.ow * w.c * w.kh * w.kw));
}

/// Calls f(ih, iw) for the window positions of output pixel (oh, ow) that lie inside the input,
/// in row-major window order.
template <class F>
void for_each_inside(const Window2d& w, std::int64_t oh, std::int64_t ow, F&& f) {
  for (std::int64_t kh = 0; kh < w.kh; ++kh) {
    const std::int64_t ih = w.in_row(oh, kh);
    if (ih < 0 || ih >= w.h) continue;
    for (std::int64_t kw = 0; kw < w.kw; ++kw) {
      const std::int64_t iw = w.in_col(ow, kw);
      if (iw >= 0 && iw < w.w) f(ih, iw);
    }
  }
}

/// The number of window positions of output pixel (oh, ow) inside the input.
std::int64_t inside_count(const Window2d& w, std::int64_t oh, std::int64_t ow) {
  std::int64_t count = 0;
  for_each_inside(w, oh, ow, [&](std::int64_t, std::int64_t) { ++count; });
  return count;
}

float divisor(const Window2d& w, bool count_include_pad, std::int64_t oh, std::int64_t ow) {
  return static_cast<float>(count_include_pad ? w.kh * w.kw : inside_count(w, oh, ow));
}

/// Runs body(n, oh, ow, out) for every output pixel, in parallel over output rows; `out` points at
/// the pixel's C channels.
template <class F>
void pool_forward_into(const Window2d& w, float* py, F body) {
  const std::int64_t grain = std::max<std::int64_t>(1, image_grain(w) * w.oh);
  detail::parallel_for(w.n * w.oh, grain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t row = b; row < e; ++row)
      for (std::int64_t ow = 0; ow < w.ow; ++ow) body(row / w.oh, row % w.oh, ow, py + (row * w.ow + ow) * w.c);
  });
}

template <class F>
Tensor pool_forward(const Window2d& w, F body) {
  Tensor y = detail::empty(Shape{w.n, w.oh, w.ow, w.c}, DType::float32);
  pool_forward_into(w, detail::mutable_data<float>(y), body);
  return y;
}

/// Max pooling of px into py; when `argmax` is given it receives, per output element, the offset
/// within its image of the element chosen (the first maximum, or the first NaN), or -1 for a window
/// of padding only.
void max_pool_forward_into(const float* px, const Window2d& w, float* py, std::int32_t* argmax) {
  pool_forward_into(w, py, [&](std::int64_t n, std::int64_t oh, std::int64_t ow, float* out) {
    std::fill_n(out, w.c, -std::numeric_limits<float>::infinity());  // the padding value
    std::int32_t* idx = argmax ? argmax + (out - py) : nullptr;
    if (idx) std::fill_n(idx, w.c, -1);
    const float* image = px + n * w.h * w.w * w.c;
    for_each_inside(w, oh, ow, [&](std::int64_t ih, std::int64_t iw) {
      const auto pos = static_cast<std::int32_t>((ih * w.w + iw) * w.c);
      const float* s = image + pos;
      // Strictly greater keeps the first maximum; a NaN replaces a number once (NaN propagates, as
      // lax.max). Branch-free, so the channel loop vectorises.
      if (idx) {
#pragma omp simd
        for (std::int64_t c = 0; c < w.c; ++c) {
          const float v = s[c], a = out[c];
          const bool take = (v > a) | ((v != v) & (a == a));
          out[c] = take ? v : a;
          idx[c] = take ? pos + static_cast<std::int32_t>(c) : idx[c];
        }
      } else {
#pragma omp simd
        for (std::int64_t c = 0; c < w.c; ++c) {
          const float v = s[c], a = out[c];
          out[c] = ((v > a) | ((v != v) & (a == a))) ? v : a;
        }
      }
    });
  });
}

Tensor max_pool_forward(const Tensor& x, const Window2d& w, std::int32_t* argmax) {
  Tensor y = detail::empty(Shape{w.n, w.oh, w.ow, w.c}, DType::float32);
  max_pool_forward_into(detail::data<float>(x), w, detail::mutable_data<float>(y), argmax);
  return y;
}

Tensor avg_pool_forward(const Tensor& x, const Window2d& w, bool count_include_pad) {
  const float* px = detail::data<float>(x);
  return pool_forward(w, [&](std::int64_t n, std::int64_t oh, std::int64_t ow, float* out) {
    std::fill_n(out, w.c, 0.0f);
    for_each_inside(w, oh, ow, [&](std::int64_t ih, std::int64_t iw) {
      const float* s = px + ((n * w.h + ih) * w.w + iw) * w.c;
      for (std::int64_t c = 0; c < w.c; ++c) out[c] += s[c];
    });
    const float d = divisor(w, count_include_pad, oh, ow);
    for (std::int64_t c = 0; c < w.c; ++c) out[c] /= d;
  });
}

/// dx for one gradient dy of a pooled output: body(n, oh, ow, dx_image) adds one output pixel's
/// contribution, with body = make_body() made once per chunk (it may own scratch space). Parallel
/// over images, each image's pixels in order, so sums are deterministic.
template <class MakeBody>
void pool_backward_into(const Window2d& w, float* pdx, MakeBody make_body) {
  const std::int64_t image = w.h * w.w * w.c;
  detail::parallel_for(w.n, image_grain(w), [&](std::int64_t b, std::int64_t e) {
    auto body = make_body();
    std::fill(pdx + b * image, pdx + e * image, 0.0f);
    for (std::int64_t n = b; n < e; ++n)
      for (std::int64_t oh = 0; oh < w.oh; ++oh)
        for (std::int64_t ow = 0; ow < w.ow; ++ow) body(n, oh, ow, pdx + n * image);
  });
}

template <class MakeBody>
Tensor pool_backward(const Window2d& w, MakeBody make_body) {
  Tensor dx = detail::empty(Shape{w.n, w.h, w.w, w.c}, DType::float32);
  pool_backward_into(w, detail::mutable_data<float>(dx), make_body);
  return dx;
}

/// Routes each output gradient pg to the element max_pool chose (`argmax`, per image) in pdx.
void max_pool_backward_into(const std::int32_t* argmax, const float* pg, const Window2d& w, float* pdx) {
  const std::int64_t per_image = w.oh * w.ow * w.c;
  pool_backward_into(w, pdx, [&] {
    return [&](std::int64_t n, std::int64_t oh, std::int64_t ow, float* dx) {
      const std::int64_t o = n * per_image + (oh * w.ow + ow) * w.c;
      for (std::int64_t c = 0; c < w.c; ++c) {
        const std::int32_t i = argmax[o + c];
        if (i >= 0) dx[i] += pg[o + c];
      }
    };
  });
}

Tensor max_pool_backward(const std::int32_t* argmax, const Tensor& dy, const Window2d& w) {
  Tensor dx = detail::empty(Shape{w.n, w.h, w.w, w.c}, DType::float32);
  max_pool_backward_into(argmax, detail::data<float>(dy), w, detail::mutable_data<float>(dx));
  return dx;
}

/// The gradient of a traced max pooling: an op over the chosen offsets its forward op wrote (an
/// int32 output of the trace), lowered to a kernel.
Tensor max_pool_grad(const Tensor& dy, const Tensor& argmax, const Window2d& w) {
  const auto lower = [w](const Tensor&, const Tensor&, const Tensor&) {
    return detail::JitKernel{[w](const void* const* in, void* const* out) {
      max_pool_backward_into(static_cast<const std::int32_t*>(in[1]), static_cast<const float*>(in[0]), w,
                             static_cast<float*>(out[0]));
    }};
  };
  return detail::traced_lowered(
      "max_pool_grad",
      [w](const Tensor& dy, const Tensor& argmax) {
        return max_pool_backward(detail::data<std::int32_t>(argmax), dy, w);
      },
      lower, dy, argmax);
}

/// Max pooling of a tracked input while a weft::jit trace records: one op, lowered, whose outputs
/// are the pooled values and the offsets chosen (the argmax eager mode keeps), so that the gradient
/// is a kernel too and finds no maximum again.
Tensor traced_max_pool(const Tensor& x, const Window2d& w) {
  const auto lower = [w](const Tensor&, const std::array<Tensor, 2>&) {
    return detail::JitKernel{[w](const void* const* in, void* const* out) {
      max_pool_forward_into(static_cast<const float*>(in[0]), w, static_cast<float*>(out[0]),
                            static_cast<std::int32_t*>(out[1]));
    }};
  };
  const std::array<Tensor, 2> out = detail::traced_lowered(
      "max_pool",
      [w](const Tensor& x) {
        std::array<Tensor, 2> r{detail::empty(Shape{w.n, w.oh, w.ow, w.c}, DType::float32),
                                detail::empty(Shape{w.n, w.oh, w.ow, w.c}, DType::int32)};
        max_pool_forward_into(detail::data<float>(x), w, detail::mutable_data<float>(r[0]),
                              detail::mutable_data<std::int32_t>(r[1]));
        return r;
      },
      lower, detail::detach(x));  // untracked: the op is a kernel, its gradient recorded below
  Tensor y = out[0];
  autodiff::record_ops(y, "max_pool", {&x}, [argmax = out[1], w](const Tensor& g, std::span<Tensor> gr) {
    gr[0] = max_pool_grad(g, argmax, w);
  });
  return y;
}

Tensor avg_pool_backward(const Tensor& dy, const Window2d& w, bool count_include_pad) {
  const float* pg = detail::data<float>(dy);
  return pool_backward(w, [&] {
    return [&](std::int64_t n, std::int64_t oh, std::int64_t ow, float* dx) {
      const float* g = pg + ((n * w.oh + oh) * w.ow + ow) * w.c;
      const float d = divisor(w, count_include_pad, oh, ow);
      for_each_inside(w, oh, ow, [&](std::int64_t ih, std::int64_t iw) {
        float* t = dx + (ih * w.w + iw) * w.c;
        for (std::int64_t c = 0; c < w.c; ++c) t[c] += g[c] / d;
      });
    };
  });
}

enum class PoolKind { max, avg };

/// The window of pooling an NHWC input, or the error that says why it cannot be pooled.
Window2d pool_window(const Tensor& x, const PoolOptions& o, const char* op) {
  const std::string where = fmt::format("weft::{}: ", op);
  if (x.rank() != 4)
    throw ShapeError(fmt::format("{}the input must be NHWC (rank 4) or HWC (rank 3), got shape {}; pooling runs over "
                                 "the two spatial axes",
                                 where, x.shape().str()));
  if (o.window.size() != 2)
    throw ValueError(fmt::format("{}window {} has {} entries; give two, (height, width)", where,
                                 detail::extents_str(o.window), o.window.size()));
  if (o.window[0] < 1 || o.window[1] < 1)
    throw ValueError(fmt::format("{}window {} must be positive", where, detail::extents_str(o.window)));
  const std::vector<std::int64_t> strides = o.strides.empty() ? std::vector<std::int64_t>{1, 1} : o.strides;
  return detail::window2d(x.shape(), o.window[0], o.window[1], strides, o.padding, {1, 1}, op);
}

Tensor pool(const Tensor& x, const PoolOptions& o, PoolKind kind) {
  const char* op = kind == PoolKind::max ? "max_pool" : "avg_pool";
  if (kind == PoolKind::max && detail::recording() != nullptr && autodiff::any_tracked(x) && x.rank() == 4 &&
      x.dtype() == DType::float32)
    return traced_max_pool(x, pool_window(x, o, op));
  return detail::traced(op, [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, op);
    detail::require_float(x, op);
    if (x.rank() == 3) {  // HWC: Flax adds a batch axis
      const Shape& s = x.shape();
      const Tensor y = pool(reshape(x, Shape{1, s[0], s[1], s[2]}), o, kind);
      return reshape(y, Shape{y.shape()[1], y.shape()[2], y.shape()[3]});
    }
    const Window2d w = pool_window(x, o, op);
    const bool tracked = autodiff::any_tracked(x);
    if (kind == PoolKind::max) {
      if (!tracked) return max_pool_forward(x, w, nullptr);
      const auto windows = static_cast<std::size_t>(Shape{w.n, w.oh, w.ow, w.c}.numel());
      if (detail::active_tracer != nullptr) {
        // Inside another traced op's body (the offsets are not a value of the trace), the gradient
        // is an op of its own that finds each window's maximum again.
        Tensor y = max_pool_forward(x, w, nullptr);
        autodiff::record_ops(y, op, {&x}, [vx = detail::detach(x), w, windows](const Tensor& g, std::span<Tensor> gr) {
          gr[0] = detail::traced(
              "max_pool_grad",
              [w, windows](const Tensor& dy, const Tensor& input) {
                std::vector<std::int32_t> argmax(windows);
                (void)max_pool_forward(input, w, argmax.data());
                return max_pool_backward(argmax.data(), dy, w);
              },
              g, vx);
        });
        return y;
      }
      auto argmax = std::make_shared<std::vector<std::int32_t>>(windows);
      Tensor y = max_pool_forward(x, w, argmax->data());
      autodiff::record(y, op, {&x}, [argmax, w](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = max_pool_backward(argmax->data(), g, w);
      });
      return y;
    }
    Tensor y = avg_pool_forward(x, w, o.count_include_pad);
    if (tracked) {
      autodiff::record_ops(y, op, {&x}, [w, include = o.count_include_pad](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "avg_pool_grad", [w, include](const Tensor& dy) { return avg_pool_backward(dy, w, include); }, g);
      });
    }
    return y;
  }, x);
}

}  // namespace

Tensor max_pool(const Tensor& x, const PoolOptions& options) { return pool(x, options, PoolKind::max); }

Tensor avg_pool(const Tensor& x, const PoolOptions& options) { return pool(x, options, PoolKind::avg); }

}  // namespace weft
