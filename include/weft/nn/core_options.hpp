#pragma once
// nn::core_options: a module's attributes copied into its core layer's options record by field
// name, so that a hyperparameter is declared once in each record and copied by no hand-written
// code. The copy checks at compile time that the two records have the same fields with the same
// types; only the merged mode flags may differ (std::optional<T> in the module, where Linen's
// merge_param takes the attribute or the call argument, against T, required<T> or std::optional<T>
// in the core options), and their merged values are given as keywords:
//
//   core::batch_norm(nn::core_options<core::BatchNormOptions>(*this, "use_running_average"_kw = running), s, x)
//
// The two records stay separate even for modules without a merged flag: a module deriving from its
// options would lose designated initialisation (`nn::Dense{.features = 64}` cannot name a base's
// field), which is how Linen users write attributes.
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "weft/keywords.hpp"
#include "weft/record.hpp"

namespace weft::nn {

// Each mismatch is reported as the keyword errors are (weft/record.hpp): an incomplete class
// template whose arguments name the field and both records, then a static_assert saying how to fix it.
namespace diagnostic {

template <fixed_string Field, class Options, class Module>
struct WEFT_OPTION_NOT_AN_ATTRIBUTE;  // never defined, as the three below
template <fixed_string Field, class Module, class Options>
struct WEFT_ATTRIBUTE_NOT_AN_OPTION;
template <fixed_string Field, class ModuleType, class OptionsType>
struct WEFT_ATTRIBUTE_TYPE_DIFFERS;
template <fixed_string Field, class Module>
struct WEFT_MERGED_ATTRIBUTE_NOT_OPTIONAL;

template <fixed_string Field, class... Records>
inline constexpr bool fields_agree = false;

template <fixed_string Field, class Options, class Module>
constexpr bool option_not_an_attribute() {
  (void)sizeof(WEFT_OPTION_NOT_AN_ATTRIBUTE<Field, Options, Module>);
  static_assert(fields_agree<Field, Options, Module>,
                "WEFT_OPTION_NOT_AN_ATTRIBUTE: the core options have a field that the module lacks; add the "
                "attribute to the module (with the same default) and to its WEFT_RECORD");
  return false;
}

template <fixed_string Field, class Module, class Options>
constexpr bool attribute_not_an_option() {
  (void)sizeof(WEFT_ATTRIBUTE_NOT_AN_OPTION<Field, Module, Options>);
  static_assert(fields_agree<Field, Module, Options>,
                "WEFT_ATTRIBUTE_NOT_AN_OPTION: the module has an attribute that its core options lack; add the "
                "field to the core options and to their WEFT_RECORD, or remove the attribute");
  return false;
}

template <fixed_string Field, class ModuleType, class OptionsType>
constexpr bool attribute_type_differs() {
  (void)sizeof(WEFT_ATTRIBUTE_TYPE_DIFFERS<Field, ModuleType, OptionsType>);
  static_assert(fields_agree<Field, ModuleType, OptionsType>,
                "WEFT_ATTRIBUTE_TYPE_DIFFERS: the attribute and the core option of this name have different "
                "types; declare them alike (only a merged mode flag may be std::optional in the module)");
  return false;
}

template <fixed_string Field, class Module>
constexpr bool merged_attribute_not_optional() {
  (void)sizeof(WEFT_MERGED_ATTRIBUTE_NOT_OPTIONAL<Field, Module>);
  static_assert(fields_agree<Field, Module>,
                "WEFT_MERGED_ATTRIBUTE_NOT_OPTIONAL: a merged attribute must be std::optional<T> in the module "
                "(unset: taken from the call) and T, required<T> or std::optional<T> in the core options");
  return false;
}

}  // namespace diagnostic

namespace detail {

template <class T>
struct optional_value {};
template <class T>
struct optional_value<std::optional<T>> {
  using type = T;
};

// The plain type of a core option: T for T, required<T, Name> and std::optional<T>.
template <class T>
struct option_value {
  using type = T;
};
template <class T, fixed_string Name>
struct option_value<required<T, Name>> {
  using type = T;
};
template <class T>
struct option_value<std::optional<T>> {
  using type = T;
};

template <class ModuleField, class OptionField>
constexpr bool mergeable() {
  if constexpr (requires { typename optional_value<ModuleField>::type; })
    return std::is_same_v<typename optional_value<ModuleField>::type, typename option_value<OptionField>::type>;
  else
    return false;
}

template <record Module, record Options, std::size_t I, bool Merged>
constexpr bool option_mirrored() {
  constexpr auto name = weft::detail::field_name_at<Options, I>;
  if constexpr (!has_field<Module, name>) {
    return diagnostic::option_not_an_attribute<name, Options, Module>();
  } else if constexpr (Merged) {
    if constexpr (!mergeable<field_t<Module, name>, field_t<Options, name>>())
      return diagnostic::merged_attribute_not_optional<name, Module>();
    return true;
  } else if constexpr (!std::is_same_v<field_t<Module, name>, field_t<Options, name>>) {
    return diagnostic::attribute_type_differs<name, field_t<Module, name>, field_t<Options, name>>();
  } else {
    return true;
  }
}

template <record Module, record Options, std::size_t I>
constexpr bool attribute_mirrored() {
  constexpr auto name = weft::detail::field_name_at<Module, I>;
  if constexpr (!has_field<Options, name>) return diagnostic::attribute_not_an_option<name, Module, Options>();
  return true;
}

/// Whether Module's and Options' records list the same fields with the same types, the fields
/// named by the keywords Merged... being merged flags. Every mismatch is reported.
template <record Module, record Options, class... Merged>
constexpr bool records_mirror() {
  constexpr std::size_t n_options = field_names<Options>.size(), n_module = field_names<Module>.size();
  const int option_errors = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((option_mirrored<Module, Options, I,
                             (weft::detail::count_named<weft::detail::field_name_at<Options, I>, Merged...> > 0)>()
                 ? 0
                 : 1) +
            ... + 0);
  }(std::make_index_sequence<n_options>{});
  const int attribute_errors = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((attribute_mirrored<Module, Options, I>() ? 0 : 1) + ... + 0);
  }(std::make_index_sequence<n_module>{});
  return option_errors + attribute_errors == 0;
}

template <fixed_string Name, class First, class... Rest>
constexpr const auto& keyword_named(const First& first, const Rest&... rest) {
  if constexpr (First::name == Name)
    return first;
  else
    return keyword_named<Name>(rest...);
}

}  // namespace detail

/// The core options record Options with every field copied from the module attribute of the same
/// name, except the merged flags, whose values are the keywords `merged` ("deterministic"_kw = det).
/// A field in one record and not the other, a type that differs, and a merged flag that is not
/// std::optional in the module are compile errors that name the field.
template <record Options, record Module, class... Merged>
  requires(keyword_argument<Merged> && ...)
[[nodiscard]] Options core_options(const Module& module, const Merged&... merged) {
  constexpr bool mirror = detail::records_mirror<Module, Options, Merged...>();
  constexpr bool fit = weft::detail::keywords_fit_v<Options, Merged...>;
  Options options = Options();  // value-initialised, then every field assigned
  if constexpr (mirror && fit) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      auto copy = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
        constexpr auto name = weft::detail::field_name_at<Options, J>;
        using Field = field_t<Options, name>;
        if constexpr (weft::detail::count_named<name, Merged...> > 0)
          field<name>(options) = Field(detail::keyword_named<name>(merged...).value);
        else
          field<name>(options) = field<name>(module);
      };
      (copy(std::integral_constant<std::size_t, I>{}), ...);
    }(std::make_index_sequence<field_names<Options>.size()>{});
  }
  return options;
}

}  // namespace weft::nn
