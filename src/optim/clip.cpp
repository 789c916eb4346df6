// clip_by_global_norm (optax.clip_by_global_norm) and the global norm it uses; clip (by value) and
// clip_by_block_rms.
#include "weft/optim/clip.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "internal.hpp"

namespace weft::optim {

namespace {

using weft::detail::data;

constexpr const char* kOp = "clip_by_global_norm";

float norm_of(const Variables& tree, const char* op) {
  double total = 0.0;
  tree_map(
      [&](std::string_view path, const Tensor& t) {
        detail::check_leaf(path, t, nullptr, "", op);
        total += detail::sum_squares(t);
        return t;
      },
      tree);
  return static_cast<float>(std::sqrt(total));
}

}  // namespace

float global_norm(const Variables& tree) { return norm_of(tree, "global_norm"); }

GradientTransformation clip_by_global_norm(float max_norm) {
  if (!(max_norm > 0.0f))
    throw ValueError(fmt::format("weft::optim::clip_by_global_norm: max_norm is {:.6f}; it must be positive (the "
                                 "largest global norm the updates may keep, e.g. 1.0)",
                                 max_norm));
  GradientTransformation out;
  out.init = [](const Variables&) { return Variables(); };
  out.update = [max_norm](const Variables& grads, const Variables& state, const Variables&) {
    const float norm = norm_of(grads, kOp);
    if (norm < max_norm) return std::pair{grads, state};  // as Optax: a NaN norm scales (to NaN)
    Variables clipped = tree_map(
        [norm, max_norm](const Tensor& g) {
          Tensor u = weft::detail::empty(g.shape(), DType::float32);
          const float* pg = data<float>(g);
          float* pu = weft::detail::mutable_data<float>(u);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
            for (std::int64_t i = b; i < e; ++i) pu[i] = (pg[i] / norm) * max_norm;
          });
          return u;
        },
        grads);
    return std::pair{std::move(clipped), state};
  };
  return detail::traced_transformation("clip_by_global_norm", std::move(out));
}

GradientTransformation clip(float max_delta) {
  if (!(max_delta >= 0.0f))
    throw ValueError(fmt::format("weft::optim::clip: max_delta is {:.6f}; it must be 0 or positive (each update is "
                                 "clipped to [-max_delta, max_delta])",
                                 max_delta));
  GradientTransformation out;
  out.init = [](const Variables&) { return Variables(); };
  out.update = [max_delta](const Variables& grads, const Variables& state, const Variables&) {
    Variables clipped = tree_map(
        [max_delta](std::string_view path, const Tensor& g) {
          detail::check_leaf(path, g, nullptr, "", "clip");
          Tensor u = detail::new_like(g);
          const float* pg = data<float>(g);
          float* pu = weft::detail::mutable_data<float>(u);
          const float lo = -max_delta;
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
            // jnp.clip: min(max(x, lo), hi); NaN stays NaN.
            for (std::int64_t i = b; i < e; ++i) {
              const float x = pg[i];
              pu[i] = x < lo ? lo : (x > max_delta ? max_delta : x);
            }
          });
          return u;
        },
        grads);
    return std::pair{std::move(clipped), state};
  };
  return detail::traced_transformation("clip", std::move(out));
}

GradientTransformation clip_by_block_rms(float threshold) {
  if (!(threshold > 0.0f))
    throw ValueError(fmt::format("weft::optim::clip_by_block_rms: threshold is {:.6f}; it must be positive (the "
                                 "largest root mean square each leaf keeps, e.g. 1.0)",
                                 threshold));
  GradientTransformation out;
  out.init = [](const Variables&) { return Variables(); };
  out.update = [threshold](const Variables& grads, const Variables& state, const Variables&) {
    Variables clipped = tree_map(
        [threshold](std::string_view path, const Tensor& g) {
          detail::check_leaf(path, g, nullptr, "", "clip_by_block_rms");
          if (g.size() == 0) return g;
          const auto rms = static_cast<float>(std::sqrt(detail::sum_squares(g) / static_cast<double>(g.size())));
          const float denom = std::max(1.0f, rms / threshold);
          Tensor u = detail::new_like(g);
          const float* pg = data<float>(g);
          float* pu = weft::detail::mutable_data<float>(u);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
            for (std::int64_t i = b; i < e; ++i) pu[i] = pg[i] / denom;
          });
          return u;
        },
        grads);
    return std::pair{std::move(clipped), state};
  };
  return detail::traced_transformation("clip_by_block_rms", std::move(out));
}

}  // namespace weft::optim
