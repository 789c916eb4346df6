#pragma once
// weft::partial: std::bind_front that can also bind by keyword.
//
//   auto add1 = weft::partial(add, 1);          // add1(2) == add(1, 2)
//
// Positional binding is std::bind_front: decayed copies of f and the arguments, called with the
// bound arguments first (as lvalues, const lvalues or rvalues, following the partial object's own
// value category) and the call's arguments perfectly forwarded; constexpr wherever f is.
//
// Keyword binding fills the record that a function takes as its first parameter:
//
//   Tensor dropout(const DropoutOptions& o, Scope& s, const Tensor& x);
//   auto drop = weft::partial(dropout, "rate"_kw = 0.1f);
//   drop("deterministic"_kw = true, scope, x);   // dropout({.rate = 0.1f, .deterministic = true}, scope, x)
//
// The record type is F::options_type when F (a function object, an overload set) names one, and
// otherwise the first parameter of a plain function, function pointer or non-generic lambda; it
// must be a record (record.hpp). Keyword arguments may stand anywhere among the arguments of
// partial(...) and of the call; the other (positional) arguments keep their order and follow the
// record: the ones given to partial first (bind_front of the remaining parameters), then the
// call's. At the call the record is assembled from the bound keywords and the call's keywords,
// with every other field at its default, and passed first.
//
// Mistakes are compile errors whose first lines name the keyword (record.hpp): a keyword bound
// twice, at partial application and again at the call or twice in one partial
// (WEFT_KEYWORD_BOUND_TWICE), a keyword that is not a field (WEFT_UNKNOWN_KEYWORD), a value of the
// wrong type (WEFT_KEYWORD_TYPE_MISMATCH), a required field never given (WEFT_MISSING_REQUIRED).
//
// Partials flatten: partial(partial(f, a), b) is partial(f, a, b), type included, for positional
// and for keyword partials alike.
#include <array>
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/callable_traits/args.hpp>

#include "weft/keywords.hpp"
#include "weft/record.hpp"

namespace weft {

/// The result of weft::partial with positional arguments only: F with Bound... bound in front.
template <class F, class... Bound>
class bound_front;

/// The result of weft::partial with keyword arguments: F, whose first parameter is Record, with
/// the kwargs Keywords (a std::tuple) and the positional arguments Bound (a std::tuple) bound.
template <class F, class Record, class Keywords, class Bound>
class keyword_partial;

namespace detail {

template <class F>
concept names_options_type = requires { typename F::options_type; };

template <class F>
struct options_of {};  // no record: F is generic, or takes no parameter

template <class F>
  requires names_options_type<F>
struct options_of<F> {
  using type = typename F::options_type;
};

template <class F>
  requires(!names_options_type<F> && !std::is_member_pointer_v<F> &&
           requires { typename boost::callable_traits::args_t<F>; } &&
           std::tuple_size_v<boost::callable_traits::args_t<F>> > 0)
struct options_of<F> {
  using type = std::remove_cvref_t<std::tuple_element_t<0, boost::callable_traits::args_t<F>>>;
};

}  // namespace detail

/// The record that keywords bound to F fill (see the top of this file); absent if there is none.
template <class F>
using options_type_t = typename detail::options_of<std::remove_cvref_t<F>>::type;

namespace diagnostic {

template <class F>
inline constexpr bool function_names_a_record = false;

template <class F>
constexpr bool no_record() {
  static_assert(function_names_a_record<F>,
                "WEFT_NO_RECORD: keywords fill the record that the function takes first, but this function "
                "names none: give a function object `using options_type = Record;`, or use a plain function or "
                "non-generic lambda whose first parameter is the record");
  return false;
}

template <class F, class Type>
constexpr bool not_a_record() {
  static_assert(record<Type>,
                "WEFT_NOT_A_RECORD: keywords fill the record that the function takes first, but that type is "
                "not a record: adapt it with WEFT_RECORD(Type, field...) at global scope");
  return false;
}

template <class F, class... Args>
constexpr bool not_callable() {
  static_assert(std::is_invocable_v<F, Args...>,
                "WEFT_NOT_CALLABLE: the function cannot be called with the record followed by the positional "
                "arguments (bound ones first, then the call's)");
  return false;
}

}  // namespace diagnostic

namespace detail {

template <class T>
inline constexpr bool is_bound_front_v = false;
template <class F, class... B>
inline constexpr bool is_bound_front_v<bound_front<F, B...>> = true;

template <class T>
inline constexpr bool is_empty_bound_front_v = false;  // partial(f) with nothing bound
template <class F>
inline constexpr bool is_empty_bound_front_v<bound_front<F>> = true;

template <class T>
inline constexpr bool is_keyword_partial_v = false;
template <class F, class R, class K, class B>
inline constexpr bool is_keyword_partial_v<keyword_partial<F, R, K, B>> = true;

// The positions of the keyword arguments and of the positional ones among Args..., in order.
template <class... Args>
struct split_arguments {
  static constexpr std::array<bool, sizeof...(Args)> is_keyword{keyword_argument<Args>...};
  static constexpr std::size_t keyword_count = (std::size_t{keyword_argument<Args>} + ... + 0);

  template <bool Keyword>
  static constexpr auto positions() {
    std::array<std::size_t, Keyword ? keyword_count : sizeof...(Args) - keyword_count> out{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < sizeof...(Args); ++i)
      if (is_keyword[i] == Keyword) out[n++] = i;
    return out;
  }
  template <auto Positions, std::size_t... I>
  static std::index_sequence<Positions[I]...> sequence(std::index_sequence<I...>);

  static constexpr auto keyword_positions = positions<true>();
  static constexpr auto positional_positions = positions<false>();
  using keywords = decltype(sequence<keyword_positions>(std::make_index_sequence<keyword_positions.size()>{}));
  using positionals =
      decltype(sequence<positional_positions>(std::make_index_sequence<positional_positions.size()>{}));
};

// Element I of the tuple of references `args` (std::forward_as_tuple), with its value category.
template <std::size_t I, class Tuple>
constexpr decltype(auto) arg(Tuple& args) noexcept {
  return std::get<I>(std::move(args));
}

// Builds partials; the only code that reaches into them (flattening reads their parts).
struct partial_access {
  template <class P>
  static constexpr decltype(auto) fn(P&& p) noexcept {
    return (std::forward<P>(p).f_);
  }
  template <class P>
  static constexpr decltype(auto) bound(P&& p) noexcept {
    return (std::forward<P>(p).bound_);
  }
  template <class P>
  static constexpr decltype(auto) keywords(P&& p) noexcept {
    return (std::forward<P>(p).keywords_);
  }

  // bound_front<F, B..., A...> from f (a function or a bound_front<F, B...>) and args.
  template <class F, class... Args>
  static constexpr auto positional(F&& f, Args&&... args) {
    using G = std::remove_cvref_t<F>;
    if constexpr (is_bound_front_v<G>) {
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return bound_front<typename G::function_type, std::tuple_element_t<I, typename G::bound_type>...,
                           std::decay_t<Args>...>(std::in_place, fn(std::forward<F>(f)),
                                                  std::get<I>(bound(std::forward<F>(f)))...,
                                                  std::forward<Args>(args)...);
      }(std::make_index_sequence<std::tuple_size_v<typename G::bound_type>>{});
    } else {
      return bound_front<std::decay_t<F>, std::decay_t<Args>...>(std::in_place, std::forward<F>(f),
                                                                 std::forward<Args>(args)...);
    }
  }

  // keyword_partial from f (a function, a keyword_partial, or a bound_front with nothing bound)
  // and args, checking the bound keywords against the record.
  template <class F, class... Args>
  static constexpr auto with_keywords(F&& f, Args&&... args) {
    using G = std::remove_cvref_t<F>;
    using split = split_arguments<Args...>;
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    if constexpr (is_keyword_partial_v<G>) {
      return extend(std::forward<F>(f), all, typename split::keywords{}, typename split::positionals{},
                    std::make_index_sequence<std::tuple_size_v<typename G::keywords_type>>{},
                    std::make_index_sequence<std::tuple_size_v<typename G::bound_type>>{});
    } else if constexpr (is_empty_bound_front_v<G>) {
      return with_keywords(fn(std::forward<F>(f)), std::forward<Args>(args)...);
    } else if constexpr (!requires { typename options_type_t<G>; }) {
      return diagnostic::no_record<G>();
    } else if constexpr (!record<options_type_t<G>>) {
      return diagnostic::not_a_record<G, options_type_t<G>>();
    } else {
      return extend(std::forward<F>(f), all, typename split::keywords{}, typename split::positionals{},
                    std::index_sequence<>{}, std::index_sequence<>{});
    }
  }

  // The keyword partial with f's keywords and bound arguments (BK..., BP...; none when f is not a
  // keyword partial) followed by args' (K..., P...).
  template <class F, class Tuple, std::size_t... K, std::size_t... P, std::size_t... BK, std::size_t... BP>
  static constexpr auto extend(F&& f, Tuple& args, std::index_sequence<K...>, std::index_sequence<P...>,
                               std::index_sequence<BK...>, std::index_sequence<BP...>) {
    using G = std::remove_cvref_t<F>;
    if constexpr (is_keyword_partial_v<G>) {
      using Record = typename G::record_type;
      using Keywords = std::tuple<std::tuple_element_t<BK, typename G::keywords_type>...,
                                  std::remove_cvref_t<std::tuple_element_t<K, Tuple>>...>;
      using Bound = std::tuple<std::tuple_element_t<BP, typename G::bound_type>...,
                               std::decay_t<std::tuple_element_t<P, Tuple>>...>;
      if constexpr (keywords_fit_v<Record, std::tuple_element_t<BK, typename G::keywords_type>...,
                                   std::remove_cvref_t<std::tuple_element_t<K, Tuple>>...>) {
        return keyword_partial<typename G::function_type, Record, Keywords, Bound>(
            std::in_place, fn(std::forward<F>(f)),
            std::forward_as_tuple(std::get<BK>(keywords(std::forward<F>(f)))..., arg<K>(args)...),
            std::forward_as_tuple(std::get<BP>(bound(std::forward<F>(f)))..., arg<P>(args)...));
      } else {
        return false;  // reported by keywords_fit
      }
    } else {
      using Record = options_type_t<G>;
      using Keywords = std::tuple<std::remove_cvref_t<std::tuple_element_t<K, Tuple>>...>;
      using Bound = std::tuple<std::decay_t<std::tuple_element_t<P, Tuple>>...>;
      if constexpr (keywords_fit_v<Record, std::remove_cvref_t<std::tuple_element_t<K, Tuple>>...>) {
        return keyword_partial<std::decay_t<F>, Record, Keywords, Bound>(
            std::in_place, std::forward<F>(f), std::forward_as_tuple(arg<K>(args)...),
            std::forward_as_tuple(arg<P>(args)...));
      } else {
        return false;  // reported by keywords_fit
      }
    }
  }

  // Calls a keyword partial `self` with `args`: f(record, bound positionals..., positional args...).
  template <class Self, class Tuple, std::size_t... K, std::size_t... P, std::size_t... BK, std::size_t... BP>
  static constexpr decltype(auto) call_split(Self&& self, Tuple args, std::index_sequence<K...>,
                                             std::index_sequence<P...>, std::index_sequence<BK...>,
                                             std::index_sequence<BP...>) {
    using G = std::remove_cvref_t<Self>;
    using Record = typename G::record_type;
    using Fn = decltype(fn(std::forward<Self>(self)));
    if constexpr (!std::is_invocable_v<Fn, Record, decltype(std::get<BP>(bound(std::forward<Self>(self))))...,
                                       std::tuple_element_t<P, Tuple>...>) {
      diagnostic::not_callable<Fn, Record, decltype(std::get<BP>(bound(std::forward<Self>(self))))...,
                               std::tuple_element_t<P, Tuple>...>();
    } else {
      return std::invoke(fn(std::forward<Self>(self)),
                         make_record<Record>(std::get<BK>(keywords(std::forward<Self>(self)))..., arg<K>(args)...),
                         std::get<BP>(bound(std::forward<Self>(self)))..., arg<P>(args)...);
    }
  }

  template <class Self, class... Args>
  static constexpr decltype(auto) call(Self&& self, Args&&... args) {
    using G = std::remove_cvref_t<Self>;
    using split = split_arguments<Args...>;
    return call_split(std::forward<Self>(self), std::forward_as_tuple(std::forward<Args>(args)...),
                      typename split::keywords{}, typename split::positionals{},
                      std::make_index_sequence<std::tuple_size_v<typename G::keywords_type>>{},
                      std::make_index_sequence<std::tuple_size_v<typename G::bound_type>>{});
  }
};

}  // namespace detail

template <class F, class... Bound>
class bound_front {
 public:
  using function_type = F;
  using bound_type = std::tuple<Bound...>;

  /// Use weft::partial rather than this constructor.
  template <class G, class... A>
  constexpr explicit bound_front(std::in_place_t, G&& f, A&&... bound)
      : f_(std::forward<G>(f)), bound_(std::forward<A>(bound)...) {}

  template <class... Args>
    requires std::is_invocable_v<F&, Bound&..., Args...>
  constexpr std::invoke_result_t<F&, Bound&..., Args...> operator()(Args&&... args) & noexcept(
      std::is_nothrow_invocable_v<F&, Bound&..., Args...>) {
    return call(*this, std::index_sequence_for<Bound...>{}, std::forward<Args>(args)...);
  }
  template <class... Args>
    requires std::is_invocable_v<const F&, const Bound&..., Args...>
  constexpr std::invoke_result_t<const F&, const Bound&..., Args...> operator()(Args&&... args) const& noexcept(
      std::is_nothrow_invocable_v<const F&, const Bound&..., Args...>) {
    return call(*this, std::index_sequence_for<Bound...>{}, std::forward<Args>(args)...);
  }
  template <class... Args>
    requires std::is_invocable_v<F, Bound..., Args...>
  constexpr std::invoke_result_t<F, Bound..., Args...> operator()(Args&&... args) && noexcept(
      std::is_nothrow_invocable_v<F, Bound..., Args...>) {
    return call(std::move(*this), std::index_sequence_for<Bound...>{}, std::forward<Args>(args)...);
  }
  template <class... Args>
    requires std::is_invocable_v<const F, const Bound..., Args...>
  constexpr std::invoke_result_t<const F, const Bound..., Args...> operator()(Args&&... args) const&& noexcept(
      std::is_nothrow_invocable_v<const F, const Bound..., Args...>) {
    return call(std::move(*this), std::index_sequence_for<Bound...>{}, std::forward<Args>(args)...);
  }

 private:
  friend struct detail::partial_access;

  template <class Self, std::size_t... I, class... Args>
  static constexpr decltype(auto) call(Self&& self, std::index_sequence<I...>, Args&&... args) {
    return std::invoke(std::forward<Self>(self).f_, std::get<I>(std::forward<Self>(self).bound_)...,
                       std::forward<Args>(args)...);
  }

  [[no_unique_address]] F f_;
  [[no_unique_address]] std::tuple<Bound...> bound_;
};

template <class F, class Record, class... Keywords, class... Bound>
class keyword_partial<F, Record, std::tuple<Keywords...>, std::tuple<Bound...>> {
 public:
  using function_type = F;
  using record_type = Record;
  using keywords_type = std::tuple<Keywords...>;
  using bound_type = std::tuple<Bound...>;

  /// Use weft::partial rather than this constructor.
  template <class G, class KeywordTuple, class BoundTuple>
  constexpr keyword_partial(std::in_place_t, G&& f, KeywordTuple&& keywords, BoundTuple&& bound)
      : f_(std::forward<G>(f)),
        keywords_(std::forward<KeywordTuple>(keywords)),
        bound_(std::forward<BoundTuple>(bound)) {}

  /// f(record, bound positional arguments..., positional args...), the record holding the bound
  /// keywords and the keywords among args.
  template <class... Args>
  constexpr decltype(auto) operator()(Args&&... args) & {
    return detail::partial_access::call(*this, std::forward<Args>(args)...);
  }
  template <class... Args>
  constexpr decltype(auto) operator()(Args&&... args) const& {
    return detail::partial_access::call(*this, std::forward<Args>(args)...);
  }
  template <class... Args>
  constexpr decltype(auto) operator()(Args&&... args) && {
    return detail::partial_access::call(std::move(*this), std::forward<Args>(args)...);
  }
  template <class... Args>
  constexpr decltype(auto) operator()(Args&&... args) const&& {
    return detail::partial_access::call(std::move(*this), std::forward<Args>(args)...);
  }

 private:
  friend struct detail::partial_access;

  [[no_unique_address]] F f_;
  [[no_unique_address]] std::tuple<Keywords...> keywords_;
  [[no_unique_address]] std::tuple<Bound...> bound_;
};

/// std::bind_front(f, args...) when no argument is a keyword, and a keyword partial otherwise
/// (see the top of this file). A partial of a partial is flattened.
template <class F, class... Args>
[[nodiscard]] constexpr auto partial(F&& f, Args&&... args) {
  using G = std::remove_cvref_t<F>;
  if constexpr (detail::is_keyword_partial_v<G> || (keyword_argument<Args> || ...))
    return detail::partial_access::with_keywords(std::forward<F>(f), std::forward<Args>(args)...);
  else
    return detail::partial_access::positional(std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace weft
