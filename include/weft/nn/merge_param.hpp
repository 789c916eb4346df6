#pragma once
// weft::nn::merge_param: a property given as a module attribute or at call time, exactly once.
#include <optional>
#include <string_view>

#include "weft/error.hpp"

namespace weft::nn {

/// The error of merge_param: the property was given twice, or not at all.
class MergeParamError : public ValueError {
 public:
  using ValueError::ValueError;
};

namespace detail {
enum class MergeProblem { neither, both };
/// Deliberately not constexpr (as {fmt}'s report_error): reached during constant evaluation it makes
/// the merge a compile error; at run time it throws with the same words.
[[noreturn]] void report_merge_error(std::string_view name, MergeProblem problem);
}  // namespace detail

/// The value of a property that may be an attribute (`attribute`, set when the module value was made)
/// or a call-time argument (`call_argument`), but must be given exactly once. `false` and `0` count
/// as given. Mirrors flax.linen.merge_param, with its messages.
template <class T>
[[nodiscard]] constexpr T merge_param(std::string_view name, const std::optional<T>& attribute,
                                      const std::optional<T>& call_argument) {
  if (attribute.has_value() && call_argument.has_value())
    detail::report_merge_error(name, detail::MergeProblem::both);
  if (!attribute.has_value() && !call_argument.has_value())
    detail::report_merge_error(name, detail::MergeProblem::neither);
  return attribute.has_value() ? *attribute : *call_argument;
}

}  // namespace weft::nn
