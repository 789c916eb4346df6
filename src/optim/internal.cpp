#include "internal.hpp"

#include <fmt/format.h>

#include "../format.hpp"
#include "../jit/trace.hpp"
#include "weft/jit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace weft::optim::detail {

namespace {
using weft::detail::quoted;
constexpr std::string_view kStateHelp =
    "pass the state that this optimizer's init(params) or its previous update returned, for the same params";
}  // namespace

std::string where(const char* op) { return std::string("weft::optim::") + op; }

namespace {

/// The structure of `tree` with every leaf a shared placeholder: what a recorded op keeps to
/// rebuild trees, without keeping the trace's tensors alive.
Variables structure_of(const Variables& tree) {
  return weft::detail::with_leaves(tree, std::vector<Tensor>(tree.size(), weft::detail::jit_placeholder()));
}

}  // namespace

std::pair<Variables, Variables> traced_update(const char* op, const UpdateFunction& update, const Variables& grads,
                                              const Variables& state, const Variables& params) {
  if (weft::detail::recording_tracer == nullptr) return update(grads, state, params);
  std::vector<Tensor> in;
  in.reserve(grads.size() + state.size() + params.size());
  weft::detail::append_leaves(grads, in);
  weft::detail::append_leaves(state, in);
  weft::detail::append_leaves(params, in);
  struct Structure {
    Variables updates, state;
    bool known = false;
  };
  // Filled by the call at trace time, read-only at replay.
  const auto result = std::make_shared<Structure>();
  const auto body = [update, result, g = structure_of(grads), s = structure_of(state), p = structure_of(params)](
                        const std::vector<Tensor>& xs) {
    const std::span<const Tensor> all(xs);
    const auto [updates, next] = update(weft::detail::with_leaves(g, all.subspan(0, g.size())),
                                        weft::detail::with_leaves(s, all.subspan(g.size(), s.size())),
                                        weft::detail::with_leaves(p, all.subspan(g.size() + s.size())));
    if (!result->known) *result = {structure_of(updates), structure_of(next), true};
    std::vector<Tensor> out;
    out.reserve(updates.size() + next.size());
    weft::detail::append_leaves(updates, out);
    weft::detail::append_leaves(next, out);
    return out;
  };
  const std::vector<Tensor> out = weft::detail::traced(op, body, in);
  const std::span<const Tensor> all(out);
  return {weft::detail::with_leaves(result->updates, all.subspan(0, result->updates.size())),
          weft::detail::with_leaves(result->state, all.subspan(result->updates.size()))};
}

GradientTransformation traced_transformation(const char* op, GradientTransformation tx) {
  GradientTransformation out;
  out.init = std::move(tx.init);
  out.update = [op, update = std::move(tx.update)](const Variables& grads, const Variables& state,
                                                   const Variables& params) {
    return traced_update(op, update, grads, state, params);
  };
  return out;
}

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
  return count_value(count_tensor(state, op), op);
}

const Tensor& count_tensor(const Variables& state, const char* op) {
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
  return *count;
}

std::int32_t count_value(const Tensor& count, const char* op) {
  return count_value_at(weft::detail::data<std::int32_t>(count), op);
}

std::int32_t count_value_at(const std::int32_t* count, const char* op) {
  const std::int32_t value = *count;
  if (value < 0)
    throw ValueError(
        fmt::format("{}: the step count \"count/count\" is negative ({}); {}", where(op), value, kStateHelp));
  return value;
}

std::int32_t next_count(std::int32_t count) noexcept {
  return count == std::numeric_limits<std::int32_t>::max() ? count : count + 1;
}

Variables next_count_state(const Tensor& count, const char* op) {
  return Variables().set("count/count", weft::detail::traced(
                                            "increment_count",
                                            [op](const Tensor& c) {
                                              Tensor t = weft::detail::empty(Shape{}, DType::int32);
                                              weft::detail::mutable_data<std::int32_t>(t)[0] =
                                                  next_count(count_value(c, op));
                                              return t;
                                            },
                                            count));
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

Tensor new_like(const Tensor& g) { return weft::detail::empty(g.shape(), DType::float32); }

Variables zeros_like(const Variables& tree) {
  return tree_map([](const Tensor& p) { return zeros(p.shape()); }, tree);
}

Variables full_like(const Variables& tree, float value) {
  return tree_map([value](const Tensor& p) { return full(p.shape(), value); }, tree);
}

Variables filtered(const Variables& tree, const std::function<bool(std::string_view path)>& keep) {
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [path, t] : tree.leaves())
    if (keep(path)) kept.emplace_back(path, t);
  if (kept.size() == tree.size()) return tree;
  return kept.empty() ? Variables() : Variables::from_leaves(std::move(kept));
}

namespace {
double sum_squares_range(const float* x, std::int64_t begin, std::int64_t end) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = begin; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}
}  // namespace

double sum_squares(const Tensor& t) {
  const float* x = weft::detail::data<float>(t);
  const std::int64_t n = t.size(), chunk = weft::detail::kParallelGrain;
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks <= 1) return sum_squares_range(x, 0, n);
  std::vector<double> partial(static_cast<std::size_t>(chunks));
  weft::detail::parallel_for(chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c)
      partial[static_cast<std::size_t>(c)] = sum_squares_range(x, c * chunk, std::min(n, (c + 1) * chunk));
  });
  double total = 0.0;
  for (const double p : partial) total += p;
  return total;
}

Tensor scalar(float value) {
  Tensor t = weft::detail::empty(Shape{}, DType::float32);
  weft::detail::mutable_data<float>(t)[0] = value;
  return t;
}

float read_scalar(const Variables& state, std::string_view path, const char* op) {
  const Tensor* t = state.find(path);
  if (t == nullptr)
    throw KeyError(fmt::format("{}: the state has no {} ({}); {}", where(op), quoted(path),
                               state.empty() ? std::string("it is empty")
                                             : fmt::format("its first path: {}", quoted(state.paths().front())),
                               kStateHelp));
  if (t->dtype() != DType::float32 || t->size() != 1)
    throw ValueError(fmt::format("{}: {} must be a float32 scalar, got {} {}", where(op), quoted(path),
                                 name(t->dtype()), t->shape().str()));
  return t->values<float>()[0];
}

void require_params(const Variables& grads, const Variables& params, const char* why, const char* op) {
  if (params.empty() && !grads.empty())
    throw ValueError(fmt::format("{}: update needs the params {}; call update(grads, state, params)", where(op), why));
}

void check_non_negative(float value, const char* name, const char* op) {
  if (!std::isfinite(value) || value < 0.0f)
    throw ValueError(fmt::format("{}: {} is {:.6g}; it must be 0 or a positive finite number", where(op), name, value));
}

void check_decay(float value, const char* name, const char* op) {
  if (!(value >= 0.0f && value < 1.0f))
    throw ValueError(fmt::format("{}: {} is {:.6g}; it must be in [0, 1) (the decay rate of a moving average, e.g. "
                                 "0.9)",
                                 where(op), name, value));
}

}  // namespace weft::optim::detail
