#pragma once
// Reverse-mode automatic differentiation: weft::grad and weft::value_and_grad.
//
// value_and_grad(f)(x, args...) runs f with x's differentiable leaves
// recorded, then walks the recorded ops backwards from f's scalar result.
// Nothing else is recorded: a tensor that does not depend on x carries no
// node, and ops on such tensors only test a null pointer. The differentiable
// argument is a Tensor, a std::vector<Tensor>, or weft::Variables (its
// `params` collection; other collections such as batch_stats are constants).
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/ops.hpp"  // stop_gradient: the value without its graph, so the caller does not keep it alive
#include "weft/tensor.hpp"

namespace weft {

namespace autodiff {

/// `value` recorded as the `index`-th leaf of a gradient computation.
Tensor track_leaf(const Tensor& value, std::size_t index);
/// Gradients of the scalar `output` with respect to each of `leaves` (tracked by track_leaf with
/// indices 0..n-1), each of its leaf's shape; zeros where the output does not depend on a leaf.
std::vector<Tensor> gradients(const Tensor& output, std::span<const Tensor> leaves);

/// How a differentiable argument is taken apart into leaves and put back together:
/// `leaves(x)` lists what is differentiated, `rebuild(x, leaves)` is x with those leaves replaced
/// (to run f on recorded leaves), and `gradient(x, grads)` packs one gradient per leaf into the
/// gradient's type. Specialised for Tensor and std::vector<Tensor> here, and for Variables in
/// variables.hpp (leaves: the `params` collection; gradient: a Variables of that collection only).
template <class T>
struct Differentiable;

template <>
struct Differentiable<Tensor> {
  static std::vector<Tensor> leaves(const Tensor& t) { return {t}; }
  static Tensor rebuild(const Tensor&, std::vector<Tensor> leaves) { return std::move(leaves[0]); }
  static Tensor gradient(const Tensor&, std::vector<Tensor> grads) { return std::move(grads[0]); }
};

template <>
struct Differentiable<std::vector<Tensor>> {
  static std::vector<Tensor> leaves(const std::vector<Tensor>& ts) { return ts; }
  static std::vector<Tensor> rebuild(const std::vector<Tensor>&, std::vector<Tensor> leaves) { return leaves; }
  static std::vector<Tensor> gradient(const std::vector<Tensor>&, std::vector<Tensor> grads) { return grads; }
};

template <class T>
concept DifferentiableArgument = requires(const T& t, std::vector<Tensor> leaves) {
  { Differentiable<T>::leaves(t) } -> std::same_as<std::vector<Tensor>>;
  { Differentiable<T>::rebuild(t, std::move(leaves)) } -> std::same_as<T>;
  Differentiable<T>::gradient(t, std::move(leaves));
};

template <class T>
using gradient_t = decltype(Differentiable<T>::gradient(std::declval<const T&>(), std::vector<Tensor>{}));

void check_scalar_output(const Tensor& value, const char* where);

}  // namespace autodiff

/// The value of f and its gradient with respect to f's first argument.
template <class G>
struct ValueAndGrad {
  Tensor value;
  G grad;
};

/// The same, with the auxiliary output of an f that returns std::pair<Tensor, Aux>.
template <class G, class Aux>
struct ValueAuxAndGrad {
  Tensor value;
  Aux aux;
  G grad;
};

namespace autodiff::detail {

template <class F, class X, class... Args>
auto run_recorded(const F& f, const X& x, std::vector<Tensor>& leaves, Args&&... args) {
  leaves = Differentiable<X>::leaves(x);
  std::vector<Tensor> tracked;
  tracked.reserve(leaves.size());
  for (std::size_t i = 0; i < leaves.size(); ++i) tracked.push_back(track_leaf(leaves[i], i));
  const X xt = Differentiable<X>::rebuild(x, std::move(tracked));
  return f(xt, std::forward<Args>(args)...);
}

template <class X>
gradient_t<X> grads_of(const X& x, const Tensor& value, const std::vector<Tensor>& leaves) {
  return Differentiable<X>::gradient(x, gradients(value, leaves));
}

}  // namespace autodiff::detail

/// value_and_grad(f) is a callable (x, args...) -> ValueAndGrad<X>{f(x, args...), df/dx}.
/// f must return a scalar float32 Tensor.
template <class F>
auto value_and_grad(F f) {
  return [f = std::move(f)]<autodiff::DifferentiableArgument X, class... Args>(const X& x, Args&&... args) {
    std::vector<Tensor> leaves;
    Tensor value = autodiff::detail::run_recorded(f, x, leaves, std::forward<Args>(args)...);
    autodiff::check_scalar_output(value, "value_and_grad");
    auto g = autodiff::detail::grads_of(x, value, leaves);
    return ValueAndGrad<autodiff::gradient_t<X>>{stop_gradient(value), std::move(g)};
  };
}

/// For f returning std::pair<Tensor, Aux> (the loss and, say, updated batch statistics):
/// a callable (x, args...) -> ValueAuxAndGrad<X, Aux>.
template <class F>
auto value_and_grad_with_aux(F f) {
  return [f = std::move(f)]<autodiff::DifferentiableArgument X, class... Args>(const X& x, Args&&... args) {
    std::vector<Tensor> leaves;
    auto [value, aux] = autodiff::detail::run_recorded(f, x, leaves, std::forward<Args>(args)...);
    autodiff::check_scalar_output(value, "value_and_grad_with_aux");
    auto g = autodiff::detail::grads_of(x, value, leaves);
    return ValueAuxAndGrad<autodiff::gradient_t<X>, std::decay_t<decltype(aux)>>{stop_gradient(value),
                                                                                std::move(aux), std::move(g)};
  };
}

/// grad(f) is a callable (x, args...) -> df/dx.
template <class F>
auto grad(F f) {
  return [vg = value_and_grad(std::move(f))]<class X, class... Args>(const X& x, Args&&... args) {
    return vg(x, std::forward<Args>(args)...).grad;
  };
}

}  // namespace weft
