#pragma once
// Records: aggregates whose fields are hyperparameters (a core layer's options, an nn module's
// attributes), reflected with Boost.Hana so that keywords can fill them by field name.
//
//   struct DenseOptions {
//     weft::required<std::int64_t, "features"> features;   // must be given
//     bool use_bias = true;                    // optional: keeps its default
//   };
//   WEFT_RECORD(DenseOptions, features, use_bias)   // at global scope
//
//   auto o = weft::make_record<DenseOptions>("features"_kw = 64);
//   auto p = weft::with_fields(o, "use_bias"_kw = false);
//
// Fields with a default member initializer are optional, and so is a field without one whose
// type is not weft::required (it is value-initialised, as in `Options{}`); give a mode switch such
// as `std::optional<bool> deterministic{};` an initializer all the same, or g++'s -Wextra warns
// about designated initializers that leave it out. A record is built by value-initialising it
// (`Options()`) and assigning the given fields, so its fields are default-constructible and
// assignable (no const or reference fields). Keyword mistakes are compile errors whose first
// lines name the keyword, each with a searchable token: WEFT_UNKNOWN_KEYWORD,
// WEFT_KEYWORD_BOUND_TWICE, WEFT_KEYWORD_TYPE_MISMATCH, WEFT_MISSING_REQUIRED.
#include <array>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/at.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/unpack.hpp>

#include "weft/keywords.hpp"

/// WEFT_RECORD(Type, field...) makes the aggregate `Type` a record. It is
/// BOOST_HANA_ADAPT_STRUCT(Type, field...) and, like it, must be written at global scope (outside
/// every namespace) with the type's qualified name. List every field that keywords may set, in
/// any order; a field left out keeps its default and cannot be set by keyword.
#define WEFT_RECORD(...) BOOST_HANA_ADAPT_STRUCT(__VA_ARGS__)

namespace weft {

/// A field that must be given. Implicitly constructible from a T (so `Opts{.features = 64}`
/// works) and implicitly convertible to `const T&`. Its default constructor is explicit, so an
/// aggregate initialisation that omits the field (`Opts{}`) does not compile, while the library
/// can still value-initialise a record (`Opts()`) and fill it field by field.
namespace detail {
struct no_list_element {};
/// The element type of a sequence type T constructible from a braced list, else no_list_element.
template <class T>
struct list_element {
  using type = no_list_element;
};
template <class T>
  requires requires { typename T::value_type; } &&
           std::is_constructible_v<T, std::initializer_list<typename T::value_type>>
struct list_element<T> {
  using type = typename T::value_type;
};
template <class T>
using list_element_t = typename list_element<T>::type;
template <class T>
inline constexpr bool has_list_element = !std::is_same_v<list_element_t<T>, no_list_element>;
}  // namespace detail

///
/// `Name`, optional, repeats the field's name so that g++'s and clang's first error line for a
/// field left out of aggregate initialisation names it (`converting to 'weft::required<long int,
/// weft::fixed_string<9>{"features"}>' from initializer list would use explicit constructor`):
/// a diagnostic can only show a field's name if its type carries it. weft's own modules give it,
/// and test_partial.cpp checks that it matches the field.
template <class T, fixed_string Name = "">
class required {
 public:
  explicit constexpr required() : value_() {}

  // is_constructible as well: the member is direct-initialised, and a value that converts to T in
  // more than one way (detail::any_field, which counts a record's fields) must not pick this one.
  template <class U>
    requires(!std::is_same_v<std::remove_cvref_t<U>, required> && std::is_convertible_v<U, T> &&
             std::is_constructible_v<T, U>)
  constexpr required(U&& value) noexcept(std::is_nothrow_constructible_v<T, U>)
      : value_(std::forward<U>(value)) {}

  /// A braced list for a sequence field: `Opts{.kernel_size = {3, 3}}` (a template constructor
  /// cannot deduce from a braced list). An empty `{}` still picks the explicit default constructor.
  constexpr required(std::initializer_list<detail::list_element_t<T>> values)
    requires detail::has_list_element<T>
      : value_(values) {}

  [[nodiscard]] constexpr const T& value() const& noexcept { return value_; }
  [[nodiscard]] constexpr T& value() & noexcept { return value_; }
  [[nodiscard]] constexpr T&& value() && noexcept { return std::move(value_); }
  constexpr operator const T&() const noexcept { return value_; }

  // Two non-template overloads: `opts.features == 64` picks the second (exact match on the left),
  // record comparisons `= default` the first. A value that needs a user-defined conversion to T
  // (`required<std::string> == "abc"`) is ambiguous: compare `.value()`.
  friend constexpr bool operator==(const required& a, const required& b)
    requires std::equality_comparable<T>
  {
    return a.value_ == b.value_;
  }
  friend constexpr bool operator==(const required& a, const T& b)
    requires std::equality_comparable<T>
  {
    return a.value_ == b;
  }

 private:
  T value_;
};

template <class T>
inline constexpr bool is_required_v = false;
template <class T, fixed_string Name>
inline constexpr bool is_required_v<required<T, Name>> = true;

/// The name a required field's type carries ("" when it carries none).
template <class T>
inline constexpr std::string_view required_name_v{};
template <class T, fixed_string Name>
inline constexpr std::string_view required_name_v<required<T, Name>> = Name.view();

/// A type adapted with WEFT_RECORD (any Boost.Hana Struct).
template <class R>
concept record = std::is_class_v<R> && boost::hana::Struct<R>::value;

/// The names of R's fields, in the order WEFT_RECORD lists them.
template <record R>
inline constexpr auto field_names = boost::hana::unpack(boost::hana::accessors<R>(), [](auto... field) {
  return std::array<std::string_view, sizeof...(field)>{
      std::string_view(boost::hana::to<const char*>(boost::hana::first(field)))...};
});

/// The position of the field `Name` in field_names<R>, or field_names<R>.size() if R has none.
template <record R, fixed_string Name>
inline constexpr std::size_t field_index = [] {
  std::size_t i = 0;
  while (i < field_names<R>.size() && field_names<R>[i] != Name.view()) ++i;
  return i;
}();

template <record R, fixed_string Name>
inline constexpr bool has_field = field_index<R, Name> < field_names<R>.size();

/// The field `Name` of `r` (an lvalue, or an xvalue for an rvalue record).
template <fixed_string Name, class R>
  requires record<std::remove_cvref_t<R>> && has_field<std::remove_cvref_t<R>, Name>
[[nodiscard]] constexpr decltype(auto) field(R&& r) noexcept {
  using Rec = std::remove_cvref_t<R>;
  return boost::hana::second(boost::hana::at_c<field_index<Rec, Name>>(boost::hana::accessors<Rec>()))(
      std::forward<R>(r));
}

namespace detail {
// The number of fields of an aggregate: the most initializer-clauses `A{...}` accepts. Written by
// hand because Debian's Boost (1.74) predates Boost.PFR, which counts fields this way.
template <class A>
struct any_field {
  // Never called: fields are counted in unevaluated operands. Defined all the same, because a
  // field's constexpr constructor template that converts it is instantiated with its body.
  template <class T>
    requires(!std::is_same_v<T, A>)
  constexpr operator T&() const noexcept {
    return *static_cast<T*>(nullptr);
  }
};
template <class A, std::size_t... I>
constexpr bool brace_constructible_with(std::index_sequence<I...>) {
  return requires { A{(void(I), any_field<A>{})...}; };
}
// `A{f1, ..., fN}` is valid for N from (one past the last field that cannot be initialised from
// `{}`, such as a weft::required) up to the number of fields; count up to the end of that run.
inline constexpr std::size_t max_counted_fields = 64;
template <class A, std::size_t N = 0, bool SeenValid = false>
constexpr std::size_t count_fields() {
  if constexpr (brace_constructible_with<A>(std::make_index_sequence<N>{}))
    return count_fields<A, N + 1, true>();
  else if constexpr (SeenValid)
    return N - 1;
  else if constexpr (N < max_counted_fields)
    return count_fields<A, N + 1, false>();
  else
    return static_cast<std::size_t>(-1);  // not counted (no valid brace initialisation found)
}
}  // namespace detail

/// The number of fields of the aggregate A (every non-static data member, listed or not), or
/// std::size_t(-1) if it could not be counted.
template <class A>
  requires std::is_aggregate_v<A>
inline constexpr std::size_t aggregate_field_count = detail::count_fields<A>();

/// The type of R's field `Name`.
template <record R, fixed_string Name>
  requires has_field<R, Name>
using field_t = std::remove_cvref_t<decltype(field<Name>(std::declval<R&>()))>;

namespace detail {
template <char... C>
constexpr fixed_string<sizeof...(C) + 1> to_fixed_string(boost::hana::string<C...>) noexcept {
  const char s[] = {C..., '\0'};
  return fixed_string<sizeof...(C) + 1>(s);
}
template <record R, std::size_t I>
inline constexpr auto field_name_at =
    to_fixed_string(boost::hana::first(boost::hana::at_c<I>(boost::hana::accessors<R>())));
template <record R, std::size_t I>
using field_type_at = field_t<R, field_name_at<R, I>>;
}  // namespace detail

// Compile errors for keyword mistakes. Each check first uses an incomplete class template named
// after the mistake, whose template arguments carry the keyword and the record, so that the first
// `error:` line names both ("invalid application of 'sizeof' to incomplete type
// 'weft::diagnostic::WEFT_UNKNOWN_KEYWORD<weft::fixed_string<5>{"rate"}, Record>'"); a static_assert
// then says how to fix it. Its condition is a variable template that names them again.
namespace diagnostic {

template <fixed_string Keyword, class Record>
struct WEFT_UNKNOWN_KEYWORD;  // never defined, as the three below
template <fixed_string Keyword, class Record>
struct WEFT_KEYWORD_BOUND_TWICE;
template <fixed_string Keyword, class Value, class Field>
struct WEFT_KEYWORD_TYPE_MISMATCH;
template <fixed_string Field, class Record>
struct WEFT_MISSING_REQUIRED;

template <fixed_string Keyword, class Record>
inline constexpr bool keyword_is_a_field_of = false;
template <fixed_string Keyword, class Record>
inline constexpr bool keyword_given_once = false;
template <fixed_string Keyword, class Value, class Field>
inline constexpr bool keyword_value_converts_to_field = false;
template <fixed_string Field, class Record>
inline constexpr bool required_field_given = false;

template <fixed_string Keyword, class Record>
constexpr bool unknown_keyword() {
  (void)sizeof(WEFT_UNKNOWN_KEYWORD<Keyword, Record>);
  static_assert(keyword_is_a_field_of<Keyword, Record>,
                "WEFT_UNKNOWN_KEYWORD: the keyword is not a field of the record (or attribute of the module); "
                "check its spelling against the fields listed in WEFT_RECORD");
  return false;
}

template <fixed_string Keyword, class Record>
constexpr bool keyword_bound_twice() {
  (void)sizeof(WEFT_KEYWORD_BOUND_TWICE<Keyword, Record>);
  static_assert(keyword_given_once<Keyword, Record>,
                "WEFT_KEYWORD_BOUND_TWICE: the keyword is given twice (at partial application and again at the "
                "call, twice in one call, or fixed in a module template and again when it is called); give it once");
  return false;
}

template <fixed_string Keyword, class Value, class Field>
constexpr bool keyword_type_mismatch() {
  (void)sizeof(WEFT_KEYWORD_TYPE_MISMATCH<Keyword, Value, Field>);
  static_assert(keyword_value_converts_to_field<Keyword, Value, Field>,
                "WEFT_KEYWORD_TYPE_MISMATCH: the keyword's value does not convert to the type of its field");
  return false;
}

template <fixed_string Field, class Record>
constexpr bool missing_required() {
  (void)sizeof(WEFT_MISSING_REQUIRED<Field, Record>);
  static_assert(required_field_given<Field, Record>,
                "WEFT_MISSING_REQUIRED: a required field was never given; bind it at partial application or "
                "pass it as a keyword at the call");
  return false;
}

}  // namespace diagnostic

namespace detail {

// Whether keyword number I of Kw... is the first one named Name (a duplicate is reported once).
template <std::size_t I, fixed_string Name, class... Kw>
constexpr bool first_named() {
  const std::array<bool, sizeof...(Kw)> same{(Kw::name == Name)...};
  for (std::size_t j = 0; j < I; ++j)
    if (same[j]) return false;
  return true;
}

template <fixed_string Name, class... Kw>
inline constexpr std::size_t count_named = ((Kw::name == Name) + ... + std::size_t{0});

template <record R, class Kw, bool First, std::size_t Times>
constexpr bool keyword_fits() {
  if constexpr (!has_field<R, Kw::name>) {
    if constexpr (First) return diagnostic::unknown_keyword<Kw::name, R>();
    return false;
  } else if constexpr (Times > 1) {
    if constexpr (First) return diagnostic::keyword_bound_twice<Kw::name, R>();
    return false;
  } else if constexpr (!std::is_convertible_v<typename Kw::value_type, field_t<R, Kw::name>>) {
    return diagnostic::keyword_type_mismatch<Kw::name, typename Kw::value_type, field_t<R, Kw::name>>();
  } else {
    return true;
  }
}

// Every keyword names a field of R, once, with a value that converts to the field's type.
// Kw... are kwarg types without references; I... is index_sequence_for<Kw...>.
template <record R, class... Kw, std::size_t... I>
constexpr bool keywords_fit(std::index_sequence<I...>) {
  // Counted rather than `&&`-ed, so that every keyword is checked and every mistake reported.
  return ((keyword_fits<R, Kw, first_named<I, Kw::name, Kw...>(), count_named<Kw::name, Kw...>>() ? 0 : 1) + ... +
          0) == 0;
}
template <record R, class... Kw>
inline constexpr bool keywords_fit_v = keywords_fit<R, Kw...>(std::index_sequence_for<Kw...>{});

template <record R, std::size_t I, class... Kw>
constexpr bool required_field_given() {
  if constexpr (is_required_v<field_type_at<R, I>> && count_named<field_name_at<R, I>, Kw...> == 0) {
    return diagnostic::missing_required<field_name_at<R, I>, R>();
  } else {
    return true;
  }
}

// Every required field of R is named by one of Kw...; I... indexes R's fields.
template <record R, class... Kw, std::size_t... I>
constexpr bool required_fields_given(std::index_sequence<I...>) {
  return ((required_field_given<R, I, Kw...>() ? 0 : 1) + ... + 0) == 0;
}
template <record R, class... Kw>
inline constexpr bool required_fields_given_v =
    required_fields_given<R, Kw...>(std::make_index_sequence<field_names<R>.size()>{});

template <class R, class K>
constexpr void assign_field(R& r, K&& kw) {
  using Kw = std::remove_cvref_t<K>;
  auto& f = field<Kw::name>(r);
  using Field = std::remove_cvref_t<decltype(f)>;
  Field value = std::forward<K>(kw).value;  // copy-initialisation, as is_convertible checked
  f = std::move(value);
}

}  // namespace detail

/// The record R with the fields named by `keywords` set to their values and every other field
/// left as in `R()` (its default member initializer, or value-initialised). A keyword that is
/// not a field of R, a keyword given twice, a value that does not convert to its field's type
/// and a required field left out are compile errors that name the keyword or field.
template <record R, class... Kw>
  requires(keyword_argument<Kw> && ...)
[[nodiscard]] constexpr R make_record(Kw&&... keywords) {
  constexpr bool fit = detail::keywords_fit_v<R, std::remove_cvref_t<Kw>...>;
  constexpr bool complete = detail::required_fields_given_v<R, std::remove_cvref_t<Kw>...>;
  R r = R();  // value-initialisation: required's explicit default constructor is allowed here
  if constexpr (fit && complete) (detail::assign_field(r, std::forward<Kw>(keywords)), ...);
  return r;
}

/// `r` with the fields named by `keywords` replaced (Flax's `module.clone(**updates)`). An
/// unknown keyword, a keyword given twice and a value of the wrong type are compile errors.
template <record R, class... Kw>
  requires(keyword_argument<Kw> && ...)
[[nodiscard]] constexpr R with_fields(R r, Kw&&... keywords) {
  if constexpr (detail::keywords_fit_v<R, std::remove_cvref_t<Kw>...>)
    (detail::assign_field(r, std::forward<Kw>(keywords)), ...);
  return r;
}

}  // namespace weft
