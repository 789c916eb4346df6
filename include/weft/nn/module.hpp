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
// setup sub-modules; `layers_0`, `layers_1`, ... for the elements of a std::vector / std::array /
// std::tuple field, as Linen names a list attribute's), else `TypeName_N` with a per-type counter in
// the parent (compact style, as Linen's Dense_0, Dense_1, BatchNorm_0). s("name", module, args...)
// names it explicitly. A field, an element of a field, or a named module value called again runs in
// the same child with the same variables (weight tying). Field names come from WEFT_RECORD, which
// must list every field of a module (a compile error, WEFT_RECORD_MISSES_A_FIELD, otherwise); a
// module without WEFT_RECORD names every sub-module in compact style. Call-time keyword arguments,
// s(attention, x, "mask"_kw = m), fill the module's call_keywords record; s.method(embed,
// &nn::Embed::attend, h) runs another method in the sub-module's scope; s.sow(...) and
// nn::CaptureIntermediates fill "intermediates"; nn::bind binds a module to variables. Every
// weft::nn module delegates its math to the weft::core function of its layer.
#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
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
#include "weft/partial.hpp"
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

/// Throws the ValueError of a sub-module name that another module already holds in `module`.
[[noreturn]] void report_name_in_use(std::string_view name, const std::string& module);

/// The name of the field of a module of type M (if any) that holds the object at `field`, whose
/// type has the tag `field_type_tag`: the field's own name, or `name_0`, `name_1`, ... for an element
/// of a sequence field (std::vector, std::array, std::tuple, std::pair; `name_0_1` nested), as Linen
/// names the sub-modules of a list attribute. Empty when no field holds it.
using FieldNameFn = std::string (*)(const void* module, const void* field, const void* field_type_tag);

template <class T>
inline constexpr char type_tag = 0;  // one address per type

template <class T>
inline constexpr bool is_vector_v = false;
template <class T, class A>
inline constexpr bool is_vector_v<std::vector<T, A>> = true;
template <class T>
inline constexpr bool is_array_v = false;
template <class T, std::size_t N>
inline constexpr bool is_array_v<std::array<T, N>> = true;
template <class T>
inline constexpr bool is_tuple_v = false;
template <class... T>
inline constexpr bool is_tuple_v<std::tuple<T...>> = true;
template <class A, class B>
inline constexpr bool is_tuple_v<std::pair<A, B>> = true;

/// Whether `value` (named `name`) is or holds the object `field`; its name goes into `found`.
template <class V>
bool find_field(const V& value, std::string_view name, const void* field, const void* field_type,
                std::string& found) {
  if (field_type == &type_tag<V> && static_cast<const void*>(&value) == field) {
    found = name;
    return true;
  }
  auto element = [&](const auto& e, std::size_t i) {
    return find_field(e, std::string(name) + "_" + std::to_string(i), field, field_type, found);
  };
  if constexpr (is_vector_v<V> || is_array_v<V>) {
    if constexpr (!std::is_class_v<typename V::value_type>) return false;  // numbers hold no module
    for (std::size_t i = 0; i < value.size(); ++i)
      if (element(value[i], i)) return true;
  } else if constexpr (is_tuple_v<V>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (element(std::get<I>(value), I) || ...);
    }(std::make_index_sequence<std::tuple_size_v<V>>{});
  }
  return false;
}

template <class M>
std::string field_name_of(const void* module, const void* field, const void* field_type) {
  std::string found;
  if constexpr (weft::record<M>) {
    const M& m = *static_cast<const M*>(module);
    boost::hana::for_each(boost::hana::accessors<M>(), [&](auto pair) {
      if (found.empty())
        find_field(boost::hana::second(pair)(m), boost::hana::to<const char*>(boost::hana::first(pair)), field,
                   field_type, found);
    });
  }
  return found;
}

}  // namespace detail

namespace diagnostic {
/// Never defined: the first line of the error names the module (as an incomplete type).
template <class Module>
struct WEFT_RECORD_MISSES_A_FIELD;
template <class Module, std::size_t Fields, std::size_t Listed>
inline constexpr bool record_lists_all_fields = Fields == Listed;

/// A module whose WEFT_RECORD leaves a field out would run that field's sub-module under a compact
/// name (`Dense_0`) instead of the field's: it is a compile error instead.
template <class M>
constexpr void check_module_record() {
  if constexpr (weft::record<M> && std::is_aggregate_v<M>) {
    constexpr std::size_t fields = aggregate_field_count<M>;
    if constexpr (fields != static_cast<std::size_t>(-1) && fields != field_names<M>.size()) {
      (void)sizeof(WEFT_RECORD_MISSES_A_FIELD<M>);
      static_assert(record_lists_all_fields<M, aggregate_field_count<M>, field_names<M>.size()>,
                    "WEFT_RECORD_MISSES_A_FIELD: the module has more fields than its WEFT_RECORD lists; list every "
                    "field in WEFT_RECORD(Type, field...), so that sub-module fields are named after their field");
    }
  }
}
}  // namespace diagnostic

namespace detail {

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
/// What one init/apply asks of every module call: a tabulate log, Linen's capture_intermediates.
struct RunContext {
  CallLog* log = nullptr;
  bool capture_intermediates = false;
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

/// A module that takes call-time keyword arguments names their record: `using call_keywords =
/// CallKeywords;` with a call operator whose last parameter is that record. Then
/// s(module, x, "mask"_kw = m) passes them by name, checked at compile time as other keywords
/// are (Linen's keyword-only __call__ arguments: mask=, deterministic=, ...).
template <class M>
concept takes_call_keywords = requires { typename M::call_keywords; } && record<typename M::call_keywords>;

/// A module that takes keyword arguments as they are and passes them on (nn::Sequential): it says
/// `static constexpr bool forwards_call_keywords = true;` and which it takes, accepts_keyword<Name>().
template <class M>
concept forwards_call_keywords = requires {
  requires M::forwards_call_keywords;
};

/// Whether the module (or nn::Sequential of modules) L takes the call-time keyword `Name`.
template <class L, fixed_string Name>
constexpr bool accepts_keyword() {
  if constexpr (requires { L::template accepts_keyword<Name>(); })
    return L::template accepts_keyword<Name>();
  else if constexpr (takes_call_keywords<L>)
    return has_field<typename L::call_keywords, Name>;
  else
    return false;
}

namespace diagnostic {
template <fixed_string Keyword, class Module>
struct WEFT_MODULE_TAKES_NO_KEYWORDS;  // never defined: the first error line names both
template <fixed_string Keyword, class Module>
inline constexpr bool module_takes_keywords = false;

template <fixed_string Keyword, class Module>
constexpr bool module_takes_no_keywords() {
  (void)sizeof(WEFT_MODULE_TAKES_NO_KEYWORDS<Keyword, Module>);
  static_assert(module_takes_keywords<Keyword, Module>,
                "WEFT_MODULE_TAKES_NO_KEYWORDS: a keyword argument was passed to a module that takes none; pass it "
                "positionally, or give the module `using call_keywords = Record;` and a call operator taking it last");
  return false;
}
}  // namespace diagnostic

namespace detail {

/// module(scope, args...), with the keyword arguments among args gathered into the module's
/// call_keywords record, passed last (after the positional arguments, in their order).
template <class M, class S, class... Args>
decltype(auto) invoke_module(const M& module, S& scope, Args&&... args) {
  if constexpr ((keyword_argument<Args> || ...) && !forwards_call_keywords<M>) {
    using split = weft::detail::split_arguments<Args...>;
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... K, std::size_t... P>(std::index_sequence<K...>, std::index_sequence<P...>)
               -> decltype(auto) {
      if constexpr (takes_call_keywords<M>) {
        return invoke_module(module, scope, std::get<P>(std::move(all))...,
                             make_record<typename M::call_keywords>(std::get<K>(std::move(all))...));
      } else {
        using First = std::remove_cvref_t<std::tuple_element_t<split::keyword_positions[0], std::tuple<Args...>>>;
        // A constant: reported right away, ahead of errors about the call's result type.
        constexpr bool reported = diagnostic::module_takes_no_keywords<First::name, M>();
        return reported;
      }
    }(typename split::keywords{}, typename split::positionals{});
  } else {
    static_assert(std::is_invocable_v<const M&, S&, Args...>,
                  "weft::nn: s(module, args...) needs a module whose call operator takes (nn::Scope&, args...) "
                  "and is const (WEFT_NOT_A_MODULE_CALL)");
    return std::invoke(module, scope, std::forward<Args>(args)...);
  }
}

}  // namespace detail

/// The scope a module's call operator receives: a core::Scope (param, variable, make_rng, sow, ...)
/// that also calls sub-modules.
class Scope : public core::Scope {
 public:
  /// The root scope of a call of `module` (used by nn::init / nn::apply / nn::bind).
  template <class M>
  Scope(core::Scope& base, const M& module, detail::RunContext run = {})
      : core::Scope(base, nullptr), module_(&module), module_type_(type_name<M>()),
        field_name_(&detail::field_name_of<M>), run_(run) {
    diagnostic::check_module_record<M>();
  }

  /// Runs `module(child_scope, args...)` in a child scope named after the field holding it (an
  /// element of a sequence field: `layers_0`, ...), or `TypeName_N`. A field called again runs in
  /// the same child, with the same variables (Linen's `self.layers[0]` called twice). Keyword
  /// arguments among args ("mask"_kw = m) fill the module's call_keywords record.
  template <class M, class... Args>
    requires(!std::is_convertible_v<const M&, std::string_view>)
  decltype(auto) operator()(const M& module, Args&&... args) {
    return call_child(child_name(module), module, std::forward<Args>(args)...);
  }

  /// Runs `module(child_scope, args...)` in the child scope `name`. The same module object (an
  /// lvalue) called again with the same name runs in the same child, with the same variables; a
  /// different module under a name already in use is an error naming both. A temporary is never
  /// shared. (Linen shares a module instance however it was named; weft shares named lvalues and
  /// fields only, since a local module value made afresh in a loop may sit at the same address.)
  template <class M, class... Args>
  decltype(auto) operator()(std::string_view name, M&& module, Args&&... args) {
    using Module = std::remove_cvref_t<M>;
    claim_name(name, std::is_lvalue_reference_v<M> ? static_cast<const void*>(&module) : nullptr,
               &detail::type_tag<Module>);
    return call_child(std::string(name), static_cast<const Module&>(module), std::forward<Args>(args)...);
  }

  /// Runs another method of a sub-module, std::invoke(method, module, child_scope, args...), in
  /// the child scope that s(module, ...) uses (Linen's `self.embed.attend(h)` for a field `embed`):
  /// s.method(embed, &nn::Embed::attend, h).
  template <class M, class Method, class... Args>
    requires(!std::is_convertible_v<const M&, std::string_view>)
  decltype(auto) method(const M& module, Method&& method, Args&&... args) {
    Scope child(*this, child_name(module), module);
    return std::invoke(std::forward<Method>(method), module, child, std::forward<Args>(args)...);
  }

  /// The same in the child scope `name`, as s("name", module, args...) names it (Linen's
  /// self.forward_rnn.method(...) for a sub-module that is not a field of a WEFT_RECORD):
  /// s.method("forward_rnn", rnn, &nn::RNN<nn::LSTMCell>::carry_and_outputs, x, kw).
  template <class M, class Method, class... Args>
  decltype(auto) method(std::string_view name, const M& module, Method&& method, Args&&... args) {
    claim_name(name, &module, &detail::type_tag<M>);
    Scope child(*this, name, module);
    return std::invoke(std::forward<Method>(method), module, child, std::forward<Args>(args)...);
  }

  /// What this init/apply asks of every module call (tabulate's log, capture_intermediates): for a
  /// transform (nn::Remat, nn::Scan) that runs its module in a scope of its own making.
  [[nodiscard]] const detail::RunContext& run_context() const noexcept { return run_; }

  /// The running module's type and path, for messages: "ResidualBlock at \"/ResidualBlock_3\"".
  [[nodiscard]] std::string describe() const {
    return std::string(module_type_) + " at \"" + path_str() + "\"";
  }

 private:
  template <class M>
  Scope(Scope& parent, std::string_view name, const M& module)
      : core::Scope(parent.push(name), nullptr),  // moves the pushed scope's path in
        module_(&module), module_type_(type_name<M>()),
        field_name_(&detail::field_name_of<M>), run_(parent.run_) {
    diagnostic::check_module_record<M>();
  }

  /// The child name of `module` called without a name: its field's, else the next `TypeName_N`.
  template <class M>
  std::string child_name(const M& module) {
    std::string name = field_name_(module_, &module, &detail::type_tag<M>);
    if (!name.empty()) {
      if (std::find(used_fields_.begin(), used_fields_.end(), name) == used_fields_.end()) {
        reserve_child(name);
        used_fields_.push_back(name);
      }
    } else {
      constexpr std::string_view type = type_name<M>();
      name.reserve(type.size() + 3);
      name.append(type).append(1, '_').append(std::to_string(next_index(type)));
      reserve_child(name);
    }
    return name;
  }

  void claim_name(std::string_view name, const void* identity, const void* type) {
    const auto used = std::find_if(explicit_names_.begin(), explicit_names_.end(),
                                   [&](const ExplicitName& e) { return e.name == name; });
    if (used == explicit_names_.end()) {
      reserve_child(name);
      explicit_names_.push_back({std::string(name), identity, type});
    } else if (identity == nullptr || used->module != identity || used->type != type) {
      detail::report_name_in_use(name, describe());
    }
  }

  template <class M, class... Args>
  decltype(auto) call_child(const std::string& name, const M& module, Args&&... args) {
    Scope child(*this, name, module);
    return child.run(module, std::forward<Args>(args)...);
  }

 public:
  /// Runs `module` in this scope (the scope made for it): the call, its tabulate row and its
  /// captured output. For init/apply/bind; modules call sub-modules through operator().
  template <class M, class... Args>
  decltype(auto) run(const M& module, Args&&... args) {
    if (!run_.log && !run_.capture_intermediates)
      return detail::invoke_module(module, *this, std::forward<Args>(args)...);
    std::size_t row = 0;
    if (run_.log) {
      row = run_.log->calls.size();
      run_.log->calls.push_back({path_str(), std::string(type_name<M>()), {}, {}});
      (detail::collect_shapes(args, run_.log->calls[row].inputs), ...);
    }
    decltype(auto) out = detail::invoke_module(module, *this, std::forward<Args>(args)...);
    if (run_.log) detail::collect_shapes(out, run_.log->calls[row].outputs);
    // Linen's capture_intermediates: every module call's output, as intermediates/<path>/__call__.
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(out)>, Tensor>)
      if (run_.capture_intermediates) (void)sow("intermediates", "__call__", out);
    return out;
  }

 private:
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
  detail::RunContext run_;
  // A handful of entries per scope: flat lists. Type names are static strings (type_name_v).
  std::vector<std::pair<std::string_view, int>> type_counters_;
  std::vector<std::string> used_fields_;
  struct ExplicitName {
    std::string name;
    const void* module;  // the module object, or null for a temporary (never shared)
    const void* type;
  };
  std::vector<ExplicitName> explicit_names_;
};

/// Linen's capture_intermediates=True, as an option of nn::apply: every module call's output is
/// sown into the "intermediates" collection, at `intermediates/<module path>/__call__/0` (a tuple,
/// as Linen's sow appends). Pass nn::Mutable{"intermediates"} too, as Linen needs
/// mutable=["intermediates"], to get them back.
struct CaptureIntermediates {};

namespace detail {

// The options nn::apply, nn::init and nn::bind take by type are core's (core::detail), plus:
using core::detail::is_mutable_argument;
using core::detail::is_rngs_argument;
template <class T>
inline constexpr bool is_capture_option = std::is_same_v<std::decay_t<T>, CaptureIntermediates>;

/// How many of Args, from the front, are apply options (Rngs, Key, Mutable, CaptureIntermediates).
template <class... Args>
constexpr std::size_t leading_options() {
  constexpr bool flags[] = {(is_rngs_argument<Args> || is_mutable_argument<Args> || is_capture_option<Args>)..., false};
  std::size_t k = 0;
  while (flags[k]) ++k;
  return k;
}

template <std::size_t K, class... Args>
constexpr bool leading_mutable() {
  constexpr bool flags[] = {is_mutable_argument<Args>..., false};
  for (std::size_t i = 0; i < K; ++i)
    if (flags[i]) return true;
  return false;
}

struct ApplyOptions {
  Rngs rngs;
  Mutable mut = Mutable::none();
  RunContext run;
};

template <class T>
void take_option(const T& option, ApplyOptions& o) {
  if constexpr (is_mutable_argument<T>)
    o.mut = option;
  else if constexpr (is_capture_option<T>)
    o.run.capture_intermediates = true;
  else
    o.rngs = core::detail::to_rngs(option);
}

/// The function core::init/apply run for a module: wraps the root core::Scope in an nn::Scope.
template <class M>
auto root_function(const M& module, RunContext run = {}) {
  return [&module, run](core::Scope& base, auto&&... args) {
    Scope s(base, module, run);
    return s.run(module, std::forward<decltype(args)>(args)...);
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
/// map or a Key (named random streams, e.g. Rngs{{"dropout", key}}), a Mutable set of
/// collections, and CaptureIntermediates. The module's call-time keywords may follow its inputs
/// (nn::apply(model, variables, x, "deterministic"_kw = true)). Without Mutable it returns the
/// module's output; with it, std::pair{output, the
/// mutable collections after the call} (e.g. the updated batch_stats).
template <class M, class... Args>
auto apply(const M& module, const Variables& variables, Args&&... args) {
  constexpr std::size_t k = detail::leading_options<Args...>();
  auto all = std::forward_as_tuple(std::forward<Args>(args)...);
  detail::ApplyOptions options;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (detail::take_option(std::get<I>(all), options), ...);
  }(std::make_index_sequence<k>{});
  auto result = [&]<std::size_t... J>(std::index_sequence<J...>) {
    return core::detail::run_apply(detail::root_function(module, options.run), variables, options.mut, options.rngs,
                                   std::get<k + J>(std::move(all))...);
  }(std::make_index_sequence<sizeof...(Args) - k>{});
  if constexpr (detail::leading_mutable<k, Args...>())
    return result;
  else
    return std::move(result.first);
}

/// A module bound to variables (and random streams), for interactive use and tests: Linen's
/// `module.bind(variables, rngs=..., mutable=...)`. Calling it runs the module; method() runs any
/// other function of it; variables() reads them. Its random streams and their counters persist
/// across calls (each dropout call draws a fresh mask), and the mutable collections it is given
/// keep their updates from one call to the next, as in Linen's bound scope.
template <class M>
class Bound {
 public:
  Bound(M module, const Variables& variables, Rngs rngs, Mutable mutable_collections)
      : module_(std::move(module)), root_(std::make_unique<core::detail::ScopeRoot>()) {
    core::detail::check_apply_variables(variables);
    root_->variables = variables;
    root_->rngs = std::move(rngs);
    root_->mutable_collections = std::move(mutable_collections);
  }

  /// module(scope, args...): the module's call operator, with its call-time keywords.
  template <class... Args>
  decltype(auto) operator()(Args&&... args) {
    core::Scope base = core::detail::make_root_scope(*root_);
    Scope s(base, module_);
    return s.run(module_, std::forward<Args>(args)...);
  }

  /// std::invoke(method, module, scope, args...): a member function of the module taking the scope
  /// first (&nn::Embed::attend), or any function of (const M&, nn::Scope&, args...) (Linen's
  /// bound.attend(h), or module.apply(..., method=fn)).
  template <class Method, class... Args>
  decltype(auto) method(Method&& method, Args&&... args) {
    core::Scope base = core::detail::make_root_scope(*root_);
    Scope s(base, module_);
    return std::invoke(std::forward<Method>(method), std::as_const(module_), s, std::forward<Args>(args)...);
  }

  /// The variables, with the updates of the mutable collections so far (Linen's bound.variables).
  [[nodiscard]] const Variables& variables() const noexcept { return root_->variables; }
  [[nodiscard]] const M& module() const noexcept { return module_; }

 private:
  M module_;
  std::unique_ptr<core::detail::ScopeRoot> root_;  // stable address: scopes point into it
};

/// nn::bind(module, variables[, rngs][, mutable]): the module bound to them (Linen's Module.bind).
/// Options as nn::apply's, recognised by type: a Key or Rngs map, and a Mutable set (none by
/// default).
template <class M, class... Options>
  requires((detail::is_rngs_argument<Options> || detail::is_mutable_argument<Options>) && ...)
[[nodiscard]] Bound<M> bind(const M& module, const Variables& variables, const Options&... options) {
  detail::ApplyOptions o;
  (detail::take_option(options, o), ...);
  return Bound<M>(module, variables, std::move(o.rngs), std::move(o.mut));
}

}  // namespace weft::nn
