#pragma once
// The object layer (the mirror of Flax Linen): a module is a plain aggregate struct whose fields are
// its attributes, with a call operator taking an nn::Scope&, then inputs, then call-time arguments.
//
//   struct Block {
//     nn::Dropout dropout;                     // a template: attributes fixed by the parent
//     int features = 256;
//     Tensor operator()(nn::Scope& s, Tensor x) const {
//       auto h = relu(s(nn::Dense{.features = features}, x));   // compact style: child "Dense_0"
//       return x + s(dropout, h);                               // a field: child "dropout"
//     }
//   };
//   WEFT_RECORD(Block, dropout, features);     // reflection: field names, nn::partial, nn::clone
//
// Calling a sub-module through the scope, s(module, args...), runs it in a child scope named after
// the field that holds it when it is a field of the running module (setup style, as Linen names
// setup sub-modules; needs WEFT_RECORD), else `TypeName_N` with a per-type counter in the parent
// (compact style, as Linen's Dense_0, Dense_1, BatchNorm_0). s("name", module, args...) names it
// explicitly. Every weft::nn module delegates its math to the weft::core function of its layer.
#include <concepts>
#include <cstdint>
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>

#include "weft/core/scope.hpp"
#include "weft/nn/merge_param.hpp"
#include "weft/record.hpp"

namespace weft::nn {

using core::Initializer;
using core::Mutable;
using core::Rngs;

/// The unqualified name of a type, without template arguments: weft::nn::Dense -> "Dense".
template <class T>
constexpr std::string_view type_name_of() {
  std::string_view s = __PRETTY_FUNCTION__;  // "... type_name() [with T = weft::nn::Dense; ...]"
  const auto start = s.find("T = ") + 4;
  s = s.substr(start, s.find_first_of(";]", start) - start);
  int depth = 0;
  std::size_t name_start = 0, end = s.size();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') {
      if (depth++ == 0 && end == s.size()) end = i;
    } else if (s[i] == '>') {
      --depth;
    } else if (depth == 0 && s[i] == ':' && end == s.size()) {
      name_start = i + 1;
    }
  }
  return s.substr(name_start, end - name_start);
}
template <class T>
inline constexpr std::string_view type_name_v = type_name_of<T>();  // computed once, at compile time
template <class T>
constexpr std::string_view type_name() {
  return type_name_v<T>;
}

namespace detail {

/// Looks up which field of a module of type M (if any) is the object at `field`, of type F.
using FieldNameFn = std::string_view (*)(const void* module, const void* field, const void* field_type_tag);

template <class T>
inline constexpr char type_tag = 0;  // one address per type

template <class M>
std::string_view field_name_of(const void* module, const void* field, const void* field_type) {
  if constexpr (weft::record<M>) {
    std::string_view found;
    const M& m = *static_cast<const M*>(module);
    boost::hana::for_each(boost::hana::accessors<M>(), [&](auto pair) {
      const auto& member = boost::hana::second(pair)(m);
      using Member = std::remove_cvref_t<decltype(member)>;
      if (found.empty() && field_type == &type_tag<Member> && static_cast<const void*>(&member) == field)
        found = boost::hana::to<const char*>(boost::hana::first(pair));
    });
    return found;
  } else {
    return {};
  }
}

/// One row of nn::tabulate: a module call.
struct CallRecord {
  std::string path;
  std::string type;
  std::vector<Shape> inputs;
  std::vector<Shape> outputs;
};
struct CallLog {
  std::vector<CallRecord> calls;
};

template <class T>
void collect_shapes(const T& value, std::vector<Shape>& out) {
  if constexpr (std::is_same_v<std::remove_cvref_t<T>, Tensor>) {
    if (value.defined()) out.push_back(value.shape());
  } else if constexpr (requires { std::tuple_size<std::remove_cvref_t<T>>::value; }) {
    std::apply([&](const auto&... e) { (collect_shapes(e, out), ...); }, value);
  }
}

}  // namespace detail

/// The scope a module's call operator receives: a core::Scope (param, variable, make_rng, ...) that
/// also calls sub-modules.
class Scope : public core::Scope {
 public:
  /// The root scope of a call of `module` (used by nn::init / nn::apply).
  template <class M>
  Scope(core::Scope& base, const M& module, detail::CallLog* log = nullptr)
      : core::Scope(base, nullptr), module_(&module), module_type_(type_name<M>()),
        field_name_(&detail::field_name_of<M>), log_(log) {}

  /// Runs `module(child_scope, args...)` in a child scope named after the field holding it, or
  /// `TypeName_N`.
  template <class M, class... Args>
    requires(!std::is_convertible_v<const M&, std::string_view>)
  decltype(auto) operator()(const M& module, Args&&... args) {
    std::string name(field_name_(module_, &module, &detail::type_tag<M>));
    if (!name.empty()) {
      // A field is one sub-module: calling it again reuses its scope and variables.
      if (std::find(used_fields_.begin(), used_fields_.end(), name) == used_fields_.end()) {
        used_fields_.push_back(name);
        reserve_child(name);
      }
    } else {
      constexpr std::string_view type = type_name<M>();
      name.reserve(type.size() + 3);
      name.append(type).append(1, '_').append(std::to_string(next_index(type)));
      reserve_child(name);
    }
    return call_child(name, module, std::forward<Args>(args)...);
  }

  /// Runs `module(child_scope, args...)` in the child scope `name`. Two sub-modules with the same
  /// explicit name in one parent are an error naming both.
  template <class M, class... Args>
  decltype(auto) operator()(std::string_view name, const M& module, Args&&... args) {
    if (std::find(explicit_names_.begin(), explicit_names_.end(), name) != explicit_names_.end())
      throw ValueError("weft::nn: Could not create submodule \"" + std::string(name) + "\" in module " +
                       describe() + ": Name in use; give each sub-module its own name, or call the same module "
                       "value (a field) again to share its variables");
    explicit_names_.emplace_back(name);
    reserve_child(name);
    return call_child(std::string(name), module, std::forward<Args>(args)...);
  }

  /// The running module's type and path, for messages: "ResidualBlock at \"/ResidualBlock_3\"".
  [[nodiscard]] std::string describe() const {
    return std::string(module_type_) + " at \"" + path_str() + "\"";
  }

 private:
  template <class M>
  Scope(Scope& parent, std::string_view name, const M& module)
      : core::Scope(parent.push(name), nullptr),  // moves the pushed scope's path in
        module_(&module), module_type_(type_name<M>()),
        field_name_(&detail::field_name_of<M>), log_(parent.log_) {}

  template <class M, class... Args>
  decltype(auto) call_child(const std::string& name, const M& module, Args&&... args) {
    static_assert(std::is_invocable_v<const M&, Scope&, Args...>,
                  "weft::nn: s(module, args...) needs a module whose call operator takes (nn::Scope&, args...) "
                  "and is const (WEFT_NOT_A_MODULE_CALL)");
    Scope child(*this, name, module);
    if (!log_) return std::invoke(module, child, std::forward<Args>(args)...);
    const std::size_t row = log_->calls.size();
    log_->calls.push_back({child.path_str(), std::string(type_name<M>()), {}, {}});
    (detail::collect_shapes(args, log_->calls[row].inputs), ...);
    decltype(auto) out = std::invoke(module, child, std::forward<Args>(args)...);
    detail::collect_shapes(out, log_->calls[row].outputs);
    return out;
  }

  /// The next auto-name index of `type` in this scope (Linen's per-type counter).
  int next_index(std::string_view type) {
    for (auto& [t, n] : type_counters_)
      if (t == type) return n++;
    type_counters_.emplace_back(type, 1);
    return 0;
  }

  const void* module_;
  std::string_view module_type_;
  detail::FieldNameFn field_name_;
  detail::CallLog* log_;
  // A handful of entries per scope: flat lists. Type names are static strings (type_name_v).
  std::vector<std::pair<std::string_view, int>> type_counters_;
  std::vector<std::string> used_fields_;
  std::vector<std::string> explicit_names_;
};

namespace detail {

template <class T>
inline constexpr bool is_rngs_option = std::is_same_v<std::decay_t<T>, Rngs> || std::is_same_v<std::decay_t<T>, Key>;
template <class T>
inline constexpr bool is_mutable_option = std::is_same_v<std::decay_t<T>, Mutable>;

/// How many of Args, from the front, are apply options (Rngs, Key, Mutable).
template <class... Args>
constexpr std::size_t leading_options() {
  constexpr bool flags[] = {(is_rngs_option<Args> || is_mutable_option<Args>)..., false};
  std::size_t k = 0;
  while (flags[k]) ++k;
  return k;
}

template <std::size_t K, class... Args>
constexpr bool leading_mutable() {
  constexpr bool flags[] = {is_mutable_option<Args>..., false};
  for (std::size_t i = 0; i < K; ++i)
    if (flags[i]) return true;
  return false;
}

template <class T>
void take_option(const T& option, Rngs& rngs, Mutable& mut) {
  if constexpr (is_mutable_option<T>)
    mut = option;
  else
    rngs = core::detail::to_rngs(option);
}

/// The function core::init/apply run for a module: wraps the root core::Scope in an nn::Scope.
template <class M>
auto root_function(const M& module, CallLog* log = nullptr) {
  return [&module, log](core::Scope& base, auto&&... args) {
    Scope s(base, module, log);
    if (!log) return std::invoke(module, s, std::forward<decltype(args)>(args)...);
    const std::size_t row = log->calls.size();
    log->calls.push_back({"/", std::string(type_name<M>()), {}, {}});
    (collect_shapes(args, log->calls[row].inputs), ...);
    auto out = std::invoke(module, s, std::forward<decltype(args)>(args)...);
    collect_shapes(out, log->calls[row].outputs);
    return out;
  };
}

}  // namespace detail

/// Linen's Module.init_with_output: std::pair{output, variables}. `rngs` is a Key (the "params"
/// stream) or an Rngs map; every collection but "intermediates" is mutable (Linen's default).
template <class M, class R, class... Args>
  requires core::detail::is_rngs_argument<R>
auto init_with_output(const M& module, const R& rngs, Args&&... args) {
  return core::init(detail::root_function(module), Mutable::all_except({"intermediates"}))(rngs,
                                                                                           std::forward<Args>(args)...);
}

/// Linen's Module.init: the variables of `module` for these inputs.
template <class M, class R, class... Args>
  requires core::detail::is_rngs_argument<R>
Variables init(const M& module, const R& rngs, Args&&... args) {
  return init_with_output(module, rngs, std::forward<Args>(args)...).second;
}

/// Linen's Module.apply. Leading optional arguments, recognised by type and in any order: an Rngs
/// map or a Key (named random streams, e.g. Rngs{{"dropout", key}}) and a Mutable set of
/// collections. Without Mutable it returns the module's output; with it, std::pair{output, the
/// mutable collections after the call} (e.g. the updated batch_stats).
template <class M, class... Args>
auto apply(const M& module, const Variables& variables, Args&&... args) {
  constexpr std::size_t k = detail::leading_options<Args...>();
  auto all = std::forward_as_tuple(std::forward<Args>(args)...);
  Rngs rngs;
  Mutable mut = Mutable::none();
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (detail::take_option(std::get<I>(all), rngs, mut), ...);
  }(std::make_index_sequence<k>{});
  auto result = [&]<std::size_t... J>(std::index_sequence<J...>) {
    return core::detail::run_apply(detail::root_function(module), variables, mut, rngs,
                                   std::get<k + J>(std::move(all))...);
  }(std::make_index_sequence<sizeof...(Args) - k>{});
  if constexpr (detail::leading_mutable<k, Args...>())
    return result;
  else
    return std::move(result.first);
}

}  // namespace weft::nn
