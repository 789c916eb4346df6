#pragma once
// nn::Remat: gradient checkpointing of a sub-module (flax.linen.remat, alias nn.checkpoint).
#include <array>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/nn/module.hpp"
#include "weft/tensor.hpp"

namespace weft::nn {

namespace detail {

/// The call that nn::Remat checkpoints, with its module and non-tensor arguments bound: runs the
/// module in `scope` on `inputs` (its tensor arguments, in order) under the run context `run`.
using RematBody = std::function<Tensor(core::Scope& scope, std::span<const Tensor> inputs, const RunContext& run)>;

/// Runs `body` in `scope` (the scope the wrapped module runs in) through autodiff::checkpoint, over
/// the tensor inputs and the tracked parameters under the scope: the forward call runs in `scope`
/// itself, and the recomputation in a copy of the call's state as it was when the call began (its
/// variables under the scope, its random streams and counters), so that it draws the same keys.
/// `where` names the module for messages.
Tensor remat_call(core::Scope& scope, std::span<const Tensor> inputs, const RunContext& run, RematBody body,
                  const std::string& where);

template <class T>
inline constexpr bool is_tensor_argument = std::is_same_v<std::remove_cvref_t<T>, Tensor>;

/// For each argument, its index among the tensor arguments (the position of a non-tensor unused).
template <class... Args>
constexpr std::array<std::size_t, sizeof...(Args)> tensor_indices() {
  constexpr bool is_tensor[] = {is_tensor_argument<Args>..., false};
  std::array<std::size_t, sizeof...(Args)> index{};
  std::size_t next = 0;
  for (std::size_t i = 0; i < sizeof...(Args); ++i) {
    index[i] = next;
    if (is_tensor[i]) ++next;
  }
  return index;
}

/// What the recomputation keeps of an argument: the value, or for a tensor (an input of the
/// checkpoint, kept by its node) nothing.
template <class T>
T bind_argument(const T& argument) {
  if constexpr (is_tensor_argument<T>)
    return Tensor{};
  else
    return argument;
}

/// The argument `bound`, or when it is a tensor, the `index`-th of `inputs` in its place.
template <class T>
const T& pick_argument(const T& bound, std::span<const Tensor> inputs, std::size_t index) {
  if constexpr (is_tensor_argument<T>)
    return inputs[index];
  else
    return bound;
}

}  // namespace detail

/// Linen's nn.remat(Module) (nn.checkpoint, jax.checkpoint lifted to modules): `module` run so that
/// the backward pass recomputes its activations from its inputs instead of keeping them from the
/// forward pass, trading compute for memory. Its parameters, their paths and its results are those
/// of `module` unwrapped: s(nn::remat(Block{}), x) runs in the child `Block_0` (the counter shared
/// with Block's), a field `nn::Remat<Block> block` in the child `block`. (Linen names the lifted
/// class `CheckpointBlock`, so its compact-style child is `CheckpointBlock_0`; weft keeps `Block_0`
/// so that wrapping a block does not move its parameters.) Gradients equal the unwrapped ones, with
/// the same arithmetic; random streams (dropout) replay the same keys in the recomputation. The
/// tensor arguments are the checkpoint's inputs and every other argument is bound as it is (Linen's
/// static_argnums, for all non-tensor arguments); the module returns one Tensor. Linen's
/// prevent_cse (an XLA barrier) and policy (which intermediates to keep) have no counterpart: every
/// intermediate is recomputed. Under init the module runs as it is. A tensor the module holds or
/// captures that is being differentiated (neither an input nor one of its parameters) is a
/// weft::ValueError naming the module: pass it as an argument.
template <class M>
struct Remat {
  M module;  ///< the module checkpointed

  /// The module's call, checkpointed: `module(s, args...)` with the same scope, parameters and result.
  template <class... Args>
  Tensor operator()(Scope& s, const Args&... args) const {
    static_assert(std::is_same_v<std::remove_cvref_t<std::invoke_result_t<const M&, Scope&, const Args&...>>, Tensor>,
                  "weft::nn::Remat: the module's call operator must return one Tensor");
    std::vector<Tensor> inputs;
    inputs.reserve(sizeof...(Args));
    (
        [&](const auto& a) {
          if constexpr (detail::is_tensor_argument<decltype(a)>) inputs.push_back(a);
        }(args),
        ...);
    detail::RematBody body = [module = module, bound = std::tuple<Args...>(detail::bind_argument(args)...)](
                                 core::Scope& scope, std::span<const Tensor> in, const detail::RunContext& run) {
      Scope view(scope, module, run);  // the same scope, as the scope of `module` itself
      return [&]<std::size_t... I>(std::index_sequence<I...>) -> Tensor {
        constexpr auto index = detail::tensor_indices<Args...>();
        return detail::invoke_module(module, view, detail::pick_argument(std::get<I>(bound), in, index[I])...);
      }(std::index_sequence_for<Args...>{});
    };
    return detail::remat_call(s, inputs, s.run_context(), std::move(body), s.describe());
  }
};

/// nn::remat(module): `module` checkpointed (Linen's nn.remat(Module)(attributes...)).
template <class M>
[[nodiscard]] Remat<M> remat(M module) {
  return Remat<M>{std::move(module)};
}

/// A checkpointed module is named as the module it wraps (its compact-style child is `Block_0`).
template <class M>
inline constexpr std::string_view type_name_v<Remat<M>> = type_name_v<M>;

}  // namespace weft::nn
