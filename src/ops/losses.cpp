// Losses (optax.losses) as fused kernels with their own gradients.
//
// softmax_cross_entropy runs once per training step, so it is one pass over the logits per row
// (max, then the sum of exponentials in kLanes partial sums with the vectorised exp of the softmax
// kernels), and its backward pass is one more: softmax - labels, scaled by the incoming gradient.
// Rows are split over threads in chunks that depend only on the shape: bit-identical results on any
// thread count.
#include "weft/losses.hpp"

#include <cmath>
#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../jit/trace.hpp"
#include "internal.hpp"
#include "../row_math.hpp"

namespace weft::losses {

using detail::data;
using detail::exp_nonpositive;
using detail::lanes_accumulate;

namespace {

constexpr const char* kCrossEntropy = "softmax_cross_entropy";

/// "[3]" or "[1, 4]": the position of flat element `flat` in a tensor of `shape`.
std::string position(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    index[static_cast<std::size_t>(d)] = flat % shape[d];
    flat /= shape[d];
  }
  return fmt::format("[{}]", fmt::join(index, ", "));
}

/// Rows of `classes` logits: the batch shape (logits.shape[:-1]) and the row count.
struct Rows {
  Shape batch;
  std::int64_t count = 0;
  std::int64_t classes = 0;
};

Rows check_logits(const Tensor& logits, const Tensor& labels, const char* op) {
  detail::require_defined(logits, op);
  detail::require_defined(labels, op);
  if (logits.dtype() != DType::float32)
    throw DTypeError(fmt::format("weft::losses::{}: logits must be float32, got int32 {}; convert them with "
                                 "weft::astype(logits, DType::float32)",
                                 op, logits.shape().str()));
  if (logits.rank() == 0 || logits.shape()[logits.rank() - 1] == 0)
    throw ShapeError(fmt::format("weft::losses::{}: logits {} have no class axis; they need the classes on their last "
                                 "axis, e.g. (batch, classes)",
                                 op, logits.shape().str()));
  const std::vector<std::int64_t> dims = logits.shape().to_vector();
  Rows rows;
  rows.batch = Shape(std::vector<std::int64_t>(dims.begin(), dims.end() - 1));
  rows.classes = dims.back();
  rows.count = rows.batch.numel();
  if (labels.dtype() == DType::int32 && labels.shape() != rows.batch)
    throw ShapeError(fmt::format("weft::losses::{}: int32 labels {} do not fit logits {}; integer labels hold one "
                                 "class index per example, shape {} (for one-hot labels pass float32 labels of the "
                                 "logits' shape)",
                                 op, labels.shape().str(), logits.shape().str(), rows.batch.str()));
  if (labels.dtype() == DType::float32 && labels.shape() != logits.shape())
    throw ShapeError(fmt::format("weft::losses::{}: float32 labels {} do not fit logits {}; one-hot or soft labels "
                                 "have the logits' shape (for class indices pass int32 labels of shape {})",
                                 op, labels.shape().str(), logits.shape().str(), rows.batch.str()));
  return rows;
}

void check_label_range(const Tensor& labels, const Rows& rows, const Shape& logits_shape, const char* op) {
  const std::int32_t* pl = data<std::int32_t>(labels);
  for (std::int64_t r = 0; r < rows.count; ++r) {
    if (pl[r] >= 0 && pl[r] < rows.classes) continue;
    throw ValueError(fmt::format("weft::losses::{}: label {} at labels{} is outside [0, {}) for logits {} with {} "
                                 "classes; labels are class indices from 0 to classes - 1",
                                 op, pl[r], position(r, rows.batch), rows.classes, logits_shape.str(), rows.classes));
  }
}

/// Calls row(r) for every row, in parallel chunks of rows that depend only on the shape.
template <class F>
void for_rows(const Rows& rows, F row) {
  detail::parallel_for(rows.count, std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(1, rows.classes)),
                       [&](std::int64_t r0, std::int64_t r1) {
                         for (std::int64_t r = r0; r < r1; ++r) row(r);
                       });
}

/// Per row: m = max(x) and ls = log(sum(exp(x - m))), so that log_softmax(x) = (x - m) - ls.
struct RowNorm {
  float m, ls;
};
inline RowNorm row_norm(const float* x, std::int64_t n) {
  const float m = detail::max_contiguous(x, n);
  const float s = lanes_accumulate(n, [x, m](std::int64_t i) { return exp_nonpositive(x[i] - m); });
  return {m, std::log(s)};
}

// The per-row (m, ls) of the forward pass, kept for the backward pass: shape (rows, 2).
constexpr std::int64_t kStats = 2;

/// Attaches the gradient of a loss of operands (a, b) to `out` as one op, `grad_op`, over g, a and b,
/// so that a weft::jit trace records it (its plan replays no recorded graph). backward(g, a, b,
/// need_a, need_b) returns (da, db), each computed only where needed; b may be absent.
template <class Backward>
void record_loss_grad(Tensor& out, const char* op, const char* grad_op, const Tensor& a, const Tensor& b,
                      Backward backward) {
  const bool need_a = detail::node_of(a) != nullptr, need_b = b.defined() && detail::node_of(b) != nullptr;
  autodiff::record_ops(
      out, op, {&a, &b},
      [va = detail::detach(a), vb = detail::detach(b), grad_op, need_a, need_b, backward](const Tensor& g,
                                                                                         std::span<Tensor> grads) {
        const std::vector<Tensor> r = detail::traced(
            grad_op,
            [need_a, need_b, backward](const Tensor& g, const Tensor& a, const Tensor& b) {
              auto [da, db] = backward(g, a, b, need_a, need_b);
              std::vector<Tensor> needed;
              if (need_a) needed.push_back(std::move(da));
              if (need_b) needed.push_back(std::move(db));
              return needed;
            },
            g, va, vb);
        std::size_t k = 0;
        if (need_a) grads[0] = r[k++];
        if (need_b) grads[1] = r[k++];
      });
}

/// d logits = g * (softmax(x) - one_hot(label)), per row from its (m, ls): those of `stats` (the
/// forward pass's), or formed again where `stats` is null (the same values: row_norm is
/// deterministic).
void integer_cross_entropy_grad_rows(const float* pg, const float* px, const std::int32_t* pl, const float* ps,
                                     float* pd, const Rows& rows) {
  const std::int64_t n = rows.classes;
  for_rows(rows, [&](std::int64_t r) {
    const float* xr = px + r * n;
    const RowNorm norm = ps != nullptr ? RowNorm{ps[r * kStats], ps[r * kStats + 1]} : row_norm(xr, n);
    const float gr = pg[r], m = norm.m, ls = norm.ls;
    float* dr = pd + r * n;
    for (std::int64_t i = 0; i < n; ++i) dr[i] = gr * exp_nonpositive((xr[i] - m) - ls);
    const std::int32_t k = pl[r];
    dr[k] = gr * (exp_nonpositive((xr[k] - m) - ls) - 1.0f);
  });
}

/// The gradient of integer_cross_entropy as an op (what a weft::jit plan runs, as a kernel).
Tensor integer_cross_entropy_grad(const Tensor& g, const Tensor& logits, const Tensor& labels, const Rows& rows) {
  const auto lower = [rows](const Tensor&, const Tensor&, const Tensor&, const Tensor&) -> detail::JitKernel {
    return {[rows](const void* const* in, void* const* out) {
      integer_cross_entropy_grad_rows(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                                      static_cast<const std::int32_t*>(in[2]), nullptr, static_cast<float*>(out[0]),
                                      rows);
    }};
  };
  return detail::traced_lowered(
      "softmax_cross_entropy_grad",
      [rows](const Tensor& g, const Tensor& x, const Tensor& l) {
        Tensor dx = detail::empty(x.shape(), DType::float32);
        integer_cross_entropy_grad_rows(data<float>(g), data<float>(x), data<std::int32_t>(l), nullptr,
                                        detail::mutable_data<float>(dx), rows);
        return dx;
      },
      lower, g, logits, labels);
}

Tensor integer_cross_entropy(const Tensor& logits, const Tensor& labels, const Rows& rows) {
  return detail::traced("softmax_cross_entropy", [=](const Tensor& logits, const Tensor& labels) -> Tensor {
    check_label_range(labels, rows, logits.shape(), kCrossEntropy);
    const bool tracked = autodiff::any_tracked(logits);
    Tensor out = detail::empty(rows.batch, DType::float32);
    Tensor stats = tracked ? detail::empty(Shape{rows.count, kStats}, DType::float32) : Tensor();
    const float* px = data<float>(logits);
    const std::int32_t* pl = data<std::int32_t>(labels);
    float* po = detail::mutable_data<float>(out);
    float* ps = tracked ? detail::mutable_data<float>(stats) : nullptr;
    const std::int64_t n = rows.classes;
    for_rows(rows, [&](std::int64_t r) {
      const float* x = px + r * n;
      const RowNorm norm = row_norm(x, n);
      // Only the label's log-probability is formed (optax does the same).
      po[r] = norm.ls - (x[pl[r]] - norm.m);
      if (ps != nullptr) {
        ps[r * kStats] = norm.m;
        ps[r * kStats + 1] = norm.ls;
      }
    });
    if (tracked && detail::active_tracer != nullptr) {
      // Traced, the gradient is an op of its own that forms each row's (m, ls) again.
      autodiff::record_ops(out, kCrossEntropy, {&logits, &labels},
                           [x = detail::detach(logits), labels, rows](const Tensor& g, std::span<Tensor> grads) {
                             grads[0] = integer_cross_entropy_grad(g, x, labels, rows);
                           });
    } else if (tracked) {
      autodiff::record(out, kCrossEntropy, {&logits, &labels},
                       [x = detail::detach(logits), labels, stats, rows](const Tensor& g, std::span<Tensor> grads) {
                         Tensor dx = detail::empty(x.shape(), DType::float32);
                         integer_cross_entropy_grad_rows(data<float>(g), data<float>(x), data<std::int32_t>(labels),
                                                         data<float>(stats), detail::mutable_data<float>(dx), rows);
                         grads[0] = dx;
                       });
    }
    return out;
  }, logits, labels);
}

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& labels, const Rows& rows) {
  return detail::traced("softmax_cross_entropy", [=](const Tensor& logits, const Tensor& labels) -> Tensor {
    Tensor out = detail::empty(rows.batch, DType::float32);
    const float* px = data<float>(logits);
    const float* py = data<float>(labels);
    float* po = detail::mutable_data<float>(out);
    const std::int64_t n = rows.classes;
    for_rows(rows, [&](std::int64_t r) {
      const float *x = px + r * n, *y = py + r * n;
      const RowNorm norm = row_norm(x, n);
      // -sum(labels * log_softmax(x)), as optax (a zero label times a -inf logit gives NaN there too).
      po[r] = -lanes_accumulate(n, [&](std::int64_t i) { return y[i] * ((x[i] - norm.m) - norm.ls); });
    });
    if (autodiff::any_tracked(logits, labels)) {
      // Each row's (m, ls) formed again in the gradient op (row_norm is deterministic: the same values).
      record_loss_grad(out, kCrossEntropy, "softmax_cross_entropy_grad", logits, labels,
                       [rows](const Tensor& g, const Tensor& x, const Tensor& y, bool need_x, bool need_y) {
                         const float *px = data<float>(x), *py = data<float>(y), *pg = data<float>(g);
                         const std::int64_t n = rows.classes;
                         Tensor dx = need_x ? detail::empty(x.shape(), DType::float32) : Tensor();
                         Tensor dy = need_y ? detail::empty(y.shape(), DType::float32) : Tensor();
                         float* pdx = need_x ? detail::mutable_data<float>(dx) : nullptr;
                         float* pdy = need_y ? detail::mutable_data<float>(dy) : nullptr;
                         for_rows(rows, [&](std::int64_t r) {
                           const float *xr = px + r * n, *yr = py + r * n;
                           const RowNorm norm = row_norm(xr, n);
                           const float gr = pg[r], m = norm.m, ls = norm.ls;
                           if (pdx != nullptr) {
                             // d/dx of -sum(y * log_softmax(x)) = softmax(x) * sum(y) - y: softmax - labels
                             // for a distribution.
                             const float total = lanes_accumulate(n, [yr](std::int64_t i) { return yr[i]; });
                             float* dr = pdx + r * n;
                             for (std::int64_t i = 0; i < n; ++i)
                               dr[i] = gr * (exp_nonpositive((xr[i] - m) - ls) * total - yr[i]);
                           }
                           if (pdy != nullptr) {
                             float* dr = pdy + r * n;
                             for (std::int64_t i = 0; i < n; ++i) dr[i] = -gr * ((xr[i] - m) - ls);
                           }
                         });
                         return std::pair{dx, dy};
                       });
    }
    return out;
  }, logits, labels);
}

void check_float(const Tensor& t, const char* what, const char* op) {
  detail::require_defined(t, op);
  if (t.dtype() != DType::float32)
    throw DTypeError(fmt::format("weft::losses::{}: {} must be float32, got int32 {}; convert with weft::astype(x, "
                                 "DType::float32)",
                                 op, what, t.shape().str()));
}

void check_same_shape(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name, const char* op) {
  if (a.shape() != b.shape())
    throw ShapeError(fmt::format("weft::losses::{}: {} {} and {} {} differ in shape; weft does not broadcast them here "
                                 "(a (batch, 1) against a (batch,) would silently give a (batch, batch) loss), reshape "
                                 "one to the other's shape",
                                 op, a_name, a.shape().str(), b_name, b.shape().str()));
}

/// Rows along the last axis of two float32 operands of the same shape, for the losses that reduce
/// over it (kl_divergence, cosine_similarity).
Rows check_row_pair(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name, const char* op) {
  check_float(a, a_name, op);
  check_float(b, b_name, op);
  check_same_shape(a, a_name, b, b_name, op);
  if (a.rank() == 0)
    throw ShapeError(fmt::format("weft::losses::{}: {} and {} are scalars, with no last axis to reduce over; pass "
                                 "them with the values on their last axis, e.g. (batch, features)",
                                 op, a_name, b_name));
  const std::vector<std::int64_t> dims = a.shape().to_vector();
  Rows rows;
  rows.batch = Shape(std::vector<std::int64_t>(dims.begin(), dims.end() - 1));
  rows.classes = dims.back();
  rows.count = rows.batch.numel();
  return rows;
}

/// A new tensor of `like`'s shape holding f(i) at each flat index i, filled by a parallel loop.
template <class F>
Tensor flat_map(const Tensor& like, F f) {
  Tensor out = detail::empty(like.shape(), DType::float32);
  float* po = detail::mutable_data<float>(out);
  detail::parallel_for(like.size(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) po[i] = f(i);
  });
  return out;
}

/// Per row of cosine_similarity: sum(p t), and each norm as optax's safe norm (at most epsilon
/// counts as epsilon) with whether it passes a gradient.
struct CosineRow {
  float dot, norm_p, norm_t;
  bool grad_p, grad_t;
};
CosineRow cosine_row(const float* p, const float* t, std::int64_t n, float epsilon) {
  const float dot = lanes_accumulate(n, [=](std::int64_t i) { return p[i] * t[i]; });
  const float np = std::sqrt(lanes_accumulate(n, [=](std::int64_t i) { return p[i] * p[i]; }));
  const float nt = std::sqrt(lanes_accumulate(n, [=](std::int64_t i) { return t[i] * t[i]; }));
  return {dot, np <= epsilon ? epsilon : np, nt <= epsilon ? epsilon : nt, np > epsilon, nt > epsilon};
}

/// cosine_similarity, or 1 minus it when `distance`: one fused node either way.
Tensor cosine(const Tensor& predictions, const Tensor& targets, float epsilon, bool distance, const char* op) {
  return detail::traced(op, [=](const Tensor& predictions, const Tensor& targets) -> Tensor {
    const Rows rows = check_row_pair(predictions, "predictions", targets, "targets", op);
    if (!(epsilon >= 0.0f))
      throw ValueError(fmt::format("weft::losses::{}: epsilon is {}; it is the smallest norm used, so it must be 0 "
                                   "(optax's default) or positive",
                                   op, epsilon));
    Tensor out = detail::empty(rows.batch, DType::float32);
    const float *pp = data<float>(predictions), *pt = data<float>(targets);
    float* po = detail::mutable_data<float>(out);
    const std::int64_t n = rows.classes;
    for_rows(rows, [&](std::int64_t r) {
      const CosineRow c = cosine_row(pp + r * n, pt + r * n, n, epsilon);
      const float s = c.dot / (c.norm_p * c.norm_t);
      po[r] = distance ? 1.0f - s : s;
    });
    if (autodiff::any_tracked(predictions, targets)) {
      record_loss_grad(
          out, op, distance ? "cosine_distance_grad" : "cosine_similarity_grad", predictions, targets,
          [rows, epsilon, distance](const Tensor& g, const Tensor& p, const Tensor& t, bool need_p, bool need_t) {
            // ds/dp = t / (|p| |t|) - s p / |p|^2, the second term only where |p| passes a gradient.
            const float *pp = data<float>(p), *pt = data<float>(t), *pg = data<float>(g);
            Tensor dp = need_p ? detail::empty(p.shape(), DType::float32) : Tensor();
            Tensor dt = need_t ? detail::empty(t.shape(), DType::float32) : Tensor();
            float* pdp = need_p ? detail::mutable_data<float>(dp) : nullptr;
            float* pdt = need_t ? detail::mutable_data<float>(dt) : nullptr;
            const std::int64_t n = rows.classes;
            for_rows(rows, [&](std::int64_t r) {
              const float *pr = pp + r * n, *tr = pt + r * n;
              const CosineRow c = cosine_row(pr, tr, n, epsilon);
              const float inv = 1.0f / (c.norm_p * c.norm_t), s = c.dot * inv;
              const float gr = distance ? -pg[r] : pg[r];
              const float sp = c.grad_p ? s / (c.norm_p * c.norm_p) : 0.0f;
              const float st = c.grad_t ? s / (c.norm_t * c.norm_t) : 0.0f;
              if (pdp != nullptr)
                for (std::int64_t i = 0; i < n; ++i) pdp[r * n + i] = gr * (tr[i] * inv - sp * pr[i]);
              if (pdt != nullptr)
                for (std::int64_t i = 0; i < n; ++i) pdt[r * n + i] = gr * (pr[i] * inv - st * tr[i]);
            });
            return std::pair{dp, dt};
          });
    }
    return out;
  }, predictions, targets);
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  const Rows rows = check_logits(logits, labels, kCrossEntropy);
  if (labels.dtype() == DType::int32) return integer_cross_entropy(logits, labels, rows);
  return soft_cross_entropy(logits, labels, rows);
}

Tensor softmax_cross_entropy_with_integer_labels(const Tensor& logits, const Tensor& labels) {
  constexpr const char* op = "softmax_cross_entropy_with_integer_labels";
  detail::require_defined(labels, op);
  if (labels.dtype() != DType::int32)
    throw DTypeError(fmt::format("weft::losses::{}: labels must be int32 class indices, got float32 {}; for one-hot or "
                                 "soft labels use weft::losses::softmax_cross_entropy",
                                 op, labels.shape().str()));
  return softmax_cross_entropy(logits, labels);
}

Tensor sigmoid_binary_cross_entropy(const Tensor& logits, const Tensor& labels) {
  return detail::traced("sigmoid_binary_cross_entropy", [=](const Tensor& logits, const Tensor& labels) -> Tensor {
    constexpr const char* op = "sigmoid_binary_cross_entropy";
    check_float(logits, "logits", op);
    check_float(labels, "labels", op);
    check_same_shape(logits, "logits", labels, "labels", op);
    // max(x, 0) - x z + log1p(exp(-|x|)): log(1 + exp(x)) - x z without overflow for any x.
    Tensor out = detail::map_binary<float, float>(logits, labels, op, [](float x, float z) {
      return (x > 0.0f ? x : 0.0f) - x * z + std::log1p(std::exp(-std::fabs(x)));
    });
    if (autodiff::any_tracked(logits, labels)) {
      record_loss_grad(out, op, "sigmoid_binary_cross_entropy_grad", logits, labels,
                       [](const Tensor& g, const Tensor& x, const Tensor& z, bool need_x, bool need_z) {
                         const float *px = data<float>(x), *pz = data<float>(z), *pg = data<float>(g);
                         Tensor dx, dz;
                         if (need_x)
                           dx = flat_map(x, [=](std::int64_t i) {
                             return pg[i] * (1.0f / (1.0f + std::exp(-px[i])) - pz[i]);
                           });
                         if (need_z) dz = flat_map(z, [=](std::int64_t i) { return -pg[i] * px[i]; });
                         return std::pair{dx, dz};
                       });
    }
    return out;
  }, logits, labels);
}

// Of ops, not an op of its own: a weft::jit trace records them, and their gradients as ops.
Tensor squared_error(const Tensor& predictions, const Tensor& targets) {
  constexpr const char* op = "squared_error";
  check_float(predictions, "predictions", op);
  if (!targets.defined()) return square(predictions);
  check_float(targets, "targets", op);
  check_same_shape(predictions, "predictions", targets, "targets", op);
  return square(predictions - targets);
}

Tensor l2_loss(const Tensor& predictions, const Tensor& targets) {
  constexpr const char* op = "l2_loss";
  check_float(predictions, "predictions", op);
  if (targets.defined()) {
    check_float(targets, "targets", op);
    check_same_shape(predictions, "predictions", targets, "targets", op);
  }
  return 0.5f * squared_error(predictions, targets);
}

Tensor huber_loss(const Tensor& predictions, const Tensor& targets, float delta) {
  return detail::traced("huber_loss", [=](const Tensor& predictions, const Tensor& targets) -> Tensor {
    constexpr const char* op = "huber_loss";
    check_float(predictions, "predictions", op);
    if (targets.defined()) {
      check_float(targets, "targets", op);
      check_same_shape(predictions, "predictions", targets, "targets", op);
    }
    if (!(delta > 0.0f) || std::isinf(delta))
      throw ValueError(fmt::format("weft::losses::{}: delta is {}; it is where the loss turns from quadratic to linear, "
                                   "so it must be positive and finite (optax's default is 1)",
                                   op, delta));
    // The errors (formed again by the gradient op, from its operands).
    const auto error_of = [](const Tensor& p, const Tensor& t) {
      return t.defined() ? detail::map_binary<float, float>(p, t, "huber_loss", [](float u, float v) { return u - v; })
                         : detail::detach(p);
    };
    const Tensor errors = error_of(predictions, targets);
    // optax's 0.5 q^2 + delta (|e| - q) with q = min(|e|, delta), as one branch per element.
    Tensor out = detail::map_unary<float, float>(errors, [delta](float e) {
      const float a = std::fabs(e);
      return a <= delta ? 0.5f * e * e : delta * (a - 0.5f * delta);
    });
    if (autodiff::any_tracked(predictions, targets)) {
      record_loss_grad(out, op, "huber_loss_grad", predictions, targets,
                       [delta, error_of](const Tensor& g, const Tensor& p, const Tensor& t, bool need_p, bool need_t) {
                         // The derivative in e is clip(e, -delta, delta), continuous at |e| = delta.
                         const Tensor errors = error_of(p, t);
                         const float *pe = data<float>(errors), *pg = data<float>(g);
                         const Tensor de = flat_map(errors, [=](std::int64_t i) {
                           const float e = pe[i];
                           return pg[i] * (e > delta ? delta : (e < -delta ? -delta : e));
                         });
                         return std::pair{need_p ? de : Tensor(), need_t ? -de : Tensor()};
                       });
    }
    return out;
  }, predictions, targets);
}

Tensor kl_divergence(const Tensor& log_predictions, const Tensor& targets) {
  return detail::traced("kl_divergence", [=](const Tensor& log_predictions, const Tensor& targets) -> Tensor {
    constexpr const char* op = "kl_divergence";
    const Rows rows = check_row_pair(log_predictions, "log_predictions", targets, "targets", op);
    Tensor out = detail::empty(rows.batch, DType::float32);
    const float *pl = data<float>(log_predictions), *pt = data<float>(targets);
    float* po = detail::mutable_data<float>(out);
    const std::int64_t n = rows.classes;
    for_rows(rows, [&](std::int64_t r) {
      const float *lr = pl + r * n, *tr = pt + r * n;
      // 0 log 0 = 0, and a zero target ignores its log-prediction altogether.
      po[r] = lanes_accumulate(n, [=](std::int64_t i) {
        return tr[i] == 0.0f ? 0.0f : tr[i] * (std::log(tr[i]) - lr[i]);
      });
    });
    if (autodiff::any_tracked(log_predictions, targets)) {
      record_loss_grad(out, op, "kl_divergence_grad", log_predictions, targets,
                       [n](const Tensor& g, const Tensor& l, const Tensor& t, bool need_l, bool need_t) {
                         const float *pl = data<float>(l), *pt = data<float>(t), *pg = data<float>(g);
                         // g has one value per row of n elements.
                         Tensor dl, dt;
                         if (need_l) dl = flat_map(l, [=](std::int64_t i) { return -pg[i / n] * pt[i]; });
                         if (need_t)
                           dt = flat_map(t, [=](std::int64_t i) {
                             return pg[i / n] * (pt[i] == 0.0f ? -pl[i] : std::log(pt[i]) - pl[i] + 1.0f);
                           });
                         return std::pair{dl, dt};
                       });
    }
    return out;
  }, log_predictions, targets);
}

Tensor cosine_similarity(const Tensor& predictions, const Tensor& targets, float epsilon) {
  return cosine(predictions, targets, epsilon, false, "cosine_similarity");
}

Tensor cosine_distance(const Tensor& predictions, const Tensor& targets, float epsilon) {
  return cosine(predictions, targets, epsilon, true, "cosine_distance");
}

Tensor hinge_loss(const Tensor& predictor_outputs, const Tensor& targets) {
  return detail::traced("hinge_loss", [=](const Tensor& predictor_outputs, const Tensor& targets) -> Tensor {
    constexpr const char* op = "hinge_loss";
    check_float(predictor_outputs, "predictor_outputs", op);
    check_float(targets, "targets", op);
    check_same_shape(predictor_outputs, "predictor_outputs", targets, "targets", op);
    Tensor out = detail::map_binary<float, float>(predictor_outputs, targets, op, [](float y, float t) {
      const float z = 1.0f - y * t;
      return z > 0.0f ? z : 0.0f;
    });
    if (autodiff::any_tracked(predictor_outputs, targets)) {
      record_loss_grad(out, op, "hinge_loss_grad", predictor_outputs, targets,
                       [](const Tensor& g, const Tensor& y, const Tensor& t, bool need_y, bool need_t) {
                         const float *py = data<float>(y), *pt = data<float>(t), *pg = data<float>(g);
                         // The share of the gradient through max(0, z): jax's maximum splits a tie evenly.
                         const auto share = [=](std::int64_t i) {
                           const float z = 1.0f - py[i] * pt[i];
                           return pg[i] * (z > 0.0f ? 1.0f : (z == 0.0f ? 0.5f : 0.0f));
                         };
                         Tensor dy, dt;
                         if (need_y) dy = flat_map(y, [=](std::int64_t i) { return -share(i) * pt[i]; });
                         if (need_t) dt = flat_map(t, [=](std::int64_t i) { return -share(i) * py[i]; });
                         return std::pair{dy, dt};
                       });
    }
    return out;
  }, predictor_outputs, targets);
}

// Of ops, not an op of its own: a weft::jit trace records them, and their gradients as ops.
Tensor smooth_labels(const Tensor& labels, float alpha) {
  constexpr const char* op = "smooth_labels";
  check_float(labels, "labels", op);
  if (labels.rank() == 0 || labels.shape()[labels.rank() - 1] == 0)
    throw ShapeError(fmt::format("weft::losses::{}: labels {} have no categories; one-hot labels hold the categories "
                                 "on their last axis, e.g. (batch, categories)",
                                 op, labels.shape().str()));
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    throw ValueError(fmt::format("weft::losses::{}: alpha is {}; it is the share of the probability spread over all "
                                 "categories, so it must lie in [0, 1]",
                                 op, alpha));
  const auto categories = static_cast<float>(labels.shape()[labels.rank() - 1]);
  return (1.0f - alpha) * labels + alpha / categories;
}

}  // namespace weft::losses
