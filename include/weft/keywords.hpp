#pragma once
// Keyword arguments: with `using namespace weft::literals;`, `"rate"_kw = 0.1f` is a
// weft::kwarg whose name is part of its type, so a keyword that is wrong (unknown, given twice,
// of the wrong type) is a compile error that names it. Keywords fill the fields of a record
// (record.hpp); weft::partial (partial.hpp) binds them ahead of a call.
#include <algorithm>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weft {

/// A string usable as a template argument (a C++20 class-type non-type template parameter).
/// g++ prints it as `weft::fixed_string<5>{"rate"}`, which is how keyword errors name the keyword.
template <std::size_t N>
struct fixed_string {
  char chars[N]{};  // NUL-terminated; public so that fixed_string is a structural type

  constexpr fixed_string(const char (&s)[N]) noexcept { std::copy_n(s, N, chars); }

  [[nodiscard]] static constexpr std::size_t size() noexcept { return N - 1; }
  [[nodiscard]] constexpr std::string_view view() const noexcept { return {chars, N - 1}; }
};

template <std::size_t N, std::size_t M>
[[nodiscard]] constexpr bool operator==(const fixed_string<N>& a, const fixed_string<M>& b) noexcept {
  return a.view() == b.view();
}

namespace detail {
// Keyword names are field names; the restriction keeps them readable in g++'s error messages.
constexpr bool is_keyword_name(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}
}  // namespace detail

/// A keyword argument: the value given for the field `Name`.
template <fixed_string Name, class T>
struct kwarg {
  static constexpr auto name = Name;
  using value_type = T;
  T value;
};

/// The keyword `Name` itself; assigning a value to it makes a kwarg (`"rate"_kw = 0.1f`).
template <fixed_string Name>
struct keyword {
  static_assert(detail::is_keyword_name(Name.view()),
                "WEFT_BAD_KEYWORD_NAME: a keyword names a field of a record: non-empty, made of a-z, 0-9 and _");
  static constexpr auto name = Name;

  /// The kwarg holding a decayed copy of `value` (a string literal becomes `const char*`).
  template <class T>
  constexpr kwarg<Name, std::decay_t<T>> operator=(T&& value) const {
    return {std::forward<T>(value)};
  }
};

/// The keyword `Name` without the literal, for generic code: `weft::kw<"rate"> = 0.1f`.
template <fixed_string Name>
inline constexpr keyword<Name> kw{};

template <class T>
inline constexpr bool is_kwarg_v = false;
template <fixed_string Name, class T>
inline constexpr bool is_kwarg_v<kwarg<Name, T>> = true;

/// A kwarg, whatever its value category.
template <class T>
concept keyword_argument = is_kwarg_v<std::remove_cvref_t<T>>;

inline namespace literals {
/// `"rate"_kw` is the keyword `rate`.
template <fixed_string Name>
constexpr keyword<Name> operator""_kw() noexcept {
  return {};
}
}  // namespace literals

}  // namespace weft
