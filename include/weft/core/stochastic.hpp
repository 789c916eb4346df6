#pragma once
// Dropout, as a pure layer function of the functional core (flax.linen.Dropout's math).
#include <optional>
#include <string>
#include <vector>

#include "weft/core/scope.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct DropoutOptions {
  required<float, "rate"> rate;          ///< probability of dropping an element, in [0, 1]
  required<bool, "deterministic"> deterministic;  ///< true: the identity (eval). Required: a default would break train or eval.
  std::vector<int> broadcast_dims{};   ///< axes along which one mask value is shared
  std::string rng_collection = "dropout";
};

struct dropout_fn {
  using options_type = DropoutOptions;
  /// Flax's order: deterministic or rate 0 returns x; rate 1 returns zeros; otherwise each element
  /// is kept with probability 1 - rate (the mask is jax.random.bernoulli(key, 1 - rate)) and scaled
  /// by 1 / (1 - rate). The key is `rng` or scope.make_rng(rng_collection).
  Tensor operator()(const DropoutOptions& options, Scope& scope, const Tensor& x,
                    std::optional<Key> rng = std::nullopt) const;
};
inline constexpr dropout_fn dropout{};

}  // namespace weft::core

WEFT_RECORD(weft::core::DropoutOptions, rate, deterministic, broadcast_dims, rng_collection);
