#pragma once
// nn::Sequential: heterogeneous layers applied in order (Linen's nn.Sequential). Modules run in child
// scopes named layers_0, layers_1, ... by their position; plain functions (relu) run as they are.
// The arguments go to the first layer; each later layer receives the previous output, splatted
// when it is a std::tuple or std::pair (Linen's convention for passing several values along).
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weft/nn/module.hpp"

namespace weft::nn {

template <class... Layers>
struct Sequential {
  static_assert(sizeof...(Layers) > 0, "weft::nn::Sequential: Empty Sequential module; give it at least one layer");
  std::tuple<Layers...> layers;

  template <class... Args>
  decltype(auto) operator()(Scope& s, Args&&... args) const {
    return run<0>(s, std::forward<Args>(args)...);
  }

 private:
  template <class T>
  static constexpr bool splats = requires { std::tuple_size<std::remove_cvref_t<T>>::value; };

  template <std::size_t I, class... Args>
  static decltype(auto) call(Scope& s, const auto& layer, Args&&... args) {
    using L = std::remove_cvref_t<decltype(layer)>;
    if constexpr (std::is_invocable_v<const L&, Scope&, Args...>)
      return s("layers_" + std::to_string(I), layer, std::forward<Args>(args)...);
    else
      return std::invoke(layer, std::forward<Args>(args)...);
  }

  template <std::size_t I, class... Args>
  decltype(auto) run(Scope& s, Args&&... args) const {
    auto out = call<I>(s, std::get<I>(layers), std::forward<Args>(args)...);
    if constexpr (I + 1 == sizeof...(Layers)) {
      return out;
    } else if constexpr (splats<decltype(out)>) {
      return std::apply([&](auto&&... v) { return run<I + 1>(s, std::forward<decltype(v)>(v)...); }, std::move(out));
    } else {
      return run<I + 1>(s, std::move(out));
    }
  }
};

template <class... Layers>
Sequential(std::tuple<Layers...>) -> Sequential<Layers...>;

/// nn::sequential(a, b, c) == nn::Sequential{std::tuple{a, b, c}}.
template <class... Layers>
[[nodiscard]] Sequential<std::decay_t<Layers>...> sequential(Layers&&... layers) {
  return {std::tuple<std::decay_t<Layers>...>(std::forward<Layers>(layers)...)};
}

}  // namespace weft::nn
