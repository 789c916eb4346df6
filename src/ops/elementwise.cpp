// Elementwise ops with NumPy broadcasting, and their gradients.
#include <array>
#include <cmath>
#include <limits>
#include <numbers>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

using detail::data;
using detail::detach;
using detail::map_binary;
using detail::map_unary;
using detail::sum_to_shape;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  if (a == b) return a;
  const int rank = std::max(a.rank(), b.rank());
  std::array<std::int64_t, Shape::kMaxRank> dims{};
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw ShapeError(fmt::format("weft::{}: shapes {} cannot be broadcast together (axis {}: {} vs {}); extents "
                                   "must match or be 1, counting from the last axis",
                                   op, detail::shapes_str(a, b), i - rank, da, db));
    dims[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::span<const std::int64_t>(dims.data(), static_cast<std::size_t>(rank)));
}

namespace detail {

BroadcastPlan plan_broadcast(const Shape& a, const Shape& b, const char* op) {
  BroadcastPlan p;
  p.out = a == b ? a : broadcast_shapes(a, b, op);
  const int rank = p.out.rank();
  // Per output axis: extent and each operand's stride (0 where it is broadcast).
  std::int64_t ext[Shape::kMaxRank], sa[Shape::kMaxRank], sb[Shape::kMaxRank];
  std::int64_t ca = 1, cb = 1;
  for (int i = rank - 1; i >= 0; --i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    ext[i] = p.out[i];
    sa[i] = (da == 1 && ext[i] != 1) ? 0 : ca;
    sb[i] = (db == 1 && ext[i] != 1) ? 0 : cb;
    ca *= da;
    cb *= db;
  }
  // Collapse: drop unit axes, merge neighbours that are contiguous for both operands.
  int n = 0;
  for (int i = 0; i < rank; ++i) {
    if (ext[i] == 1) continue;
    if (n > 0 && p.stride_a[n - 1] == sa[i] * ext[i] && p.stride_b[n - 1] == sb[i] * ext[i]) {
      p.extent[n - 1] *= ext[i];
      p.stride_a[n - 1] = sa[i];
      p.stride_b[n - 1] = sb[i];
      continue;
    }
    p.extent[n] = ext[i];
    p.stride_a[n] = sa[i];
    p.stride_b[n] = sb[i];
    ++n;
  }
  if (n == 0 && p.out.numel() != 1) {  // an empty tensor
    p.extent[0] = 0;
    p.stride_a[0] = p.stride_b[0] = 1;
    n = 1;
  }
  p.ndim = n;
  return p;
}

}  // namespace detail

namespace {

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  detail::require_defined(a, op);
  detail::require_defined(b, op);
  if (a.dtype() != b.dtype())
    throw DTypeError(fmt::format("weft::{}: operands have different dtypes ({} {} and {} {}); weft does not promote "
                                 "implicitly, convert one with weft::astype",
                                 op, name(a.dtype()), a.shape().str(), name(b.dtype()), b.shape().str()));
}

template <class FloatF, class IntF>
Tensor arith(const Tensor& a, const Tensor& b, const char* op, FloatF ff, IntF fi) {
  check_same_dtype(a, b, op);
  if (a.dtype() == DType::float32) return map_binary<float, float>(a, b, op, ff);
  return map_binary<std::int32_t, std::int32_t>(a, b, op, fi);
}

Tensor scalar(float v) { return Tensor(v); }

// The float arithmetic of + - * /, shared by the eager kernels and their lowered form in weft::jit
// plans (so that both round alike).
constexpr auto add_f = [](float x, float y) { return x + y; };
constexpr auto subtract_f = [](float x, float y) { return x - y; };
constexpr auto multiply_f = [](float x, float y) { return x * y; };
constexpr auto divide_f = [](float x, float y) { return x / y; };

/// How an operand of shape `s` is read by an op whose output has shape `out` (for JitKernel::block):
/// 0 when it has the output's shape (leading unit axes aside), its element count when it is a
/// block repeated along the output's leading axes (a scalar, or a bias row), -1 otherwise.
std::int64_t operand_period(const Shape& s, const Shape& out) {
  if (s.numel() == out.numel()) return 0;
  int lead = 0;
  while (lead < s.rank() && s[lead] == 1) ++lead;
  const int k = s.rank() - lead;
  if (k > out.rank()) return -1;
  for (int i = 0; i < k; ++i)
    if (s[lead + i] != out[out.rank() - k + i]) return -1;
  return s.numel();
}

/// out[i] = f(x[i], r[(begin + i) % period]) (or f(r, x) with kSwap) for i < n: an operand read
/// aligned against one repeated with the given period.
template <bool kSwap, class F>
void periodic_loop(const float* x, const float* r, float* out, std::int64_t begin, std::int64_t n, std::int64_t period,
                   F f) {
  if (period == 1) {
    const float c = r[0];
    for (std::int64_t i = 0; i < n; ++i) out[i] = kSwap ? f(c, x[i]) : f(x[i], c);
    return;
  }
  std::int64_t j = begin % period;
  for (std::int64_t i = 0; i < n; j = 0) {
    const std::int64_t len = std::min(n - i, period - j);
    for (std::int64_t k = 0; k < len; ++k) out[i + k] = kSwap ? f(r[j + k], x[i + k]) : f(x[i + k], r[j + k]);
    i += len;
  }
}

/// The lowering of a float binary op with broadcasting: the broadcast plan is made once, at trace
/// time. It offers a block form (fusable with its neighbours) when each operand is aligned with the
/// output or repeated along its leading axes.
template <class F>
auto lower_binary(F f, const char* op) {
  return [f, op](const Tensor& a, const Tensor& b, const Tensor&) -> detail::JitKernel {
    if (a.dtype() != DType::float32 || b.dtype() != DType::float32) return {};
    const detail::BroadcastPlan p = detail::plan_broadcast(a.shape(), b.shape(), op);
    detail::JitKernel k{[p, f](const void* const* in, void* const* out) {
                          detail::binary_loop<float, float>(static_cast<const float*>(in[0]),
                                                            static_cast<const float*>(in[1]),
                                                            static_cast<float*>(out[0]), p, f);
                        },
                        {{0, 0}, {0, 1}}};
    const std::int64_t pa = operand_period(a.shape(), p.out), pb = operand_period(b.shape(), p.out);
    if (pa == 0 && pb == 0)
      k.block = [f](const float* const* in, float* out, std::int64_t, std::int64_t n) {
        const F fn = f;
        for (std::int64_t i = 0; i < n; ++i) out[i] = fn(in[0][i], in[1][i]);
      };
    else if (pa == 0 && pb > 0)
      k.block = [f, pb](const float* const* in, float* out, std::int64_t begin, std::int64_t n) {
        periodic_loop<false>(in[0], in[1], out, begin, n, pb, f);
      };
    else if (pb == 0 && pa > 0)
      k.block = [f, pa](const float* const* in, float* out, std::int64_t begin, std::int64_t n) {
        periodic_loop<true>(in[1], in[0], out, begin, n, pa, f);
      };
    if (k.block) k.aligned = {pa == 0, pb == 0};
    k.identity = op;
    return k;
  };
}

/// int32 arithmetic wraps as two's complement (as JAX's and XLA's does): computed in uint32, where
/// overflow is defined, and converted back, which C++20 defines as modulo 2^32.
constexpr std::int32_t wrap_int32(std::uint32_t v) noexcept { return static_cast<std::int32_t>(v); }

/// float32 -> int32 as XLA converts: toward zero, NaN to 0, out-of-range values (and infinities)
/// to the nearest of INT32_MIN and INT32_MAX. A plain cast of those is undefined behaviour.
constexpr std::int32_t saturating_int32(float v) noexcept {
  constexpr float kTwoTo31 = 2147483648.0f;  // exact in float32; INT32_MAX is not
  if (v != v) return 0;
  if (v <= -kTwoTo31) return std::numeric_limits<std::int32_t>::min();
  if (v >= kTwoTo31) return std::numeric_limits<std::int32_t>::max();
  return static_cast<std::int32_t>(v);
}

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // sqrt(2/pi)
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;   // 1/sqrt(2 pi)

}  // namespace

Tensor operator+(const Tensor& a, const Tensor& b) {
  return detail::traced_lowered("add", [=](const Tensor& a, const Tensor& b) -> Tensor {
    Tensor out = arith(a, b, "add", add_f,
                       [](std::int32_t x, std::int32_t y) { return wrap_int32(std::uint32_t(x) + std::uint32_t(y)); });
    if (autodiff::any_tracked(a, b)) {
      autodiff::record_ops(out, "add", {&a, &b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = sum_to_shape(g, sa);
        gr[1] = sum_to_shape(g, sb);
      });
    }
    return out;
  }, lower_binary(add_f, "add"), a, b);
}

Tensor operator-(const Tensor& a, const Tensor& b) {
  return detail::traced_lowered("subtract", [=](const Tensor& a, const Tensor& b) -> Tensor {
    Tensor out = arith(a, b, "subtract", subtract_f,
                       [](std::int32_t x, std::int32_t y) { return wrap_int32(std::uint32_t(x) - std::uint32_t(y)); });
    if (autodiff::any_tracked(a, b)) {
      autodiff::record_ops(out, "subtract", {&a, &b},
                       [sa = a.shape(), sb = b.shape()](const Tensor& g, std::span<Tensor> gr) {
                         gr[0] = sum_to_shape(g, sa);
                         gr[1] = sum_to_shape(-g, sb);
                       });
    }
    return out;
  }, lower_binary(subtract_f, "subtract"), a, b);
}

Tensor operator*(const Tensor& a, const Tensor& b) {
  return detail::traced_lowered("multiply", [=](const Tensor& a, const Tensor& b) -> Tensor {
    Tensor out = arith(a, b, "multiply", multiply_f,
                       [](std::int32_t x, std::int32_t y) { return wrap_int32(std::uint32_t(x) * std::uint32_t(y)); });
    if (autodiff::any_tracked(a, b)) {
      const bool need_a = detail::node_of(a) != nullptr, need_b = detail::node_of(b) != nullptr;
      autodiff::record_ops(out, "multiply", {&a, &b},
                       [va = detach(a), vb = detach(b), need_a, need_b](const Tensor& g, std::span<Tensor> gr) {
                         if (need_a) gr[0] = sum_to_shape(g * vb, va.shape());
                         if (need_b) gr[1] = sum_to_shape(g * va, vb.shape());
                       });
    }
    return out;
  }, lower_binary(multiply_f, "multiply"), a, b);
}

Tensor operator/(const Tensor& a, const Tensor& b) {
  return detail::traced_lowered("divide", [=](const Tensor& a, const Tensor& b) -> Tensor {
    check_same_dtype(a, b, "divide");
    if (a.dtype() != DType::float32)
      throw DTypeError("weft::divide: int32 division is not supported; convert with weft::astype(x, DType::float32)");
    Tensor out = map_binary<float, float>(a, b, "divide", divide_f);
    if (autodiff::any_tracked(a, b)) {
      const bool need_a = detail::node_of(a) != nullptr, need_b = detail::node_of(b) != nullptr;
      autodiff::record_ops(out, "divide", {&a, &b},
                           [va = detach(a), vb = detach(b), need_a, need_b](const Tensor& g, std::span<Tensor> gr) {
                             if (need_a) gr[0] = sum_to_shape(g / vb, va.shape());
                             if (need_b)
                               gr[1] = sum_to_shape(
                                   detail::traced(
                                       "divide_grad",
                                       [](const Tensor& ga, const Tensor& y) {
                                         return map_binary<float, float>(ga, y, "divide",
                                                                         [](float u, float w) { return -u / (w * w); });
                                       },
                                       g * va, vb),
                                   vb.shape());
                           });
    }
    return out;
  }, lower_binary(divide_f, "divide"), a, b);
}

Tensor operator-(const Tensor& a) {
  return detail::traced("negative", [=](const Tensor& a) -> Tensor {
    detail::require_defined(a, "negative");
    Tensor out = a.dtype() == DType::float32 ? map_unary<float, float>(a, [](float x) { return -x; })
                                             : map_unary<std::int32_t, std::int32_t>(a, [](std::int32_t x) { return wrap_int32(0u - std::uint32_t(x)); });
    if (autodiff::any_tracked(a))
      autodiff::record_ops(out, "negative", {&a}, [](const Tensor& g, std::span<Tensor> gr) { gr[0] = -g; });
    return out;
  }, a);
}

Tensor operator+(const Tensor& a, float b) { return a + scalar(b); }
Tensor operator+(float a, const Tensor& b) { return scalar(a) + b; }
Tensor operator-(const Tensor& a, float b) { return a - scalar(b); }
Tensor operator-(float a, const Tensor& b) { return scalar(a) - b; }
Tensor operator*(const Tensor& a, float b) { return a * scalar(b); }
Tensor operator*(float a, const Tensor& b) { return scalar(a) * b; }
Tensor operator/(const Tensor& a, float b) { return a / scalar(b); }
Tensor operator/(float a, const Tensor& b) { return scalar(a) / b; }

namespace {

// JAX gives each operand half of the gradient where max/min ties.
Tensor extremum(const Tensor& a, const Tensor& b, bool is_max) {
  return detail::traced(is_max ? "maximum" : "minimum", [=](const Tensor& a, const Tensor& b) -> Tensor {
    const char* op = is_max ? "maximum" : "minimum";
    check_same_dtype(a, b, op);
    Tensor out = is_max ? arith(a, b, op, [](float x, float y) { return x > y ? x : y; },
                                [](std::int32_t x, std::int32_t y) { return x > y ? x : y; })
                        : arith(a, b, op, [](float x, float y) { return x < y ? x : y; },
                                [](std::int32_t x, std::int32_t y) { return x < y ? x : y; });
    if (autodiff::any_tracked(a, b)) {
      autodiff::record_ops(out, op, {&a, &b}, [va = detach(a), vb = detach(b), is_max](const Tensor& g,
                                                                                       std::span<Tensor> gr) {
        // The fraction of the gradient that goes to a: an op of its own, which a weft::jit trace records.
        const Tensor wa = detail::traced(
            is_max ? "maximum_share" : "minimum_share",
            [is_max](const Tensor& x, const Tensor& y) {
              return map_binary<float, float>(x, y, "maximum", [is_max](float u, float w) {
                return u == w ? 0.5f : ((u > w) == is_max ? 1.0f : 0.0f);
              });
            },
            va, vb);
        gr[0] = sum_to_shape(g * wa, va.shape());
        gr[1] = sum_to_shape(g * (1.0f - wa), vb.shape());
      });
    }
    return out;
  }, a, b);
}

/// pd[i] = pg[i] * dfdx(px[i], py[i]) in one pass over the three arrays.
template <class D>
void unary_grad_loop(const float* pg, const float* px, const float* py, float* pd, std::int64_t n, D dfdx) {
  detail::parallel_for(n, detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    const D d = dfdx;  // a local copy: stores to pd cannot alias its captured values
    for (std::int64_t i = b; i < e; ++i) pd[i] = pg[i] * d(px[i], py[i]);
  });
}

/// The gradient g * dfdx(x, y) of a unary op y = f(x), as an op of its own (lowered by weft::jit).
template <class D>
Tensor unary_grad(const Tensor& g, const Tensor& x, const Tensor& y, D dfdx, const char* op) {
  const auto lower = [dfdx, op](const Tensor& g, const Tensor&, const Tensor&, const Tensor&) -> detail::JitKernel {
    detail::JitKernel k{[dfdx, n = g.size()](const void* const* in, void* const* out) {
                          unary_grad_loop(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                                          static_cast<const float*>(in[2]), static_cast<float*>(out[0]), n, dfdx);
                        },
                        {{0, 0}}};
    k.block = [dfdx](const float* const* in, float* out, std::int64_t, std::int64_t n) {
      const D d = dfdx;
      for (std::int64_t i = 0; i < n; ++i) out[i] = in[0][i] * d(in[1][i], in[2][i]);
    };
    k.aligned = {true, true, true};
    k.identity = op;  // the unary op whose gradient this is
    return k;
  };
  return detail::traced_lowered(
      "unary_grad",
      [dfdx](const Tensor& g, const Tensor& x, const Tensor& y) {
        Tensor xy = detail::empty(x.shape(), DType::float32);
        unary_grad_loop(data<float>(g), data<float>(x), data<float>(y), detail::mutable_data<float>(xy), x.size(),
                        dfdx);
        return xy;
      },
      lower, g, x, y);
}

/// A unary float op with derivative dfdx(x, y) where y = f(x).
template <class F, class D>
Tensor unary_op(const Tensor& x, const char* op, F f, D dfdx) {
  const auto lower = [f, op](const Tensor& x, const Tensor&) -> detail::JitKernel {
    if (x.dtype() != DType::float32) return {};
    detail::JitKernel k{[f, n = x.size()](const void* const* in, void* const* out) {
                          detail::unary_loop<float, float>(static_cast<const float*>(in[0]),
                                                           static_cast<float*>(out[0]), n, f);
                        },
                        {{0, 0}}};
    k.block = [f](const float* const* in, float* out, std::int64_t, std::int64_t n) {
      const F fn = f;
      for (std::int64_t i = 0; i < n; ++i) out[i] = fn(in[0][i]);
    };
    k.aligned = {true};
    k.identity = op;
    return k;
  };
  return detail::traced_lowered(op, [=](const Tensor& x) -> Tensor {
    detail::require_float(x, op);
    Tensor out = map_unary<float, float>(x, f);
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, op, {&x}, [vx = detach(x), vy = detach(out), dfdx, op](const Tensor& g,
                                                                                     std::span<Tensor> gr) {
        gr[0] = unary_grad(g, vx, vy, dfdx, op);
      });
    }
    return out;
  }, lower, x);
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }

Tensor exp(const Tensor& x) {
  return unary_op(x, "exp", [](float v) { return std::exp(v); }, [](float, float y) { return y; });
}
Tensor log(const Tensor& x) {
  return unary_op(x, "log", [](float v) { return std::log(v); }, [](float v, float) { return 1.0f / v; });
}
Tensor sqrt(const Tensor& x) {
  return unary_op(x, "sqrt", [](float v) { return std::sqrt(v); }, [](float, float y) { return 0.5f / y; });
}
Tensor rsqrt(const Tensor& x) {
  return unary_op(x, "rsqrt", [](float v) { return 1.0f / std::sqrt(v); },
                  [](float v, float y) { return -0.5f * y / v; });
}
Tensor square(const Tensor& x) {
  return unary_op(x, "square", [](float v) { return v * v; }, [](float v, float) { return 2.0f * v; });
}
Tensor abs(const Tensor& x) {
  return unary_op(x, "abs", [](float v) { return std::fabs(v); },
                  [](float v, float) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); });
}
Tensor tanh(const Tensor& x) {
  return unary_op(x, "tanh", [](float v) { return std::tanh(v); }, [](float, float y) { return 1.0f - y * y; });
}
Tensor sigmoid(const Tensor& x) {
  return unary_op(x, "sigmoid", [](float v) { return 1.0f / (1.0f + std::exp(-v)); },
                  [](float, float y) { return y * (1.0f - y); });
}
Tensor relu(const Tensor& x) {
  // The derivative at 0 is 0, as jax.nn.relu.
  return unary_op(x, "relu", [](float v) { return v > 0.0f ? v : 0.0f; },
                  [](float v, float) { return v > 0.0f ? 1.0f : 0.0f; });
}
namespace {
inline float sigmoid_of(float v) noexcept { return 1.0f / (1.0f + std::exp(-v)); }
constexpr auto silu_f = [](float v) { return v / (1.0f + std::exp(-v)); };
constexpr auto silu_dfdx = [](float v, float) {
  const float s = sigmoid_of(v);
  return s * (1.0f + v * (1.0f - s));
};
// jax.nn.selu's constants, rounded to float32.
constexpr float kSeluScale = 1.0507009873554804934193349852946f;
constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
}  // namespace

Tensor silu(const Tensor& x) { return unary_op(x, "silu", silu_f, silu_dfdx); }
Tensor swish(const Tensor& x) { return unary_op(x, "swish", silu_f, silu_dfdx); }
Tensor leaky_relu(const Tensor& x, float negative_slope) {
  return unary_op(x, "leaky_relu", [negative_slope](float v) { return v >= 0.0f ? v : negative_slope * v; },
                  [negative_slope](float v, float) { return v >= 0.0f ? 1.0f : negative_slope; });
}
Tensor elu(const Tensor& x, float alpha) {
  // expm1 keeps the small negative values accurate, where exp(v) - 1 would cancel.
  return unary_op(x, "elu", [alpha](float v) { return v > 0.0f ? v : alpha * std::expm1(v); },
                  [alpha](float v, float) { return v > 0.0f ? 1.0f : alpha * std::exp(v); });
}
Tensor selu(const Tensor& x) {
  return unary_op(x, "selu", [](float v) { return kSeluScale * (v > 0.0f ? v : kSeluAlpha * std::expm1(v)); },
                  [](float v, float) { return kSeluScale * (v > 0.0f ? 1.0f : kSeluAlpha * std::exp(v)); });
}
Tensor celu(const Tensor& x, float alpha) {
  if (alpha == 0.0f)
    throw ValueError("weft::celu: alpha is 0, which divides by zero in expm1(min(x, 0) / alpha); pass a nonzero "
                     "alpha (jax's default is 1)");
  return unary_op(x, "celu",
                  [alpha](float v) { return (v > 0.0f ? v : 0.0f) + alpha * std::expm1((v < 0.0f ? v : 0.0f) / alpha); },
                  [alpha](float v, float) { return v > 0.0f ? 1.0f : std::exp(v / alpha); });
}
Tensor softplus(const Tensor& x) {
  // log1p(exp(-|x|)) + max(x, 0) never overflows: exp's argument is at most 0.
  return unary_op(x, "softplus", [](float v) { return std::log1p(std::exp(-std::fabs(v))) + (v > 0.0f ? v : 0.0f); },
                  [](float v, float) { return sigmoid_of(v); });
}
Tensor log_sigmoid(const Tensor& x) {
  // -softplus(-x) = min(x, 0) - log1p(exp(-|x|)).
  return unary_op(x, "log_sigmoid", [](float v) { return (v < 0.0f ? v : 0.0f) - std::log1p(std::exp(-std::fabs(v))); },
                  [](float v, float) { return sigmoid_of(-v); });
}
Tensor hard_tanh(const Tensor& x) {
  return unary_op(x, "hard_tanh", [](float v) { return v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v); },
                  [](float v, float) { return (v > 1.0f || v < -1.0f) ? 0.0f : 1.0f; });
}
Tensor glu(const Tensor& x, int axis) {
  detail::require_float(x, "glu");
  const int a = normalize_axis(axis, x.rank(), "glu");
  const std::int64_t n = x.shape()[a];
  if (n % 2 != 0)
    throw ShapeError(fmt::format("weft::glu: axis {} of x {} has odd extent {}; glu splits that axis into two equal "
                                 "halves, so it needs an even extent (pad it or pick another axis)",
                                 axis, x.shape().str(), n));
  // Composed from ops: the gradient of both halves comes from slice_axis, sigmoid and multiply.
  return slice_axis(x, a, 0, n / 2) * sigmoid(slice_axis(x, a, n / 2, n));
}
Tensor gelu(const Tensor& x, bool approximate) {
  if (approximate) {
    return unary_op(x, "gelu",
                    [](float v) { return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v))); },
                    [](float v, float) {
                      const float t = std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v));
                      return 0.5f * (1.0f + t) +
                             0.5f * v * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * v * v);
                    });
  }
  return unary_op(x, "gelu", [](float v) { return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2)); },
                  [](float v, float) {
                    return 0.5f * (1.0f + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5f * v * v);
                  });
}
Tensor pow(const Tensor& x, float exponent) {
  return unary_op(x, "pow", [exponent](float v) { return std::pow(v, exponent); },
                  [exponent](float v, float) { return exponent * std::pow(v, exponent - 1.0f); });
}
Tensor clip(const Tensor& x, float lo, float hi) {
  if (!(lo <= hi))
    throw ValueError(fmt::format("weft::clip: lower bound {:.6f} is above upper bound {:.6f}", lo, hi));
  return unary_op(x, "clip", [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); },
                  [lo, hi](float v, float) { return (v >= lo && v <= hi) ? 1.0f : 0.0f; });
}

// ---------------------------------------------------------------- comparisons

namespace {
template <class Cmp>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, Cmp cmp) {
  return detail::traced(op, [=](const Tensor& a, const Tensor& b) -> Tensor {
    check_same_dtype(a, b, op);
    // A comparison has no gradient (it is piecewise constant): its result is never recorded.
    if (a.dtype() == DType::float32)
      return map_binary<float, std::int32_t>(a, b, op, [cmp](float x, float y) { return std::int32_t{cmp(x, y)}; });
    return map_binary<std::int32_t, std::int32_t>(a, b, op,
                                                  [cmp](std::int32_t x, std::int32_t y) { return std::int32_t{cmp(x, y)}; });
  }, a, b);
}
}  // namespace

Tensor operator==(const Tensor& a, const Tensor& b) { return compare(a, b, "equal", std::equal_to<>{}); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return compare(a, b, "not_equal", std::not_equal_to<>{}); }
Tensor operator<(const Tensor& a, const Tensor& b) { return compare(a, b, "less", std::less<>{}); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return compare(a, b, "less_equal", std::less_equal<>{}); }
Tensor operator>(const Tensor& a, const Tensor& b) { return compare(a, b, "greater", std::greater<>{}); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return compare(a, b, "greater_equal", std::greater_equal<>{}); }
Tensor operator<(const Tensor& a, float b) { return a < scalar(b); }
Tensor operator<=(const Tensor& a, float b) { return a <= scalar(b); }
Tensor operator>(const Tensor& a, float b) { return a > scalar(b); }
Tensor operator>=(const Tensor& a, float b) { return a >= scalar(b); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  return detail::traced("where", [=](const Tensor& condition, const Tensor& a, const Tensor& b) -> Tensor {
    detail::require_defined(condition, "where");
    check_same_dtype(a, b, "where");
    if (condition.dtype() != DType::int32)
      throw DTypeError(fmt::format("weft::where: the condition must be an int32 mask (as comparisons return), got "
                                   "float32 {}; compare it first, e.g. weft::where(x > 0.0f, a, b)",
                                   condition.shape().str()));
    const Shape out_shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
    const Tensor c = condition.shape() == out_shape ? condition : broadcast_to(condition, out_shape);
    // Select with a broadcast of the condition: f(c, a) keeps a where c, then f(that, b) fills the rest.
    auto select = [&](const Tensor& x, const Tensor& y) {
      const Tensor xs = x.shape() == out_shape ? detach(x) : broadcast_to(detach(x), out_shape);
      const Tensor ys = y.shape() == out_shape ? detach(y) : broadcast_to(detach(y), out_shape);
      Tensor out = detail::empty(out_shape, x.dtype());
      const std::int32_t* pc = data<std::int32_t>(c);
      if (x.dtype() == DType::float32) {
        const float *px = data<float>(xs), *py = data<float>(ys);
        float* po = detail::mutable_data<float>(out);
        detail::parallel_for(out_shape.numel(), detail::kParallelGrain, [&](std::int64_t s, std::int64_t e) {
          for (std::int64_t i = s; i < e; ++i) po[i] = pc[i] ? px[i] : py[i];
        });
      } else {
        const std::int32_t *px = data<std::int32_t>(xs), *py = data<std::int32_t>(ys);
        std::int32_t* po = detail::mutable_data<std::int32_t>(out);
        for (std::int64_t i = 0; i < out_shape.numel(); ++i) po[i] = pc[i] ? px[i] : py[i];
      }
      return out;
    };
    Tensor out = select(a, b);
    if (autodiff::any_tracked(a, b)) {
      autodiff::record_ops(out, "where", {&a, &b},
                       [c = detach(c), sa = a.shape(), sb = b.shape()](const Tensor& g, std::span<Tensor> gr) {
                         const Tensor z = zeros(g.shape());
                         gr[0] = sum_to_shape(where(c, g, z), sa);
                         gr[1] = sum_to_shape(where(c, z, g), sb);
                       });
    }
    return out;
  }, condition, a, b);
}

Tensor stop_gradient(const Tensor& x) {
  detail::require_defined(x, "stop_gradient");
  return detach(x);
}

Tensor astype(const Tensor& x, DType dtype) {
  return detail::traced("astype", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "astype");
    if (x.dtype() == dtype) return x;
    if (dtype == DType::int32) {
      autodiff::require_untracked(x, "astype(int32)");
      return map_unary<float, std::int32_t>(x, saturating_int32);
    }
    return map_unary<std::int32_t, float>(x, [](std::int32_t v) { return static_cast<float>(v); });
  }, x);
}

}  // namespace weft
