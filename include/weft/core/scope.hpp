#pragma once
// weft::core::Scope: the functional core's view of variables and random streams
// (the mirror of flax.core.Scope), and init/apply, which run one layer function
// either to create its variables or to read them.
//
// A layer function takes its hyperparameters first, then a Scope&, then inputs:
//   Tensor mlp(int hidden, int out, core::Scope& s, const Tensor& x);
// `init` runs it with every collection mutable and creates the parameters;
// `apply` runs the same code and reads them.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/initializer.hpp"
#include "weft/random.hpp"
#include "weft/tensor.hpp"
#include "weft/variables.hpp"

namespace weft::core {

/// Named random streams: {"params": key, "dropout": key2}.
using Rngs = std::map<std::string, Key, std::less<>>;

/// Which collections may change during a call: none, all, a list, or all except a list
/// (Flax's mutable=False / True / [...] / DenyList([...])).
class Mutable {
 public:
  Mutable() = default;  // none
  Mutable(std::initializer_list<std::string> names) : names_(names) {}  // NOLINT
  Mutable(std::string name) : names_{std::move(name)} {}                 // NOLINT
  Mutable(const char* name) : names_{name} {}                            // NOLINT
  static Mutable none() { return {}; }
  static Mutable all() { return Mutable(Kind::all_except, {}); }
  static Mutable all_except(std::initializer_list<std::string> names) { return Mutable(Kind::all_except, names); }

  [[nodiscard]] bool contains(std::string_view collection) const {
    const bool listed = names_.find(collection) != names_.end();
    return kind_ == Kind::only ? listed : !listed;
  }
  [[nodiscard]] bool is_none() const noexcept { return kind_ == Kind::only && names_.empty(); }
  [[nodiscard]] std::string str() const;

 private:
  enum class Kind { only, all_except };
  Mutable(Kind kind, std::initializer_list<std::string> names) : kind_(kind), names_(names) {}
  Kind kind_ = Kind::only;
  std::set<std::string, std::less<>> names_;
};

class Scope;

namespace detail {
/// State shared by all scopes of one init/apply call.
struct ScopeRoot;
Scope make_root_scope(ScopeRoot& root);
/// The state shared by the scopes of the call `scope` belongs to: what a lifted transform
/// (nn::Remat) reads to replay a call in a copy of it.
ScopeRoot& root_of(Scope& scope) noexcept;
}  // namespace detail

/// A handle to one variable of a (possibly mutable) collection, such as BatchNorm's running mean.
/// It is valid during the init/apply call that made it; using it after that call has returned is
/// an Error (read the variable from the Variables the call returned instead).
class Variable {
 public:
  [[nodiscard]] Tensor value() const;
  /// Replaces the value; an error naming the variable and the collection when it is immutable.
  void set(Tensor value) const;
  [[nodiscard]] bool is_mutable() const;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  friend class Scope;
  Variable(detail::ScopeRoot* root, std::string collection, std::string name, std::string scope_path, std::string path);
  /// The root of the call, or an Error naming `op` when the call has returned.
  [[nodiscard]] detail::ScopeRoot& live_root(const char* op) const;
  detail::ScopeRoot* root_;
  std::weak_ptr<const void> alive_;  // expires with the root: the call that made this handle returned
  std::string collection_, name_, scope_path_, path_;
};

class Scope {
 public:
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  Scope(Scope&&) = default;

  /// The parameter `name` of this scope. Under init it is created as init_fn(make_rng("params"), shape);
  /// under apply it is read and its shape checked against `shape`.
  Tensor param(std::string_view name, const Initializer& init_fn, const Shape& shape);

  /// A variable of `collection` (not params): created with init_fn() when missing and the collection
  /// is mutable; otherwise read. No key is passed to init_fn (as Flax).
  Variable variable(std::string_view collection, std::string_view name, const std::function<Tensor()>& init_fn);
  [[nodiscard]] bool has_variable(std::string_view collection, std::string_view name) const;

  /// Linen's sow with its default reduction: appends `value` to the tuple `name` of `collection`
  /// (kept as name/0, name/1, ...) when the collection is mutable, and says whether it did; an
  /// immutable collection ignores it (returns false), as in Linen.
  bool sow(std::string_view collection, std::string_view name, const Tensor& value);

  /// A callable that runs f(child_scope, args...) in the child scope `name`. Calling it again runs
  /// in the same child (same variables; random counters continue).
  template <class F>
  auto child(std::string_view name, F f) {
    reserve(name, kChildCollection);
    return [this, child_name = std::string(name), f = std::move(f)]<class... Args>(Args&&... args) -> decltype(auto) {
      Scope c = push(child_name);
      return std::invoke(f, c, std::forward<Args>(args)...);
    };
  }

  /// A key for `stream` derived as Flax derives it: fold_in(stream key, h), h the first 4 bytes
  /// (big-endian) of SHA-1 over this scope's path names and the per-scope, per-stream call counter.
  /// A missing stream falls back to "params".
  [[nodiscard]] Key make_rng(std::string_view stream = "params");
  [[nodiscard]] bool has_rng(std::string_view stream) const;

  [[nodiscard]] bool is_initializing() const;
  [[nodiscard]] bool is_mutable(std::string_view collection) const;

  /// The scope's path as Flax prints it: "/" for the root, "/Dense_0/kernel_net" below.
  [[nodiscard]] std::string path_str() const;
  /// The module names from the root to this scope.
  [[nodiscard]] std::vector<std::string> path() const;
  /// The scope's own name ("" for the root).
  [[nodiscard]] std::string_view name() const noexcept {
    return std::string_view(joined_).substr(joined_.rfind('/') == std::string::npos ? 0 : joined_.rfind('/') + 1);
  }

  /// The first "prefix0", "prefix1", ... not yet used in this scope (auto-naming of children).
  [[nodiscard]] std::string default_name(std::string_view prefix) const;
  /// Claims `name` for a child scope; "Duplicate use of scope name" when taken.
  void reserve_child(std::string_view name) { reserve(name, kChildCollection); }
  /// The child scope `name`, without reserving it (the caller reserved it, or reuses it).
  [[nodiscard]] Scope push(std::string_view name);

 protected:
  /// A view of the same scope (same variables, path and random counters) with its own name
  /// reservations: how the object layer wraps the scope it is given.
  Scope(const Scope& other, std::nullptr_t) : root_(other.root_), joined_(other.joined_) {}
  Scope(Scope&& other, std::nullptr_t) noexcept : root_(other.root_), joined_(std::move(other.joined_)) {}

 private:
  friend Scope detail::make_root_scope(detail::ScopeRoot& root);
  friend detail::ScopeRoot& detail::root_of(Scope& scope) noexcept;
  friend class Variable;

  static constexpr std::string_view kChildCollection = "\x01child";  // marks a name held by a child scope
  Scope(detail::ScopeRoot* root, std::string joined) : root_(root), joined_(std::move(joined)) {}
  void reserve(std::string_view name, std::string_view collection);
  /// ValueError naming `op` for a collection name that is empty or holds a '/'.
  void check_collection(std::string_view collection, const char* op) const;
  [[nodiscard]] std::string variable_path(std::string_view collection, std::string_view name) const;

  struct Reservation {
    std::string name;
    std::string collection;
  };
  /// Calls f(reservation) for each (name, collection) pair claimed in this scope until f returns true.
  template <class F>
  bool any_reserved(F f) const {
    const std::size_t inline_count = reserved_count_ < reserved_inline_.size() ? reserved_count_ : reserved_inline_.size();
    for (std::size_t i = 0; i < inline_count; ++i)
      if (f(reserved_inline_[i])) return true;
    for (const Reservation& r : reserved_overflow_)
      if (f(r)) return true;
    return false;
  }

  detail::ScopeRoot* root_;
  std::string joined_;  // the module names from the root, joined with '/': "Dense_0/inner" ("" for the root)
  // The (name, collection) pairs claimed in this scope. A layer claims its few params and a model its
  // children, so the first four stay inline and a call allocates nothing for them; more spill over.
  std::array<Reservation, 4> reserved_inline_;
  std::size_t reserved_count_ = 0;
  std::vector<Reservation> reserved_overflow_;
};

namespace detail {

struct ScopeRoot {
  ScopeRoot() = default;
  ScopeRoot(const ScopeRoot&) = delete;  // handles point at this root; a copy would outlive them unseen
  ScopeRoot& operator=(const ScopeRoot&) = delete;
  // Shared with the Variable handles as weak pointers, so that a handle kept past the call knows.
  std::shared_ptr<const void> alive = std::make_shared<char>();
  Variables variables;  // what apply was given, plus what this call created or changed
  Mutable mutable_collections;
  Rngs rngs;
  bool initializing = false;
  std::map<std::pair<std::string, std::string>, std::uint32_t, std::less<>> rng_counters;  // (scope path, stream)
};

/// The root scope of a call (only init/apply make one).
Scope make_root_scope(ScopeRoot& root);
/// Checks the variables given to apply (e.g. a doubled {"params": {"params": ...}} tree).
void check_apply_variables(const Variables& variables);
/// The variables of `root` in its mutable collections (what a mutable apply returns).
Variables mutable_variables(const ScopeRoot& root);

// The optional arguments that init, apply (and nn's) recognise by type, in one place.
template <class T>
inline constexpr bool is_rngs_argument = std::is_same_v<std::decay_t<T>, Rngs> || std::is_same_v<std::decay_t<T>, Key>;
template <class T>
inline constexpr bool is_mutable_argument = std::is_same_v<std::decay_t<T>, Mutable>;

inline Rngs to_rngs(const Rngs& rngs) { return rngs; }
inline Rngs to_rngs(const Key& key) { return Rngs{{"params", key}}; }

}  // namespace detail

/// init(f) is a callable (rngs, args...) -> std::pair{f's output, Variables}, where rngs is a Key (the
/// "params" stream) or an Rngs map. Every collection is mutable (or those given).
template <class F>
auto init(F f, Mutable mutable_collections = Mutable::all()) {
  return [f = std::move(f), mutable_collections]<class R, class... Args>(const R& rngs, Args&&... args) {
    static_assert(detail::is_rngs_argument<R>,
                  "weft::core::init(f)(rngs, args...): the first argument must be a weft::Key or a weft::core::Rngs map");
    detail::ScopeRoot root;
    root.mutable_collections = mutable_collections;
    root.rngs = detail::to_rngs(rngs);
    root.initializing = true;
    Scope scope = detail::make_root_scope(root);
    auto out = std::invoke(f, scope, std::forward<Args>(args)...);
    return std::pair{std::move(out), detail::mutable_variables(root)};
  };
}

namespace detail {

/// Runs f under apply with `mutable_collections`; returns (output, the mutable collections).
template <class F, class... Args>
auto run_apply(const F& f, const Variables& variables, const Mutable& mutable_collections, Args&&... args) {
  check_apply_variables(variables);
  ScopeRoot root;
  root.variables = variables;
  root.mutable_collections = mutable_collections;
  auto run = [&]<class... Rest>(Rest&&... rest) {
    Scope scope = make_root_scope(root);
    return std::invoke(f, scope, std::forward<Rest>(rest)...);
  };
  auto out = [&] {
    if constexpr (sizeof...(Args) == 0) {
      return run();
    } else {
      return [&]<class First, class... Rest>(First&& first, Rest&&... rest) {
        if constexpr (is_rngs_argument<First>) {
          root.rngs = to_rngs(first);
          return run(std::forward<Rest>(rest)...);
        } else {
          return run(std::forward<First>(first), std::forward<Rest>(rest)...);
        }
      }(std::forward<Args>(args)...);
    }
  }();
  return std::pair{std::move(out), mutable_variables(root)};
}

}  // namespace detail

/// apply(f) is a callable (variables, [rngs,] args...) -> f's output; no collection is mutable.
/// rngs (a Key, taken as the "params" stream, or an Rngs map) is optional and recognised by its type.
template <class F>
auto apply(F f) {
  return [f = std::move(f)]<class... Args>(const Variables& variables, Args&&... args) {
    return detail::run_apply(f, variables, Mutable::none(), std::forward<Args>(args)...).first;
  };
}

/// apply(f, mutable_collections) is a callable (variables, [rngs,] args...) -> std::pair{output,
/// the variables of the mutable collections after the call} (Flax's apply(fn, mutable=[...])).
template <class F>
auto apply(F f, Mutable mutable_collections) {
  return [f = std::move(f), mutable_collections]<class... Args>(const Variables& variables, Args&&... args) {
    return detail::run_apply(f, variables, mutable_collections, std::forward<Args>(args)...);
  };
}

}  // namespace weft::core

namespace weft {
using core::Rngs;  // named random streams are used at every level: weft::Rngs{{"dropout", key}}
}  // namespace weft
