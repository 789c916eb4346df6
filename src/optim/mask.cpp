// Mask, masked (optax.masked), Labels and multi_transform (optax.multi_transform).
#include "weft/optim/mask.hpp"

#include <memory>

#include <fmt/format.h>

#include "../format.hpp"
#include "internal.hpp"

namespace weft::optim {

constexpr const char* kMasked = "masked";
constexpr const char* kMultiTransform = "multi_transform";

namespace {

using weft::detail::quoted;

/// The entry of `map` at `path` or at its longest prefix ("a/b/c", then "a/b", then "a"), or nullptr.
template <class Lookup>
auto longest_prefix(std::string_view path, Lookup&& lookup) -> decltype(lookup(path)) {
  std::string_view p = path;
  while (true) {
    if (auto found = lookup(p)) return found;
    const auto slash = p.rfind('/');
    if (slash == std::string_view::npos) return nullptr;
    p = p.substr(0, slash);
  }
}

}  // namespace

Mask::Mask(Variables flags) : flags_(std::move(flags)) {
  for (const auto& [path, t] : flags_.leaves())
    if (t.size() != 1)
      throw ValueError(fmt::format("weft::optim::Mask: the flag at {} is {} {}; a mask holds one scalar per leaf (or "
                                   "per prefix), nonzero for the leaves the transformation applies to",
                                   quoted(path), name(t.dtype()), t.shape().str()));
}

bool Mask::applies_to(std::string_view path, const char* op) const {
  if (predicate_) return predicate_(path);
  if (flags_.empty()) return true;
  const Tensor* flag = longest_prefix(path, [&](std::string_view p) { return flags_.find(p); });
  if (flag == nullptr)
    throw KeyError(fmt::format("{}: the mask has no flag for {} nor for a prefix of it (its paths: {}, ...); give a "
                               "flag for every leaf, or for a prefix such as \"params\"",
                               detail::where(op), quoted(path), quoted(flags_.paths().front())));
  return flag->item() != 0.0f;
}

GradientTransformation masked(GradientTransformation inner, Mask mask) {
  if (!inner.init || !inner.update)
    throw ValueError("weft::optim::masked: the inner transformation has no init or update function");
  auto shared = std::make_shared<const std::pair<GradientTransformation, Mask>>(std::move(inner), std::move(mask));
  GradientTransformation out;
  out.init = [shared](const Variables& params) {
    const auto keep = [&](std::string_view path) { return shared->second.applies_to(path, kMasked); };
    const Variables state = shared->first.init(detail::filtered(params, keep));
    return state.empty() ? state : state.prefixed("inner_state");
  };
  out.update = [shared](const Variables& grads, const Variables& state, const Variables& params) {
    const auto keep = [&](std::string_view path) { return shared->second.applies_to(path, kMasked); };
    const Variables selected = detail::filtered(grads, keep);
    const Variables selected_params = params.empty() ? params : detail::filtered(params, keep);
    auto [updates, inner_state] = shared->first.update(selected, state.unprefixed("inner_state"), selected_params);
    detail::check_structure(updates, "the inner transformation's updates", selected, "the masked gradients", kMasked);
    Variables next = inner_state.empty() ? inner_state : inner_state.prefixed("inner_state");
    Variables merged = selected.size() == grads.size() ? std::move(updates) : grads.merge(updates);
    return std::pair{std::move(merged), std::move(next)};
  };
  return detail::traced_transformation("masked", std::move(out));
}

Labels::Labels(std::map<std::string, std::string> by_prefix)
    : label_of_([map = std::make_shared<const std::map<std::string, std::string>>(std::move(by_prefix))](
                    std::string_view path) {
        const std::string* label = longest_prefix(path, [&](std::string_view p) -> const std::string* {
          const auto it = map->find(std::string(p));
          return it == map->end() ? nullptr : &it->second;
        });
        if (label == nullptr)
          throw KeyError(fmt::format("weft::optim::multi_transform: the labels have no entry for {} nor for a prefix "
                                     "of it; give a label for every leaf, or for a prefix such as \"params\"",
                                     quoted(path)));
        return *label;
      }) {}

std::string Labels::of(std::string_view path, const char* op) const {
  std::string label = label_of_(path);
  if (label.empty() || label.find('/') != std::string::npos)
    throw ValueError(fmt::format("{}: the label of {} is {}; a label must be a non-empty name without '/'",
                                 detail::where(op), quoted(path), quoted(label)));
  return label;
}

GradientTransformation multi_transform(std::map<std::string, GradientTransformation> transforms, Labels param_labels) {
  for (const auto& [label, tx] : transforms) {
    if (label.empty() || label.find('/') != std::string::npos)
      throw ValueError(fmt::format("weft::optim::multi_transform: the label {} is not a path segment; a label must be "
                                   "a non-empty name without '/'",
                                   quoted(label)));
    if (!tx.init || !tx.update)
      throw ValueError(fmt::format("weft::optim::multi_transform: the transformation of {} has no init or update "
                                   "function",
                                   quoted(label)));
  }
  struct Parts {
    std::map<std::string, GradientTransformation> transforms;
    Labels labels;
    std::vector<std::pair<std::string, GradientTransformation>> masked;  // one per label, in label order
  };
  auto parts = std::make_shared<Parts>(Parts{std::move(transforms), std::move(param_labels), {}});
  // Each label's masked transformation: the mask compares the label of the path, which is checked
  // (every leaf has a transformation) before any part runs.
  for (const auto& entry : parts->transforms) {
    const Labels& labels = parts->labels;
    const std::string label = entry.first;
    parts->masked.emplace_back(label, masked(entry.second, Mask([&labels, label](std::string_view path) {
                                                return labels.of(path, kMultiTransform) == label;
                                              })));
  }
  const auto check_labels = [](const Parts& p, const Variables& tree) {
    for (const std::string& path : tree.paths()) {
      const std::string label = p.labels.of(path, kMultiTransform);
      if (p.transforms.find(label) == p.transforms.end()) {
        std::string known;
        for (const auto& [name, _] : p.transforms) known += (known.empty() ? "" : ", ") + quoted(name);
        throw ValueError(fmt::format("{}: the leaf {} has the label {}, which has no transformation (the labels with "
                                     "one: {})",
                                     detail::where(kMultiTransform), quoted(path), quoted(label), known.empty() ? "none" : known));
      }
    }
  };
  GradientTransformation out;
  out.init = [parts, check_labels](const Variables& params) {
    check_labels(*parts, params);
    Variables state;
    for (const auto& [label, tx] : parts->masked) {
      const Variables part = tx.init(params);
      if (!part.empty()) state = state.merge(part.prefixed("inner_states/" + label));
    }
    return state;
  };
  out.update = [parts, check_labels](const Variables& grads, const Variables& state, const Variables& params) {
    check_labels(*parts, grads);
    Variables updates = grads, next;
    for (const auto& [label, tx] : parts->masked) {
      const std::string key = "inner_states/" + label;
      auto [u, s] = tx.update(updates, state.unprefixed(key), params);
      updates = std::move(u);
      if (!s.empty()) next = next.merge(s.prefixed(key));
    }
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("multi_transform", std::move(out));
}

}  // namespace weft::optim
