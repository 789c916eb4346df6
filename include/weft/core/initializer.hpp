#pragma once
// core::Initializer: the type-erased (key, shape) -> Tensor callable that Scope::param takes and
// every module value holds.
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "weft/random.hpp"
#include "weft/shape.hpp"
#include "weft/tensor.hpp"

namespace weft::core {

class Initializer;
namespace detail {
/// A copy of `owner` that holds no reference count, so that copying it costs no atomic operation.
/// Only for initializers that live until the program ends (function-local statics): the built-in
/// defaults, which every module value copies.
[[nodiscard]] Initializer program_lifetime(const Initializer& owner);
}  // namespace detail

/// An initializer: (key, shape) -> a new tensor of that shape. Holds any such callable, shared and
/// immutable, so that copying an initializer (every module value holds some) costs a reference count;
/// copying a built-in default (zeros, lecun_normal, ...) costs none, as those live as long as the program.
class Initializer {
 public:
  Initializer() = default;  // empty: "no initializer"; calling it is an error
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, Initializer> && std::is_invocable_r_v<Tensor, const F&, Key, const Shape&>)
  Initializer(F f)  // NOLINT: any (key, shape) -> Tensor callable is an initializer
      : fn_(std::make_shared<const std::function<Tensor(Key, const Shape&)>>(std::move(f))) {}

  Tensor operator()(Key key, const Shape& shape) const;
  explicit operator bool() const noexcept { return fn_ != nullptr; }

 private:
  friend Initializer detail::program_lifetime(const Initializer& owner);
  std::shared_ptr<const std::function<Tensor(Key, const Shape&)>> fn_;
};

}  // namespace weft::core
