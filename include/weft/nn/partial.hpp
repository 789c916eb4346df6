#pragma once
// Module templates and clones for weft::nn, on the machinery of weft::partial: an nn module is an
// aggregate whose fields are its attributes, adapted with WEFT_RECORD.
//
//   auto dense = weft::nn::partial<Dense>("use_bias"_kw = false);   // Flax: partial(nn.Dense, use_bias=False)
//   Dense d = dense("features"_kw = 64);                            // Dense{.features = 64, .use_bias = false}
//   Dense e = weft::nn::clone(d, "features"_kw = 32);               // Flax: d.clone(features=32)
//
// Fixing an attribute twice (in the template and again at the call, or twice in one call), an
// attribute the module does not have, a value of the wrong type and a required attribute never
// given are compile errors that name the attribute (WEFT_KEYWORD_BOUND_TWICE, WEFT_UNKNOWN_KEYWORD,
// WEFT_KEYWORD_TYPE_MISMATCH, WEFT_MISSING_REQUIRED; see weft/record.hpp).
#include <utility>

#include "weft/keywords.hpp"
#include "weft/partial.hpp"
#include "weft/record.hpp"

namespace weft::nn {

namespace detail {
// The function a module template partially applies: it returns the record it is given.
template <record M>
struct make_module {
  using options_type = M;
  constexpr M operator()(M module) const { return module; }
};
}  // namespace detail

/// A template for the module M with the attributes `attributes` fixed: a keyword partial whose
/// call `(more_attributes...)` returns the M with both sets of attributes, every other attribute
/// at its default. It flattens with weft::partial like any keyword partial.
template <record M, class... Kw>
  requires(keyword_argument<Kw> && ...)
[[nodiscard]] constexpr auto partial(Kw&&... attributes) {
  return weft::detail::partial_access::with_keywords(detail::make_module<M>{}, std::forward<Kw>(attributes)...);
}

/// A copy of `module` with the attributes named by `updates` replaced.
template <record M, class... Kw>
  requires(keyword_argument<Kw> && ...)
[[nodiscard]] constexpr M clone(M module, Kw&&... updates) {
  return with_fields(std::move(module), std::forward<Kw>(updates)...);
}

}  // namespace weft::nn
