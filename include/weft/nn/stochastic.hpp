#pragma once
// nn::Dropout (math in core::dropout). `deterministic` may be an attribute or a call argument,
// exactly once; it is merged first, so it is required even at rate 0 (as Linen).
#include <optional>
#include <string>
#include <vector>

#include "weft/core/stochastic.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct Dropout {
  required<float, "rate"> rate;
  std::vector<int> broadcast_dims{};
  std::optional<bool> deterministic{};
  std::string rng_collection = "dropout";

  /// `rng` overrides the key that would come from the rng_collection stream (Linen's rng argument).
  Tensor operator()(Scope& s, const Tensor& x, std::optional<bool> deterministic = std::nullopt,
                    std::optional<Key> rng = std::nullopt) const;

  /// Call-time keywords: s(dropout, x, "deterministic"_kw = !train, "rng"_kw = key).
  struct CallKeywords {
    std::optional<bool> deterministic{};
    std::optional<Key> rng{};
  };
  using call_keywords = CallKeywords;
  Tensor operator()(Scope& s, const Tensor& x, const CallKeywords& kw) const {
    return (*this)(s, x, kw.deterministic, kw.rng);
  }
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::Dropout, rate, broadcast_dims, deterministic, rng_collection);
WEFT_RECORD(weft::nn::Dropout::CallKeywords, deterministic, rng);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

inline Tensor Dropout::operator()(Scope& s, const Tensor& x, std::optional<bool> deterministic,
                                  std::optional<Key> rng) const {
  const bool det = merge_param("deterministic", this->deterministic, deterministic);
  return core::dropout(core_options<core::DropoutOptions>(*this, "deterministic"_kw = det), s, x, rng);
}

}  // namespace weft::nn
