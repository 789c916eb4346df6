// chain and apply_updates.
#include "weft/optim/transform.hpp"

#include <memory>
#include <string>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"
#include "weft/ops.hpp"

namespace weft::optim {

GradientTransformation chain(std::vector<GradientTransformation> parts) {
  for (std::size_t i = 0; i < parts.size(); ++i)
    if (!parts[i].init || !parts[i].update)
      throw ValueError(fmt::format("weft::optim::chain: part {} has no {} function; give transformations made by "
                                   "weft::optim (adam, sgd, clip_by_global_norm, ...)",
                                   i, parts[i].init ? "update" : "init"));
  auto shared = std::make_shared<const std::vector<GradientTransformation>>(std::move(parts));
  GradientTransformation out;
  out.init = [shared](const Variables& params) {
    Variables state;
    for (std::size_t i = 0; i < shared->size(); ++i) {
      const Variables part = (*shared)[i].init(params);
      if (!part.empty()) state = state.merge(part.prefixed(std::to_string(i)));
    }
    return state;
  };
  out.update = [shared](const Variables& grads, const Variables& state, const Variables& params) {
    Variables updates = grads, next;
    for (std::size_t i = 0; i < shared->size(); ++i) {
      const std::string key = std::to_string(i);
      auto [u, s] = (*shared)[i].update(updates, state.unprefixed(key), params);
      updates = std::move(u);
      if (!s.empty()) next = next.merge(s.prefixed(key));
    }
    return std::pair{std::move(updates), std::move(next)};
  };
  return out;
}

namespace {

/// po[i] = pp[i] + pu[i]; po may be pp or pu (element i is read before it is written).
void add_leaf(const float* pp, const float* pu, float* po, std::int64_t n) {
  detail::for_chunks(n, [=](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) po[i] = pp[i] + pu[i];
  });
}

}  // namespace

Variables apply_updates(const Variables& params, const Variables& updates) {
  constexpr const char* op = "apply_updates";
  detail::check_structure(params, "the params", updates, "the updates", op);
  return tree_map(
      [](std::string_view path, const Tensor& p, const Tensor& u) -> Tensor {
        if (p.dtype() != DType::float32 || u.dtype() != DType::float32)
          throw DTypeError(fmt::format("{}: at \"{}\" the param is {} and the update {}; optimizers update float32 "
                                       "params only",
                                       detail::where(op), path, name(p.dtype()), name(u.dtype())));
        if (p.shape() != u.shape())
          throw ShapeError(fmt::format("{}: at \"{}\" the param is {} {} but the update is {} {}; updates must have "
                                       "the params' shapes",
                                       detail::where(op), path, name(p.dtype()), p.shape().str(), name(u.dtype()),
                                       u.shape().str()));
        if (autodiff::any_tracked(p, u)) return p + u;  // differentiable, through the recorded add
        // One op, lowered for weft::jit to one pass that may write over a donated param.
        const auto lower = [](const Tensor& p, const Tensor&, const Tensor&) -> weft::detail::JitKernel {
          return {[n = p.size()](const void* const* in, void* const* out) {
                    add_leaf(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                             static_cast<float*>(out[0]), n);
                  },
                  {{0, 0}, {0, 1}},
                  false,
                  true};
        };
        return weft::detail::traced_lowered(
            "apply_updates",
            [](const Tensor& p, const Tensor& u) {
              Tensor out = weft::detail::empty(p.shape(), DType::float32);
              add_leaf(weft::detail::data<float>(p), weft::detail::data<float>(u),
                       weft::detail::mutable_data<float>(out), p.size());
              return out;
            },
            lower, p, u);
      },
      params, updates);
}

}  // namespace weft::optim
