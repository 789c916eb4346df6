// weft::Variables: a persistent tree. Nodes are immutable once shared; an update copies the nodes
// on the changed path and shares every other subtree.
#include "weft/variables.hpp"

#include <algorithm>
#include <numeric>
#include <optional>
#include <ostream>
#include <tuple>

#include <fmt/format.h>
#include <range/v3/algorithm/adjacent_find.hpp>
#include <range/v3/algorithm/find_if_not.hpp>
#include <range/v3/algorithm/max.hpp>
#include <range/v3/algorithm/sort.hpp>
#include <range/v3/numeric/accumulate.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/view/chunk_by.hpp>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/join.hpp>
#include <range/v3/view/map.hpp>
#include <range/v3/view/set_algorithm.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>

#include "format.hpp"

namespace weft {

namespace detail {

struct VariablesNode {
  struct Child {
    std::string name;
    std::shared_ptr<const VariablesNode> node;
  };
  Tensor value;                 // a leaf's tensor; empty for an inner node
  std::vector<Child> children;  // an inner node's children, in path order (see compare_names)
  std::size_t leaf_count = 0;   // leaves at or below this node

  [[nodiscard]] bool is_leaf() const noexcept { return value.defined(); }
};

struct VariablesAccess {
  static const std::shared_ptr<const VariablesNode>& root(const Variables& v) noexcept { return v.root_; }
  static Variables make(std::shared_ptr<const VariablesNode> root) noexcept { return Variables(std::move(root)); }
};

}  // namespace detail

namespace {

using Node = detail::VariablesNode;
using NodePtr = std::shared_ptr<const Node>;
using Child = Node::Child;
using detail::VariablesAccess;

constexpr std::string_view kParams = "params";  // the collection that gradients are taken for
constexpr std::string_view kPathHelp =
    "a path is '/'-joined names, collection first, e.g. \"params/Dense_0/kernel\"";

using weft::detail::quoted;
std::string count_leaves(std::size_t n) { return n == 1 ? std::string("1 leaf") : fmt::format("{} leaves", n); }

// Children are kept in the order of their full paths as strings, so that a depth-first walk visits
// leaves in sorted path order: an inner node's name compares as if followed by '/' (with plain
// name order, "a/x" would come before "a-b", but '-' < '/').
int compare_names(std::string_view a, bool a_inner, std::string_view b, bool b_inner) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  if (const int c = a.substr(0, n).compare(b.substr(0, n)); c != 0) return c;
  const auto next = [n](std::string_view s, bool inner) -> int {
    return n < s.size() ? static_cast<unsigned char>(s[n]) : inner ? '/' : -1;
  };
  const int ca = next(a, a_inner), cb = next(b, b_inner);
  return ca < cb ? -1 : ca > cb ? 1 : 0;
}

// Where a child named `name` (inner or leaf) is, or would go, among `children`.
std::vector<Child>::const_iterator lower_bound_child(const std::vector<Child>& children, std::string_view name,
                                                     bool inner) noexcept {
  return std::lower_bound(children.begin(), children.end(), name, [inner](const Child& c, std::string_view n) {
    return compare_names(c.name, !c.node->is_leaf(), n, inner) < 0;
  });
}

const Child* find_child(const Node& node, std::string_view name, bool inner) noexcept {
  const auto it = lower_bound_child(node.children, name, inner);
  return it != node.children.end() && it->name == name && it->node->is_leaf() != inner ? &*it : nullptr;
}

// The first segment of `path` and the rest after its '/'; `last` when there is no '/'.
struct Split {
  std::string_view head, tail;
  bool last;
};
Split split_first(std::string_view path) noexcept {
  const auto slash = path.find('/');
  if (slash == std::string_view::npos) return {path, {}, true};
  return {path.substr(0, slash), path.substr(slash + 1), false};
}

// The node at `path` (a leaf or an inner node; "" is the root), or nullptr; no allocation.
const Node* find_node(const Node* root, std::string_view path) noexcept {
  if (root == nullptr || path.empty()) return root;
  const Node* node = root;
  for (std::string_view rest = path;;) {
    const auto [head, tail, last] = split_first(rest);
    const Child* child = find_child(*node, head, /*inner=*/!last);
    if (child == nullptr && last) child = find_child(*node, head, /*inner=*/true);
    if (child == nullptr) return nullptr;
    if (last) return child->node.get();
    node = child->node.get();
    rest = tail;
  }
}

// A chain of new single-child nodes from `node` down to the shared node at `path` below it, or
// nullptr when there is none.
NodePtr subtree_of(const NodePtr& node, std::string_view path) {
  const auto [head, tail, last] = split_first(path);
  const Child* child = find_child(*node, head, /*inner=*/!last);
  if (child == nullptr && last) child = find_child(*node, head, /*inner=*/true);
  if (child == nullptr) return nullptr;
  NodePtr below = last ? child->node : child->node->is_leaf() ? nullptr : subtree_of(child->node, tail);
  if (below == nullptr) return nullptr;
  auto up = std::make_shared<Node>();
  up->leaf_count = below->leaf_count;
  up->children.push_back({std::string(head), std::move(below)});
  return up;
}

NodePtr make_leaf(Tensor value) {
  auto leaf = std::make_shared<Node>();
  leaf->value = std::move(value);
  leaf->leaf_count = 1;
  return leaf;
}

// Calls visit(path, tensor) for each leaf at or below `node` in path order; `path` is the node's
// own path on entry and is restored on exit.
template <class Visit>
void for_each_leaf(const Node& node, std::string& path, Visit&& visit) {
  if (node.is_leaf()) {
    visit(std::string_view(path), node.value);
    return;
  }
  for (const Child& c : node.children) {
    const auto size = path.size();
    if (!path.empty()) path += '/';
    path += c.name;
    for_each_leaf(*c.node, path, visit);
    path.resize(size);
  }
}

std::string first_leaf_path(const Node& node, std::string path) {
  const Node* n = &node;
  while (!n->is_leaf()) {
    path += '/';
    path += n->children.front().name;
    n = n->children.front().node.get();
  }
  return path;
}

void check_path(std::string_view path, const Tensor& value, const char* where) {
  std::size_t segments = 0;
  for (std::string_view rest = path;; ++segments) {
    const auto [head, tail, last] = split_first(rest);
    if (head.empty())
      throw ValueError(fmt::format("weft::Variables::{}: invalid path {}: it has an empty segment; {}",
                                   where, quoted(path), kPathHelp));
    if (last) break;
    rest = tail;
  }
  if (segments == 0)
    throw ValueError(fmt::format("weft::Variables::{}: invalid path {}: it needs a collection and a name; {}",
                                 where, quoted(path), kPathHelp));
  if (!value.defined())
    throw ValueError(fmt::format("weft::Variables::{}: the tensor for {} is empty "
                                 "(default-constructed); give every leaf a value", where, quoted(path)));
}

[[noreturn]] void throw_leaf_and_prefix(const char* where, std::string_view leaf, std::string_view other) {
  throw ValueError(fmt::format("weft::Variables::{}: {} would be both a leaf and a prefix of {}; a "
                               "path names either a tensor or a module, not both", where, quoted(leaf), quoted(other)));
}

// The tree of `entries` (sorted by path, validated, without duplicates), which all start with the same
// `offset` characters: the path of the node being built plus its '/'.
NodePtr build(std::span<const std::pair<std::string, Tensor>> entries, std::size_t offset) {
  auto node = std::make_shared<Node>();
  node->leaf_count = entries.size();
  while (!entries.empty()) {
    const std::string_view path = entries.front().first;
    const auto [head, tail, last] = split_first(path.substr(offset));
    if (last) {
      node->children.push_back({std::string(head), make_leaf(entries.front().second)});
      entries = entries.subspan(1);
      continue;
    }
    // The paths under `head/` follow each other; a leaf named `head` would sort just before them.
    const std::string_view prefix = path.substr(0, offset + head.size() + 1);
    if (find_child(*node, head, /*inner=*/false) != nullptr)
      throw_leaf_and_prefix("from_leaves", prefix.substr(0, prefix.size() - 1), path);
    const auto end = ranges::find_if_not(entries, [prefix](const auto& e) { return e.first.starts_with(prefix); });
    const auto count = static_cast<std::size_t>(end - entries.begin());
    node->children.push_back({std::string(head), build(entries.first(count), prefix.size())});
    entries = entries.subspan(count);
  }
  return node;
}

// `node` (the inner node at path[0, offset), or nullptr where there is none yet) with the leaf at
// `path` set to `value`; only the nodes along the path are new.
NodePtr set_in(const Node* node, std::string_view path, std::size_t offset, const Tensor& value) {
  auto out = node != nullptr ? std::make_shared<Node>(*node) : std::make_shared<Node>();
  const auto [head, tail, last] = split_first(path.substr(offset));
  if (const Child* other = find_child(*out, head, /*inner=*/last)) {
    const std::string_view here = path.substr(0, offset + head.size());
    if (last) throw_leaf_and_prefix("set", here, first_leaf_path(*other->node, std::string(here)));
    throw_leaf_and_prefix("set", here, path);
  }
  auto it = out->children.begin() + (lower_bound_child(out->children, head, !last) - out->children.begin());
  const bool found = it != out->children.end() && it->name == head && it->node->is_leaf() == last;
  NodePtr child = last ? make_leaf(value) : set_in(found ? it->node.get() : nullptr, path, offset + head.size() + 1, value);
  if (found) {
    out->leaf_count -= it->node->leaf_count;
    it->node = child;
  } else {
    it = out->children.insert(it, {std::string(head), child});
  }
  out->leaf_count += child->leaf_count;
  return out;
}

// The union of two inner nodes at `path`; b's leaves win.
NodePtr merge_nodes(const NodePtr& a, const NodePtr& b, std::string& path) {
  if (a == b) return a;
  auto out = std::make_shared<Node>();
  out->children.reserve(std::max(a->children.size(), b->children.size()));
  // A leaf sorts before an inner node of the same name, so the clash shows when the inner node comes.
  const auto push = [&](const Child& c) {
    if (!c.node->is_leaf() && find_child(*out, c.name, /*inner=*/false) != nullptr) {
      const std::string leaf = path.empty() ? c.name : path + "/" + c.name;
      throw_leaf_and_prefix("merge", leaf, first_leaf_path(*c.node, leaf));
    }
    out->children.push_back(c);
    out->leaf_count += c.node->leaf_count;
  };
  auto ia = a->children.begin(), ib = b->children.begin();
  while (ia != a->children.end() || ib != b->children.end()) {
    const int c = ia == a->children.end()   ? 1
                  : ib == b->children.end() ? -1
                                            : compare_names(ia->name, !ia->node->is_leaf(), ib->name, !ib->node->is_leaf());
    if (c < 0) {
      push(*ia++);
    } else if (c > 0) {
      push(*ib++);
    } else if (ia->node->is_leaf()) {
      ++ia;
      push(*ib++);
    } else {
      const auto size = path.size();
      if (!path.empty()) path += '/';
      path += ia->name;
      push(Child{ia->name, merge_nodes(ia->node, ib->node, path)});
      path.resize(size);
      ++ia;
      ++ib;
    }
  }
  return out;
}

bool same_structure(const Node* a, const Node* b) noexcept {
  if (a == b) return true;
  if (a == nullptr || b == nullptr) return false;
  if (a->is_leaf() || b->is_leaf()) return a->is_leaf() && b->is_leaf();
  if (a->leaf_count != b->leaf_count || a->children.size() != b->children.size()) return false;
  return std::equal(a->children.begin(), a->children.end(), b->children.begin(), [](const Child& x, const Child& y) {
    return x.name == y.name && same_structure(x.node.get(), y.node.get());
  });
}

std::vector<std::string> leaf_paths(const Node* node, std::string prefix) {
  std::vector<std::string> out;
  if (node == nullptr) return out;
  out.reserve(node->leaf_count);
  for_each_leaf(*node, prefix, [&](std::string_view p, const Tensor&) { out.emplace_back(p); });
  return out;
}

// Levenshtein distance with two rows. Written here because none of weft's dependencies offers one,
// and it is only used to rank suggestions in error messages.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string quoted_list(const std::vector<std::string>& names) {
  return names | ranges::views::transform([](const auto& p) { return quoted(p); }) |
         ranges::views::join(std::string_view(", ")) | ranges::to<std::string>();
}

std::string_view collection_of(std::string_view path) noexcept { return split_first(path).head; }

void check_collection_name(std::string_view name, const char* where) {
  if (name.find('/') != std::string_view::npos)
    throw ValueError(fmt::format("weft::Variables::{}: {} is not a collection name (it has a '/'); "
                                 "use Variables::subtree for a module path", where, quoted(name)));
}

// `node` with its leaves replaced, in path order, by replace(path, leaf); same structure.
template <class Replace>
NodePtr map_node(const Node& node, std::string& path, Replace& replace) {
  if (node.is_leaf()) return make_leaf(replace(std::string_view(path), node.value));
  auto out = std::make_shared<Node>();
  out->leaf_count = node.leaf_count;
  out->children.reserve(node.children.size());
  for (const Child& c : node.children) {
    const auto size = path.size();
    if (!path.empty()) path += '/';
    path += c.name;
    out->children.push_back({c.name, map_node(*c.node, path, replace)});
    path.resize(size);
  }
  return out;
}

std::string leaves_and_scalars(std::size_t leaves, std::int64_t scalars) {
  return fmt::format("{}, {} {}", count_leaves(leaves), scalars, scalars == 1 ? "parameter" : "parameters");
}

}  // namespace

// ---------------------------------------------------------------- construction

Variables Variables::from_leaves(std::vector<std::pair<std::string, Tensor>> leaves) {
  if (leaves.empty()) return {};
  ranges::sort(leaves, std::less<>{}, &std::pair<std::string, Tensor>::first);
  for (const auto& [path, value] : leaves) check_path(path, value, "from_leaves");
  const auto dup = ranges::adjacent_find(leaves, std::equal_to<>{}, &std::pair<std::string, Tensor>::first);
  if (dup != leaves.end())
    throw ValueError(fmt::format("weft::Variables::from_leaves: duplicate path {}; every leaf needs its own path",
                                 quoted(dup->first)));
  return Variables(build(leaves, 0));
}

Variables Variables::set(std::string_view path, Tensor value) const {
  check_path(path, value, "set");
  return Variables(set_in(root_.get(), path, 0, value));
}

Variables Variables::merge(const Variables& other) const {
  if (root_ == nullptr) return other;
  if (other.root_ == nullptr) return *this;
  std::string path;
  return Variables(merge_nodes(root_, other.root_, path));
}

Variables Variables::without(std::string_view collection) const {
  check_collection_name(collection, "without");
  if (!contains_collection(collection)) return *this;
  auto out = std::make_shared<Node>();
  for (const Child& c : root_->children) {
    if (c.name == collection) continue;
    out->children.push_back(c);
    out->leaf_count += c.node->leaf_count;
  }
  return out->children.empty() ? Variables() : Variables(std::move(out));
}

Variables Variables::prefixed(std::string_view prefix) const {
  for (std::string_view rest = prefix;;) {
    const auto [head, tail, last] = split_first(rest);
    if (head.empty())
      throw ValueError(fmt::format("weft::Variables::prefixed: invalid prefix {}: it is empty or has an empty "
                                   "segment; give '/'-joined names such as \"mu\" or \"0/mu\"", quoted(prefix)));
    if (last) break;
    rest = tail;
  }
  if (root_ == nullptr) return {};
  // One new single-child node per segment, innermost first; the tree itself is shared.
  NodePtr node = root_;
  for (std::size_t end = prefix.size();;) {
    const std::size_t slash = prefix.rfind('/', end - 1);
    const std::size_t begin = slash == std::string_view::npos ? 0 : slash + 1;
    auto up = std::make_shared<Node>();
    up->leaf_count = node->leaf_count;
    up->children.push_back({std::string(prefix.substr(begin, end - begin)), std::move(node)});
    node = std::move(up);
    if (begin == 0) break;
    end = slash;
  }
  return Variables(std::move(node));
}

Variables Variables::unprefixed(std::string_view prefix) const {
  if (prefix.empty()) return *this;
  if (root_ == nullptr) return {};
  const NodePtr* node = &root_;
  for (std::string_view rest = prefix;;) {
    const auto [head, tail, last] = split_first(rest);
    const Child* child = find_child(**node, head, /*inner=*/true);
    if (child == nullptr) {
      if (last && find_child(**node, head, /*inner=*/false) != nullptr)
        throw ValueError(fmt::format("weft::Variables::unprefixed: {} is a leaf, not a prefix of leaves; only the "
                                     "paths under a module or collection can be unprefixed", quoted(prefix)));
      return {};
    }
    node = &child->node;
    if (last) break;
    rest = tail;
  }
  // Every path keeps at least two segments only when no leaf sits directly under the prefix.
  for (const Child& c : (*node)->children)
    if (c.node->is_leaf())
      throw ValueError(fmt::format("weft::Variables::unprefixed: the leaf {} would be left "
                                   "with the one-segment path {}; {}",
                                   quoted(std::string(prefix) + "/" + c.name), quoted(c.name), kPathHelp));
  return Variables(*node);
}

Variables Variables::collection(std::string_view name) const {
  check_collection_name(name, "collection");
  return subtree(name);
}

Variables Variables::subtree(std::string_view prefix) const {
  return prefix.empty() ? *this : Variables(root_ == nullptr ? nullptr : subtree_of(root_, prefix));
}

// ---------------------------------------------------------------- access

const Tensor* Variables::find(std::string_view path) const noexcept {
  if (path.empty()) return nullptr;
  const Node* node = find_node(root_.get(), path);
  return node != nullptr && node->is_leaf() ? &node->value : nullptr;
}

const Tensor* Variables::find(std::string_view collection, std::string_view module_path,
                              std::string_view name) const noexcept {
  if (root_ == nullptr) return nullptr;
  const Child* child = find_child(*root_, collection, /*inner=*/true);
  for (std::string_view rest = module_path; child != nullptr && !rest.empty();) {
    const auto [head, tail, last] = split_first(rest);
    child = find_child(*child->node, head, /*inner=*/true);
    if (last) break;
    rest = tail;
  }
  if (child == nullptr) return nullptr;
  child = find_child(*child->node, name, /*inner=*/false);
  return child != nullptr ? &child->node->value : nullptr;
}

bool Variables::contains(std::string_view path) const noexcept { return find(path) != nullptr; }

bool Variables::contains_collection(std::string_view name) const noexcept {
  return root_ != nullptr && find_child(*root_, name, /*inner=*/true) != nullptr;
}

const Tensor& Variables::at(std::string_view path) const {
  if (const Tensor* t = find(path)) return *t;
  if (root_ == nullptr)
    throw KeyError(fmt::format("weft::Variables::at: no variable at {}; the Variables is empty", quoted(path)));
  const Node* node = find_node(root_.get(), path);
  throw KeyError(fmt::format("weft::Variables::at: no variable at {}{}; nearest existing paths: {}", quoted(path),
                             node ? fmt::format(" (it is a module holding {}, not a leaf)",
                                                count_leaves(node->leaf_count))
                                  : std::string(),
                             quoted_list(nearest_paths(path))));
}

std::vector<std::string> Variables::nearest_paths(std::string_view path, std::size_t max_count) const {
  if (root_ == nullptr) return {};
  // The deepest existing inner node along `path`: its leaves are the candidates.
  const Node* node = root_.get();
  std::size_t prefix_size = 0;
  for (std::string_view rest = path;;) {
    const auto [head, tail, last] = split_first(rest);
    const Child* child = last ? nullptr : find_child(*node, head, /*inner=*/true);
    if (child == nullptr) break;
    node = child->node.get();
    prefix_size += head.size() + 1;
    rest = tail;
  }
  const auto candidates = leaf_paths(node, std::string(path.substr(0, prefix_size == 0 ? 0 : prefix_size - 1)));
  // Candidates are in path order, so their index breaks ties by path.
  auto scored = ranges::views::iota(std::size_t{0}, candidates.size()) | ranges::views::transform([&](std::size_t i) {
                  const std::string& p = candidates[i];
                  const auto common = std::mismatch(p.begin(), p.end(), path.begin(), path.end()).first - p.begin();
                  return std::tuple{-common, edit_distance(p, path), i};
                }) |
                ranges::to<std::vector>();
  ranges::sort(scored);
  return scored | ranges::views::take(max_count) |
         ranges::views::transform([&](const auto& s) { return candidates[std::get<2>(s)]; }) | ranges::to<std::vector>();
}

std::vector<std::string> Variables::collections() const {
  if (root_ == nullptr) return {};
  auto names = root_->children | ranges::views::transform(&Child::name) | ranges::to<std::vector>();
  ranges::sort(names);
  return names;
}

std::vector<std::string> Variables::paths() const { return leaf_paths(root_.get(), {}); }

std::vector<std::pair<std::string, Tensor>> Variables::leaves() const {
  std::vector<std::pair<std::string, Tensor>> out;
  if (root_ == nullptr) return out;
  out.reserve(root_->leaf_count);
  std::string path;
  for_each_leaf(*root_, path, [&](std::string_view p, const Tensor& t) { out.emplace_back(p, t); });
  return out;
}

std::size_t Variables::size() const noexcept { return root_ == nullptr ? 0 : root_->leaf_count; }

std::int64_t Variables::num_elements() const {
  std::int64_t total = 0;
  if (root_ == nullptr) return total;
  std::string path;
  for_each_leaf(*root_, path, [&](std::string_view, const Tensor& t) { total += t.size(); });
  return total;
}

const void* Variables::node_identity(std::string_view path) const noexcept { return find_node(root_.get(), path); }

bool same_structure(const Variables& a, const Variables& b) noexcept {
  return same_structure(VariablesAccess::root(a).get(), VariablesAccess::root(b).get());
}

// ---------------------------------------------------------------- printing

std::string Variables::str() const {
  const auto all = leaves();
  if (all.empty()) return "(no variables)\ntotal: 0 leaves, 0 parameters";
  const auto shapes = all | ranges::views::values | ranges::views::transform([](const Tensor& t) { return t.shape().str(); }) |
                      ranges::to<std::vector>();
  const auto width = [](const auto& strings) {
    return ranges::max(strings | ranges::views::transform([](const auto& s) { return std::string_view(s).size(); }));
  };
  const std::size_t path_width = width(all | ranges::views::keys), shape_width = width(shapes);
  std::string out;
  const auto pad = [&out](std::string_view s, std::size_t w) {
    out += s;
    out.append(w + 2 - s.size(), ' ');
  };
  for (std::size_t i = 0; i < all.size(); ++i) {
    pad(all[i].first, path_width);
    pad(shapes[i], shape_width);
    out += name(all[i].second.dtype());
    out += '\n';
  }
  // Totals per collection (the leaves of one collection follow each other), then overall.
  const auto scalars = [](const auto& leaves) {
    return ranges::accumulate(leaves | ranges::views::values | ranges::views::transform(&Tensor::size), std::int64_t{0});
  };
  auto groups = all | ranges::views::chunk_by([](const auto& a, const auto& b) {
                        return collection_of(a.first) == collection_of(b.first);
                      });
  std::vector<std::pair<std::string, std::string>> totals;
  for (const auto& group : groups)
    totals.emplace_back(std::string(collection_of((*ranges::begin(group)).first)) + ":",
                        leaves_and_scalars(static_cast<std::size_t>(ranges::distance(group)), scalars(group)));
  totals.emplace_back("total:", leaves_and_scalars(all.size(), scalars(all)));
  const std::size_t label_width = width(totals | ranges::views::keys) - 1;
  for (std::size_t i = 0; i < totals.size(); ++i) {
    if (i > 0) out += '\n';
    pad(totals[i].first, label_width);
    out += totals[i].second;
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Variables& v) { return os << v.str(); }

// ---------------------------------------------------------------- tree_map

std::optional<std::string> structure_difference(const Variables& a, const Variables& b) {
  if (same_structure(a, b)) return std::nullopt;
  const auto pa = a.paths(), pb = b.paths();
  auto differ = ranges::views::set_symmetric_difference(pa, pb);
  return *ranges::begin(differ);  // not empty: the structures differ
}

Variables detail::map_leaves(std::span<const Variables* const> trees, const LeafFunction& f) {
  for (std::size_t t = 1; t < trees.size(); ++t) {
    const auto path = structure_difference(*trees[0], *trees[t]);
    if (!path) continue;
    const bool in_first = trees[0]->contains(*path);
    throw KeyError(fmt::format("weft::tree_map: the trees differ in structure: {} is in tree {} but not in tree {} ({} "
                               "vs {}); tree_map needs trees with the same paths",
                               quoted(*path), in_first ? 1 : t + 1, in_first ? t + 1 : 1,
                               count_leaves(trees[0]->size()), trees[t]->size()));
  }
  const Node* first = VariablesAccess::root(*trees[0]).get();
  if (first == nullptr) return {};
  // The trees share one structure, so their leaves correspond one to one in path order: the walk
  // over the first tree takes the others' leaves from these lists.
  std::vector<std::vector<const Tensor*>> others(trees.size() - 1);
  for (std::size_t t = 1; t < trees.size(); ++t) {
    others[t - 1].reserve(first->leaf_count);
    std::string path;
    for_each_leaf(*VariablesAccess::root(*trees[t]), path,
                  [&](std::string_view, const Tensor& x) { others[t - 1].push_back(&x); });
  }
  std::vector<const Tensor*> args(trees.size());
  std::size_t index = 0;
  auto replace = [&](std::string_view path, const Tensor& leaf) {
    args[0] = &leaf;
    for (std::size_t t = 1; t < trees.size(); ++t) args[t] = others[t - 1][index];
    ++index;
    Tensor result = f(path, args);
    if (!result.defined())
      throw ValueError(fmt::format("weft::tree_map: the function returned an empty Tensor for "
                                   "{}; return a value for every leaf", quoted(path)));
    return result;
  };
  std::string path;
  return VariablesAccess::make(map_node(*first, path, replace));
}

void detail::visit_leaves(const Variables& tree,
                          const std::function<void(std::string_view path, const Tensor& leaf)>& visit) {
  const NodePtr& root = VariablesAccess::root(tree);
  if (root == nullptr) return;
  std::string path;
  for_each_leaf(*root, path, visit);
}

namespace {

void append_leaves_of(const Node& node, std::vector<Tensor>& out) {
  if (node.is_leaf()) {
    out.push_back(node.value);
    return;
  }
  for (const Child& c : node.children) append_leaves_of(*c.node, out);
}

}  // namespace

void detail::append_leaves(const Variables& tree, std::vector<Tensor>& leaves) {
  if (const NodePtr& root = VariablesAccess::root(tree); root != nullptr) append_leaves_of(*root, leaves);
}

Variables detail::with_leaves(const Variables& like, std::span<const Tensor> leaves) {
  const NodePtr& root = VariablesAccess::root(like);
  if (root == nullptr) return like;
  if (leaves.size() < root->leaf_count)
    throw ValueError(fmt::format("weft::Variables: got {} tensors for the {} of a tree", leaves.size(),
                                 count_leaves(root->leaf_count)));
  std::size_t index = 0;
  auto replace = [&](std::string_view, const Tensor&) { return leaves[index++]; };
  std::string path;
  return VariablesAccess::make(map_node(*root, path, replace));
}

// ---------------------------------------------------------------- autodiff

namespace {

const NodePtr& params_of(const Variables& x) {
  const NodePtr& root = VariablesAccess::root(x);
  const Child* params = root == nullptr ? nullptr : find_child(*root, kParams, /*inner=*/true);
  if (params == nullptr)
    throw ValueError(fmt::format("weft::value_and_grad: the Variables has no 'params' collection ({}); gradients are "
                                 "taken with respect to 'params' only, other collections are constants",
                                 x.empty() ? std::string("it is empty")
                                           : fmt::format("its collections: {}", quoted_list(x.collections()))));
  return params->node;
}

// x with its params replaced, in path order, by `values`.
Variables with_params(const Variables& x, const NodePtr& params, std::vector<Tensor>& values, bool params_only) {
  if (values.size() != params->leaf_count)
    throw ValueError(fmt::format("weft::value_and_grad: got {} tensors for the {} of 'params'", values.size(),
                                 count_leaves(params->leaf_count)));
  std::size_t index = 0;
  auto replace = [&](std::string_view, const Tensor&) { return std::move(values[index++]); };
  std::string path(kParams);
  NodePtr mapped = map_node(*params, path, replace);
  if (params_only) {
    auto root = std::make_shared<Node>();
    root->leaf_count = mapped->leaf_count;
    root->children.push_back({std::string(kParams), std::move(mapped)});
    return VariablesAccess::make(std::move(root));
  }
  // A copy of the root with the params child replaced; the other collections are shared.
  auto root = std::make_shared<Node>(*VariablesAccess::root(x));
  const auto at = lower_bound_child(root->children, kParams, /*inner=*/true) - root->children.cbegin();
  root->children[static_cast<std::size_t>(at)].node = std::move(mapped);
  return VariablesAccess::make(std::move(root));
}

}  // namespace

std::vector<Tensor> autodiff::Differentiable<Variables>::leaves(const Variables& x) {
  std::vector<Tensor> out;
  const NodePtr& params = params_of(x);
  out.reserve(params->leaf_count);
  std::string path(kParams);
  for_each_leaf(*params, path, [&](std::string_view p, const Tensor& t) {
    if (t.dtype() != DType::float32)
      throw DTypeError(fmt::format("weft::value_and_grad: 'params' leaf {} is {}; only float32 leaves can be "
                                   "differentiated (keep integer state in another collection)",
                                   quoted(p), name(t.dtype())));
    out.push_back(t);
  });
  return out;
}

Variables autodiff::Differentiable<Variables>::rebuild(const Variables& x, std::vector<Tensor> leaves) {
  return with_params(x, params_of(x), leaves, /*params_only=*/false);
}

Variables autodiff::Differentiable<Variables>::gradient(const Variables& x, std::vector<Tensor> grads) {
  return with_params(x, params_of(x), grads, /*params_only=*/true);
}

}  // namespace weft
