#include "internal.hpp"

#include <fmt/format.h>

#include "../format.hpp"

#include <limits>

namespace weft::optim::detail {

namespace {
using weft::detail::quoted;
constexpr std::string_view kStateHelp =
    "pass the state that this optimizer's init(params) or its previous update returned, for the same params";
}  // namespace

std::string where(const char* op) { return std::string("weft::optim::") + op; }

void check_structure(const Variables& a, const char* a_name, const Variables& b, const char* b_name, const char* op) {
  if (same_structure(a, b)) return;
  const std::string path = *structure_difference(a, b);
  const bool in_a = a.contains(path);
  throw KeyError(fmt::format("{}: {} and {} differ in structure: {} is in {} but not in {} ({} vs {} leaves); they "
                             "need the same paths: make the state with init(params) for the params the gradients are "
                             "taken for (variables.collection(\"params\") when the variables also hold other "
                             "collections)",
                             where(op), a_name, b_name, quoted(path), in_a ? a_name : b_name, in_a ? b_name : a_name,
                             a.size(), b.size()));
}

Variables state_part(const Variables& state, std::string_view name, const Variables& grads, const char* op) {
  Variables part = state.unprefixed(name);
  if (part.empty() && !grads.empty())
    throw KeyError(fmt::format("{}: the state has no {} part (its paths: {}); {}",
                               where(op), quoted(name),
                               state.empty() ? std::string("none")
                                             : fmt::format("{}, ...", quoted(state.paths().front())),
                               kStateHelp));
  const std::string what = fmt::format("the state's {}", quoted(name));
  check_structure(grads, "the gradients", part, what.c_str(), op);
  return part;
}

std::int32_t read_count(const Variables& state, const char* op) {
  const Tensor* count = state.find("count/count");
  if (count == nullptr)
    throw KeyError(fmt::format("{}: the state has no step count \"count/count\"{}; {}",
                               where(op),
                               state.empty() ? std::string(" (it is empty)")
                                             : fmt::format(" (its first path: {})", quoted(state.paths().front())),
                               kStateHelp));
  if (count->dtype() != DType::int32 || count->size() != 1)
    throw ValueError(fmt::format("{}: the step count \"count/count\" must be an int32 scalar, got {} {}; {}", where(op),
                                 name(count->dtype()), count->shape().str(), kStateHelp));
  const std::int32_t value = count->values<std::int32_t>()[0];
  if (value < 0)
    throw ValueError(
        fmt::format("{}: the step count \"count/count\" is negative ({}); {}", where(op), value, kStateHelp));
  return value;
}

std::int32_t next_count(std::int32_t count) noexcept {
  return count == std::numeric_limits<std::int32_t>::max() ? count : count + 1;
}

Variables count_state(std::int32_t count) {
  Tensor t = weft::detail::empty(Shape{}, DType::int32);
  weft::detail::mutable_data<std::int32_t>(t)[0] = count;
  return Variables().set("count/count", std::move(t));
}

void check_leaf(std::string_view path, const Tensor& g, const Tensor* other, const char* other_name, const char* op) {
  if (g.dtype() != DType::float32)
    throw DTypeError(fmt::format("{}: the gradient at {} is int32 {}; optimizers update float32 params only",
                                 where(op), quoted(path), g.shape().str()));
  if (other != nullptr && (other->shape() != g.shape() || other->dtype() != g.dtype()))
    throw ShapeError(fmt::format("{}: at {} the gradient is {} {} but {} is {} {}; they must match (was the state made "
                                 "for other params?)",
                                 where(op), quoted(path), name(g.dtype()), g.shape().str(), other_name,
                                 name(other->dtype()), other->shape().str()));
  if (autodiff::any_tracked(g) || (other != nullptr && autodiff::any_tracked(*other)))
    throw Error(fmt::format("{}: the tensors at {} are being recorded for a gradient; optimizer updates "
                            "are not differentiable, run them outside weft::grad", where(op), quoted(path)));
}

Variables rebuild(const Variables& like, std::vector<Tensor>& values) {
  std::size_t i = 0;
  return tree_map([&](const Tensor&) { return std::move(values[i++]); }, like);
}

}  // namespace weft::optim::detail
