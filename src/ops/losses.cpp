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
  detail::parallel_for(rows.count, std::max<std::int64_t>(1, detail::kParallelGrain / rows.classes),
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

Tensor integer_cross_entropy(const Tensor& logits, const Tensor& labels, const Rows& rows) {
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
  if (tracked) {
    autodiff::record(out, kCrossEntropy, {&logits, &labels},
                     [x = detail::detach(logits), labels, stats, rows](const Tensor& g, std::span<Tensor> grads) {
                       // d logits = g * (softmax(x) - one_hot(label)).
                       Tensor dx = detail::empty(x.shape(), DType::float32);
                       const float *px = data<float>(x), *pg = data<float>(g), *ps = data<float>(stats);
                       const std::int32_t* pl = data<std::int32_t>(labels);
                       float* pd = detail::mutable_data<float>(dx);
                       const std::int64_t n = rows.classes;
                       for_rows(rows, [&](std::int64_t r) {
                         const float* xr = px + r * n;
                         const float gr = pg[r], m = ps[r * kStats], ls = ps[r * kStats + 1];
                         float* dr = pd + r * n;
                         for (std::int64_t i = 0; i < n; ++i) dr[i] = gr * exp_nonpositive((xr[i] - m) - ls);
                         const std::int32_t k = pl[r];
                         dr[k] = gr * (exp_nonpositive((xr[k] - m) - ls) - 1.0f);
                       });
                       grads[0] = dx;
                     });
  }
  return out;
}

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& labels, const Rows& rows) {
  const bool tracked = autodiff::any_tracked(logits, labels);
  Tensor out = detail::empty(rows.batch, DType::float32);
  Tensor stats = tracked ? detail::empty(Shape{rows.count, kStats}, DType::float32) : Tensor();
  const float* px = data<float>(logits);
  const float* py = data<float>(labels);
  float* po = detail::mutable_data<float>(out);
  float* ps = tracked ? detail::mutable_data<float>(stats) : nullptr;
  const std::int64_t n = rows.classes;
  for_rows(rows, [&](std::int64_t r) {
    const float *x = px + r * n, *y = py + r * n;
    const RowNorm norm = row_norm(x, n);
    // -sum(labels * log_softmax(x)), as optax (a zero label times a -inf logit gives NaN there too).
    po[r] = -lanes_accumulate(n, [&](std::int64_t i) { return y[i] * ((x[i] - norm.m) - norm.ls); });
    if (ps != nullptr) {
      ps[r * kStats] = norm.m;
      ps[r * kStats + 1] = norm.ls;
    }
  });
  if (tracked) {
    const bool need_x = detail::node_of(logits) != nullptr, need_y = detail::node_of(labels) != nullptr;
    autodiff::record(
        out, kCrossEntropy, {&logits, &labels},
        [x = detail::detach(logits), y = detail::detach(labels), stats, rows, need_x, need_y](
            const Tensor& g, std::span<Tensor> grads) {
          const float *px = data<float>(x), *py = data<float>(y), *pg = data<float>(g), *ps = data<float>(stats);
          const std::int64_t n = rows.classes;
          Tensor dx = need_x ? detail::empty(x.shape(), DType::float32) : Tensor();
          Tensor dy = need_y ? detail::empty(y.shape(), DType::float32) : Tensor();
          float* pdx = need_x ? detail::mutable_data<float>(dx) : nullptr;
          float* pdy = need_y ? detail::mutable_data<float>(dy) : nullptr;
          for_rows(rows, [&](std::int64_t r) {
            const float *xr = px + r * n, *yr = py + r * n;
            const float gr = pg[r], m = ps[r * kStats], ls = ps[r * kStats + 1];
            if (pdx != nullptr) {
              // d/dx of -sum(y * log_softmax(x)) = softmax(x) * sum(y) - y: softmax - labels for a distribution.
              const float total = lanes_accumulate(n, [yr](std::int64_t i) { return yr[i]; });
              float* dr = pdx + r * n;
              for (std::int64_t i = 0; i < n; ++i) dr[i] = gr * (exp_nonpositive((xr[i] - m) - ls) * total - yr[i]);
            }
            if (pdy != nullptr) {
              float* dr = pdy + r * n;
              for (std::int64_t i = 0; i < n; ++i) dr[i] = -gr * ((xr[i] - m) - ls);
            }
          });
          if (need_x) grads[0] = dx;
          if (need_y) grads[1] = dy;
        });
  }
  return out;
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
  constexpr const char* op = "sigmoid_binary_cross_entropy";
  check_float(logits, "logits", op);
  check_float(labels, "labels", op);
  check_same_shape(logits, "logits", labels, "labels", op);
  // max(x, 0) - x z + log1p(exp(-|x|)): log(1 + exp(x)) - x z without overflow for any x.
  Tensor out = detail::map_binary<float, float>(logits, labels, op, [](float x, float z) {
    return (x > 0.0f ? x : 0.0f) - x * z + std::log1p(std::exp(-std::fabs(x)));
  });
  if (autodiff::any_tracked(logits, labels)) {
    const bool need_x = detail::node_of(logits) != nullptr, need_z = detail::node_of(labels) != nullptr;
    autodiff::record(out, op, {&logits, &labels},
                     [x = detail::detach(logits), z = detail::detach(labels), need_x, need_z](
                         const Tensor& g, std::span<Tensor> grads) {
                       const float *px = data<float>(x), *pz = data<float>(z), *pg = data<float>(g);
                       if (need_x) {
                         Tensor dx = detail::empty(x.shape(), DType::float32);
                         float* pd = detail::mutable_data<float>(dx);
                         detail::parallel_for(x.size(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
                           for (std::int64_t i = b; i < e; ++i)
                             pd[i] = pg[i] * (1.0f / (1.0f + std::exp(-px[i])) - pz[i]);
                         });
                         grads[0] = dx;
                       }
                       if (need_z) {
                         Tensor dz = detail::empty(z.shape(), DType::float32);
                         float* pd = detail::mutable_data<float>(dz);
                         detail::parallel_for(x.size(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
                           for (std::int64_t i = b; i < e; ++i) pd[i] = -pg[i] * px[i];
                         });
                         grads[1] = dz;
                       }
                     });
  }
  return out;
}

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

}  // namespace weft::losses
