#pragma once
// Masks and partitions of the params tree: optax.masked and optax.multi_transform, and the Mask of
// adamw, lamb, lion and add_decayed_weights.
//
//   // No weight decay on biases and norm scales (the usual use):
//   const optim::Mask decay_kernels = [](std::string_view path) {
//     return !path.ends_with("/bias") && !path.ends_with("/scale");
//   };
//   auto tx = optim::adamw(1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, decay_kernels);
//
//   // Different optimizers for labelled parts of the tree:
//   auto tx = optim::multi_transform({{"adam", optim::adam(1e-3f)}, {"sgd", optim::sgd(1e-2f)}},
//                                    [](std::string_view path) {
//                                      return path.starts_with("params/head") ? "sgd" : "adam";
//                                    });
#include <concepts>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "weft/optim/transform.hpp"

namespace weft::optim {

/// Which leaves a transformation applies to: every leaf (the default), a predicate of the full path
/// ("params/Dense_0/bias"), or a tree of flags (Optax's tree of bools): int32 or float32 scalars,
/// nonzero for true, at the params' paths or at prefixes of them ("params/Dense_0" covers every leaf
/// under it; the longest prefix wins). A leaf that a tree of flags does not cover is a weft::KeyError
/// naming its path.
class Mask {
 public:
  /// Every leaf.
  Mask() = default;
  /// A predicate of the path: any callable bool(std::string_view path).
  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, Mask> && !std::same_as<std::remove_cvref_t<F>, Variables> &&
             std::is_invocable_r_v<bool, const std::remove_cvref_t<F>&, std::string_view>)
  Mask(F&& predicate)  // NOLINT: a predicate is a mask
      : predicate_(std::forward<F>(predicate)) {}
  /// A tree of flags. A leaf that is not a scalar is a weft::ValueError naming it.
  Mask(Variables flags);  // NOLINT: a tree of flags is a mask

  /// True when the transformation applies to the leaf at `path`; `op` names the caller in errors.
  [[nodiscard]] bool applies_to(std::string_view path, const char* op) const;
  /// True for the default Mask (every leaf).
  [[nodiscard]] bool is_everything() const noexcept { return !predicate_ && flags_.empty(); }

 private:
  std::function<bool(std::string_view)> predicate_;
  Variables flags_;
};

/// The inner transformation applied to the leaves that `mask` selects only (optax.masked); the other
/// leaves' updates pass through unchanged. The inner transformation sees the selected leaves only, as
/// updates, params and in its state. State: the inner state under "inner_state/"
/// ("inner_state/count/count", "inner_state/mu/params/Dense_0/kernel", ...), Optax's
/// MaskedState(inner_state).
[[nodiscard]] GradientTransformation masked(GradientTransformation inner, Mask mask);

/// The label of each leaf: a callable std::string(std::string_view path), or a map from paths or
/// path prefixes to labels (the longest prefix wins; a leaf it does not cover is a weft::KeyError).
class Labels {
 public:
  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, Labels> &&
             !std::same_as<std::remove_cvref_t<F>, std::map<std::string, std::string>> &&
             std::is_invocable_v<const std::remove_cvref_t<F>&, std::string_view> &&
             std::convertible_to<std::invoke_result_t<const std::remove_cvref_t<F>&, std::string_view>, std::string>)
  Labels(F&& label_of)  // NOLINT: a function of the path is a labelling
      : label_of_([f = std::forward<F>(label_of)](std::string_view path) { return std::string(f(path)); }) {}
  Labels(std::map<std::string, std::string> by_prefix);  // NOLINT: a map of prefixes is a labelling

  /// The label of the leaf at `path`.
  [[nodiscard]] std::string of(std::string_view path, const char* op) const;

 private:
  std::function<std::string(std::string_view)> label_of_;
};

/// optax.multi_transform (optax.partition): transforms[label] applied, as masked(tx, label == its
/// label), to the leaves of that label; the transformations see the updates one after the other in
/// the order of their labels. A leaf whose label has no transformation is a weft::ValueError naming
/// the path and the label; a label must be a path segment (no '/', not empty). State: each label's
/// masked state under "inner_states/LABEL/" ("inner_states/adam/inner_state/count/count", ...),
/// Optax's PartitionState(inner_states).
[[nodiscard]] GradientTransformation multi_transform(std::map<std::string, GradientTransformation> transforms,
                                                     Labels param_labels);

}  // namespace weft::optim
