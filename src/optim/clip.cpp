// clip_by_global_norm (optax.clip_by_global_norm) and the global norm it uses.
#include "weft/optim/clip.hpp"

#include <cmath>

#include <fmt/format.h>

#include "internal.hpp"

namespace weft::optim {

namespace {

using weft::detail::data;

constexpr const char* kOp = "clip_by_global_norm";

double sum_squares(const float* x, std::int64_t begin, std::int64_t end) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = begin; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

/// The sum of squares of a float32 tensor, in chunks of a size fixed by the length (summed in parallel,
/// then combined in order: the same result on any thread count).
double sum_squares(const Tensor& t) {
  const float* x = data<float>(t);
  const std::int64_t n = t.size(), chunk = weft::detail::kParallelGrain;
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks <= 1) return sum_squares(x, 0, n);
  std::vector<double> partial(static_cast<std::size_t>(chunks));
  weft::detail::parallel_for(chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c)
      partial[static_cast<std::size_t>(c)] = sum_squares(x, c * chunk, std::min(n, (c + 1) * chunk));
  });
  double total = 0.0;
  for (const double p : partial) total += p;
  return total;
}

float norm_of(const Variables& tree, const char* op) {
  double total = 0.0;
  tree_map(
      [&](std::string_view path, const Tensor& t) {
        detail::check_leaf(path, t, nullptr, "", op);
        total += sum_squares(t);
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
  return out;
}

}  // namespace weft::optim
