#pragma once
// weft::Variables: the immutable tree of tensors that holds a model's state, as Flax's
// variables dict does: collection ("params", "batch_stats") -> module path -> leaf.
//
// A leaf is named by its '/'-joined path, collection first: "params/Dense_0/kernel".
// The tree is persistent: its nodes are immutable and shared, so copying a Variables
// costs one reference count, and `set` copies only the nodes along the changed path.
// Every traversal (paths, leaves, tree_map, printing) visits leaves in sorted path
// order (std::string order of the full paths).
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/autodiff.hpp"
#include "weft/tensor.hpp"

namespace weft {

namespace detail {
struct VariablesNode;
struct VariablesAccess;
}  // namespace detail

class Variables {
 public:
  /// No variables.
  Variables() noexcept = default;

  /// From (full path, tensor) pairs in any order. A path has at least two non-empty segments
  /// (collection first). A duplicate path, an empty segment, an empty Tensor, or a path that is both a
  /// leaf and a prefix of another leaf throws weft::ValueError naming the path.
  static Variables from_leaves(std::vector<std::pair<std::string, Tensor>> leaves);

  /// The leaf at `path`; weft::KeyError naming the path and the nearest existing paths otherwise.
  [[nodiscard]] const Tensor& at(std::string_view path) const;
  /// The leaf at `path`, or nullptr (no exception, no allocation).
  /// The leaf at collection/module_path/name (module_path may be empty or hold several '/'-joined
  /// names), or nullptr: find() without joining the path first (what Scope looks up per parameter).
  [[nodiscard]] const Tensor* find(std::string_view collection, std::string_view module_path,
                                   std::string_view name) const noexcept;
  [[nodiscard]] const Tensor* find(std::string_view path) const noexcept;
  /// True when a leaf is at exactly `path` (a prefix of leaves is not a leaf).
  [[nodiscard]] bool contains(std::string_view path) const noexcept;
  [[nodiscard]] bool contains_collection(std::string_view name) const noexcept;

  /// Only the collection `name`; paths keep their "name/" prefix. A missing collection gives an empty
  /// Variables; a name with '/' is a weft::ValueError (use `subtree`).
  [[nodiscard]] Variables collection(std::string_view name) const;
  /// Only the leaves at or under `prefix` ("params/Dense_0"); paths keep the prefix; none: empty.
  [[nodiscard]] Variables subtree(std::string_view prefix) const;
  /// The collection names, sorted.
  [[nodiscard]] std::vector<std::string> collections() const;
  /// The full paths of the leaves, sorted.
  [[nodiscard]] std::vector<std::string> paths() const;
  /// (path, tensor) for every leaf, sorted by path.
  [[nodiscard]] std::vector<std::pair<std::string, Tensor>> leaves() const;

  /// Number of leaves.
  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] bool empty() const noexcept { return root_ == nullptr; }
  /// Total number of scalars over all leaves.
  [[nodiscard]] std::int64_t num_elements() const;

  /// A new Variables with the leaf at `path` added or replaced (this one is unchanged). The same
  /// checks as from_leaves apply: a path that would be both a leaf and a prefix is a ValueError.
  [[nodiscard]] Variables set(std::string_view path, Tensor value) const;
  /// The union of both; `other`'s leaf wins where both have one. A path that is a leaf in one and a
  /// prefix of leaves in the other is a ValueError naming it.
  [[nodiscard]] Variables merge(const Variables& other) const;
  /// Everything except the collection `name` (unchanged when there is none).
  [[nodiscard]] Variables without(std::string_view collection) const;

  /// The same leaves with "prefix/" put in front of every path: prefixed("mu") turns
  /// "params/Dense_0/kernel" into "mu/params/Dense_0/kernel" (how an optimizer state nests a copy of
  /// the params tree). Shares every node; an empty prefix or segment is a weft::ValueError.
  [[nodiscard]] Variables prefixed(std::string_view prefix) const;
  /// The inverse of prefixed: the leaves under `prefix` with "prefix/" taken off their paths, sharing
  /// their nodes (no copy). Empty when nothing is under `prefix`; a weft::ValueError when a leaf would be
  /// left with fewer than two segments (a leaf directly under `prefix`, or at `prefix` itself).
  [[nodiscard]] Variables unprefixed(std::string_view prefix) const;

  /// Up to `max_count` existing leaf paths closest to `path`, for error messages: leaves under the
  /// deepest existing node along `path`, by longest common prefix, then edit distance.
  [[nodiscard]] std::vector<std::string> nearest_paths(std::string_view path, std::size_t max_count = 3) const;

  /// One line per leaf (path, shape, dtype; aligned, sorted by path), then the number of leaves and
  /// of scalars per collection and in total.
  [[nodiscard]] std::string str() const;

  /// Identity of the immutable node at `path` (a leaf, a module or a collection; "" is the root), or
  /// nullptr. Equal identities mean shared storage: this is how tests observe structural sharing.
  [[nodiscard]] const void* node_identity(std::string_view path) const noexcept;

 private:
  explicit Variables(std::shared_ptr<const detail::VariablesNode> root) noexcept : root_(std::move(root)) {}
  std::shared_ptr<const detail::VariablesNode> root_;  // null when empty
  friend struct detail::VariablesAccess;
};

std::ostream& operator<<(std::ostream& os, const Variables& v);

/// True when both have the same paths (the tensors may differ).
[[nodiscard]] bool same_structure(const Variables& a, const Variables& b) noexcept;
/// The first path, in sorted order, that is a leaf in one of them and not in the other; nullopt when
/// both have the same structure.
[[nodiscard]] std::optional<std::string> structure_difference(const Variables& a, const Variables& b);

namespace detail {

/// The engine of tree_map: f(path, leaves of each tree at path) for every path of trees[0], in path
/// order; the results form a tree of the same structure. Trees of different structure give a
/// weft::KeyError naming the first path (in sorted order) that is in one and not in the other.
using LeafFunction = std::function<Tensor(std::string_view path, std::span<const Tensor* const> leaves)>;
Variables map_leaves(std::span<const Variables* const> trees, const LeafFunction& f);

/// visit(path, leaf) for every leaf in path order, without building the path strings' vector
/// (weft::jit flattens its arguments with it on every call).
void visit_leaves(const Variables& tree, const std::function<void(std::string_view path, const Tensor& leaf)>& visit);
/// Appends the leaves in path order (no paths built: weft::jit's per-call flattening).
void append_leaves(const Variables& tree, std::vector<Tensor>& leaves);
/// `like` with its leaves replaced, in path order, by leaves[0, like.size()); the rest of the
/// structure is shared. A weft::ValueError when fewer leaves are given.
Variables with_leaves(const Variables& like, std::span<const Tensor> leaves);

template <class>
using leaf_ref = const Tensor&;

template <class F, class... Trees>
concept LeafMap = std::invocable<F&, leaf_ref<Trees>...> &&
                  std::convertible_to<std::invoke_result_t<F&, leaf_ref<Trees>...>, Tensor>;

template <class F, class... Trees>
concept PathLeafMap = !LeafMap<F, Trees...> && std::invocable<F&, std::string_view, leaf_ref<Trees>...> &&
                      std::convertible_to<std::invoke_result_t<F&, std::string_view, leaf_ref<Trees>...>, Tensor>;

template <class F, class... Trees>
Variables tree_map_impl(F& f, const Trees&... trees) {
  const std::array<const Variables*, sizeof...(Trees)> roots{&trees...};
  return map_leaves(roots, [&f](std::string_view path, std::span<const Tensor* const> xs) -> Tensor {
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> Tensor {
      if constexpr (LeafMap<F, Trees...>)
        return std::invoke(f, *xs[I]...);
      else
        return std::invoke(f, path, *xs[I]...);
    }(std::index_sequence_for<Trees...>{});
  });
}

}  // namespace detail

/// tree_map(f, tree): f(const Tensor&) -> Tensor over every leaf; the result has the same structure.
/// tree_map(f, a, b, ...): f(const Tensor&, const Tensor&, ...) -> Tensor over the leaves at the same
/// path of every tree; the trees must have the same structure, else a weft::KeyError naming the first
/// path present in one and not the other. f may also take the leaf's path first,
/// f(std::string_view path, const Tensor&...), e.g. for masks by name. An empty Tensor returned by f
/// is a weft::ValueError naming the path.
template <class F, std::same_as<Variables>... More>
  requires(detail::LeafMap<F, Variables, More...> || detail::PathLeafMap<F, Variables, More...>)
Variables tree_map(F&& f, const Variables& tree, const More&... more) {
  return detail::tree_map_impl<std::remove_reference_t<F>, Variables, More...>(f, tree, more...);
}

/// Gradients with respect to a Variables are taken for its `params` collection only: leaves() are
/// the params tensors in sorted path order, rebuild() replaces them (other collections such as
/// batch_stats stay as they are, constants), and the gradient is a Variables holding only `params`,
/// with the same paths. A Variables without `params` is a weft::ValueError.
namespace autodiff {
template <>
struct Differentiable<Variables> {
  static std::vector<Tensor> leaves(const Variables& x);
  static Variables rebuild(const Variables& x, std::vector<Tensor> leaves);
  static Variables gradient(const Variables& x, std::vector<Tensor> grads);
};
}  // namespace autodiff

}  // namespace weft
