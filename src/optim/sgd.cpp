// SGD with optional (Nesterov) momentum: optax.sgd = chain(trace(momentum, nesterov), scale_by_learning_rate).
#include "weft/optim/sgd.hpp"

#include <cmath>

#include <fmt/format.h>

#include "internal.hpp"

namespace weft::optim {

namespace {

constexpr const char* kOp = "sgd";

using weft::detail::data;
using weft::detail::mutable_data;

/// u = scale * g.
Tensor scaled(const Tensor& g, float scale) {
  Tensor u = weft::detail::empty(g.shape(), DType::float32);
  const float* pg = data<float>(g);
  float* pu = mutable_data<float>(u);
  detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) pu[i] = scale * pg[i];
  });
  return u;
}

/// t' = g + momentum * t; u = scale * (nesterov ? g + momentum * t' : t'), in one pass.
template <bool kNesterov>
void momentum_kernel(const float* g, const float* t, float* t2, float* u, std::int64_t n, float momentum, float scale) {
  detail::for_chunks(n, [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) {
      const float ti = g[i] + momentum * t[i];
      t2[i] = ti;
      u[i] = scale * (kNesterov ? g[i] + momentum * ti : ti);
    }
  });
}

}  // namespace

GradientTransformation sgd(LearningRate learning_rate, float momentum, bool nesterov) {
  if (!std::isfinite(momentum) || momentum < 0.0f)
    throw ValueError(fmt::format("weft::optim::sgd: momentum is {:.6f}; it must be 0 (plain SGD) or positive, "
                                 "typically 0.9",
                                 momentum));
  const bool has_trace = momentum != 0.0f;
  GradientTransformation out;
  out.init = [has_trace](const Variables& params) {
    Variables state = detail::count_state(0);
    if (has_trace)
      state = state.merge(tree_map([](const Tensor& p) { return zeros(p.shape()); }, params).prefixed("trace"));
    return state;
  };
  out.update = [learning_rate = std::move(learning_rate), momentum, nesterov, has_trace](
                   const Variables& grads, const Variables& state, const Variables&) {
    const std::int32_t count = detail::read_count(state, kOp);
    const float scale = -learning_rate.at(count, kOp);
    Variables next = detail::count_state(detail::next_count(count));
    if (!has_trace) {
      Variables updates = tree_map(
          [scale](std::string_view path, const Tensor& g) {
            detail::check_leaf(path, g, nullptr, "", kOp);
            return scaled(g, scale);
          },
          grads);
      return std::pair{std::move(updates), std::move(next)};
    }
    const Variables trace = detail::state_part(state, "trace", grads, kOp);
    std::vector<Tensor> traces;
    traces.reserve(grads.size());
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& t) {
          detail::check_leaf(path, g, &t, "the state's trace", kOp);
          Tensor t2 = weft::detail::empty(g.shape(), DType::float32);
          Tensor u = weft::detail::empty(g.shape(), DType::float32);
          (nesterov ? momentum_kernel<true> : momentum_kernel<false>)(data<float>(g), data<float>(t),
                                                                      mutable_data<float>(t2), mutable_data<float>(u),
                                                                      g.size(), momentum, scale);
          traces.push_back(std::move(t2));
          return u;
        },
        grads, trace);
    next = next.merge(detail::rebuild(grads, traces).prefixed("trace"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("sgd", std::move(out));
}

}  // namespace weft::optim
