#pragma once
// nn::Sequential: heterogeneous layers applied in order (Linen's nn.Sequential). Modules run in child
// scopes named layers_0, layers_1, ... by their position; plain functions (relu) run as they are.
// The positional arguments go to the first layer; each later layer receives the previous output,
// splatted when it is a std::tuple or std::pair (Linen's convention for passing several values
// along). Call-time keyword arguments ("deterministic"_kw = !train) go to every layer that takes
// them.
#include <array>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weft/nn/module.hpp"

namespace weft::nn {

namespace diagnostic {
template <fixed_string Keyword, class Sequential>
struct WEFT_NO_LAYER_TAKES_KEYWORD;  // never defined: the first error line names both
template <fixed_string Keyword, class Sequential>
inline constexpr bool some_layer_takes_keyword = false;

template <fixed_string Keyword, class Sequential>
constexpr bool no_layer_takes_keyword() {
  (void)sizeof(WEFT_NO_LAYER_TAKES_KEYWORD<Keyword, Sequential>);
  static_assert(some_layer_takes_keyword<Keyword, Sequential>,
                "WEFT_NO_LAYER_TAKES_KEYWORD: no layer of the nn::Sequential takes this call-time keyword; check its "
                "spelling against the layers' call_keywords (deterministic, use_running_average, mask, ...)");
  return false;
}
}  // namespace diagnostic

template <class... Layers>
struct Sequential {
  static_assert(sizeof...(Layers) > 0, "weft::nn::Sequential: Empty Sequential module; give it at least one layer");
  std::tuple<Layers...> layers;

  static constexpr bool forwards_call_keywords = true;
  /// Whether some layer takes the call-time keyword `Name` (a Sequential inside a Sequential).
  template <fixed_string Name>
  static constexpr bool accepts_keyword() {
    return (nn::accepts_keyword<Layers, Name>() || ...);
  }

  /// The positional arguments go to the first layer, and every keyword argument to each layer
  /// that takes it (Linen's Sequential passes them to the first layer only, which drops `train`
  /// for the others, Flax issue #3017); a keyword that no layer takes is a compile error.
  template <class... Args>
  decltype(auto) operator()(Scope& s, Args&&... args) const {
    using split = weft::detail::split_arguments<Args...>;
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... K, std::size_t... P>(std::index_sequence<K...>, std::index_sequence<P...>)
               -> decltype(auto) {
      using Keywords = std::tuple<std::remove_cvref_t<std::tuple_element_t<K, std::tuple<Args...>>>...>;
      if constexpr (!keywords_taken<Keywords>(std::make_index_sequence<sizeof...(K)>{})) {
        return false;  // reported by keywords_taken
      } else {
        const Keywords keywords{std::get<K>(all)...};
        return run<0>(s, keywords, std::get<P>(std::move(all))...);
      }
    }(typename split::keywords{}, typename split::positionals{});
  }

 private:
  template <class T>
  static constexpr bool splats = requires { std::tuple_size<std::remove_cvref_t<T>>::value; };

  template <fixed_string Name>
  static constexpr bool keyword_taken() {
    if constexpr (accepts_keyword<Name>())
      return true;
    else
      return diagnostic::no_layer_takes_keyword<Name, Sequential>();
  }
  template <class Keywords, std::size_t... I>
  static constexpr bool keywords_taken(std::index_sequence<I...>) {
    return (keyword_taken<std::tuple_element_t<I, Keywords>::name>() & ... & true);  // & : every one reported
  }

  // The positions in Keywords of the keywords that layer L takes.
  template <class L, class Keywords>
  static constexpr auto taken_by() {
    constexpr std::size_t n = std::tuple_size_v<Keywords>;
    constexpr auto takes = []<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<bool, n>{nn::accepts_keyword<L, std::tuple_element_t<I, Keywords>::name>()...};
    }(std::make_index_sequence<n>{});
    constexpr std::size_t count = [&] {
      std::size_t c = 0;
      for (bool t : takes) c += t;
      return c;
    }();
    std::array<std::size_t, count> at{};
    for (std::size_t i = 0, j = 0; i < n; ++i)
      if (takes[i]) at[j++] = i;
    return at;
  }

  template <std::size_t I, class Keywords, class... Args>
  static decltype(auto) call(Scope& s, const auto& layer, const Keywords& keywords, Args&&... args) {
    using L = std::remove_cvref_t<decltype(layer)>;
    if constexpr (std::is_invocable_v<const L&, Scope&, Args...>) {
      static constexpr auto at = taken_by<L, Keywords>();
      return [&]<std::size_t... J>(std::index_sequence<J...>) -> decltype(auto) {
        return s("layers_" + std::to_string(I), layer, std::forward<Args>(args)..., std::get<at[J]>(keywords)...);
      }(std::make_index_sequence<at.size()>{});
    } else {
      return std::invoke(layer, std::forward<Args>(args)...);
    }
  }

  template <std::size_t I, class Keywords, class... Args>
  decltype(auto) run(Scope& s, const Keywords& keywords, Args&&... args) const {
    auto out = call<I>(s, std::get<I>(layers), keywords, std::forward<Args>(args)...);
    if constexpr (I + 1 == sizeof...(Layers)) {
      return out;
    } else if constexpr (splats<decltype(out)>) {
      return std::apply([&](auto&&... v) { return run<I + 1>(s, keywords, std::forward<decltype(v)>(v)...); },
                        std::move(out));
    } else {
      return run<I + 1>(s, keywords, std::move(out));
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
