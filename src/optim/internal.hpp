#pragma once
// Internal: what the optimizers share: checks with messages that name the optimizer and the path,
// the step count of a state, and a tree rebuilt from per-leaf results.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "../autodiff/node.hpp"
#include "../parallel.hpp"
#include "../tensor_impl.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim::detail {

using UpdateFunction = std::function<std::pair<Variables, Variables>(const Variables& grads, const Variables& state,
                                                                     const Variables& params)>;

/// update(grads, state, params), recorded by a weft::jit trace as one op named `op` over every
/// leaf of the three trees (an optimizer reads its step count and computes norms and schedules on
/// the host, which a trace records only inside an op).
std::pair<Variables, Variables> traced_update(const char* op, const UpdateFunction& update, const Variables& grads,
                                              const Variables& state, const Variables& params);
/// `tx` whose update is traced_update(op, tx.update, ...): every optimizer factory returns one.
GradientTransformation traced_transformation(const char* op, GradientTransformation tx);

/// "weft::optim::" + op, the start of every message.
std::string where(const char* op);

/// A weft::KeyError when `a` and `b` differ in structure, naming the first path (in sorted order) that
/// is in one and not in the other; `a_name` and `b_name` say what they are ("the gradients").
void check_structure(const Variables& a, const char* a_name, const Variables& b, const char* b_name, const char* op);

/// The leaves of `state` under "name/" with that prefix removed, checked to have the paths of the
/// gradients `grads`.
Variables state_part(const Variables& state, std::string_view name, const Variables& grads, const char* op);

/// The step count of `state` ("count/count", an int32 scalar): the number of updates made so far.
std::int32_t read_count(const Variables& state, const char* op);
/// The step count leaf of `state`, checked to be an int32 scalar (its value is not read: a weft::jit
/// trace reads it inside the ops that use it).
const Tensor& count_tensor(const Variables& state, const char* op);
/// The value of a count leaf, checked to be non-negative.
std::int32_t count_value(const Tensor& count, const char* op);
std::int32_t count_value_at(const std::int32_t* count, const char* op);
/// "count/count" holding count + 1 (next_count), computed by an op (increment_count).
Variables next_count_state(const Tensor& count, const char* op);
/// count + 1, staying at the largest int32 instead of overflowing (optax.safe_increment).
std::int32_t next_count(std::int32_t count) noexcept;
/// A state holding only "count/count".
Variables count_state(std::int32_t count);

/// The gradient `g` at `path` is float32 and untracked, and `other` (the same path in the state or
/// the params, `other_name`) has g's shape and dtype and is untracked.
void check_leaf(std::string_view path, const Tensor& g, const Tensor* other, const char* other_name, const char* op);

/// The tree with the paths of `like` holding `values` (in sorted path order); `values` is consumed.
Variables rebuild(const Variables& like, std::vector<Tensor>& values);

/// An uninitialised float32 tensor of g's shape.
Tensor new_like(const Tensor& g);
/// A tree of zeros (or of `value`) in the shapes of `tree`'s leaves.
Variables zeros_like(const Variables& tree);
Variables full_like(const Variables& tree, float value);
/// Only the leaves of `tree` whose path `keep` accepts (an empty Variables when none).
Variables filtered(const Variables& tree, const std::function<bool(std::string_view path)>& keep);
/// The sum of squares of a float32 tensor, in double, in chunks fixed by its length (the same result
/// on any thread count).
double sum_squares(const Tensor& t);
/// A float32 scalar tensor.
Tensor scalar(float value);
/// The value of a float32 scalar leaf `path` of `state`; a weft::KeyError (missing) or
/// weft::ValueError (not a float32 scalar) that names `op` otherwise.
float read_scalar(const Variables& state, std::string_view path, const char* op);
/// A weft::ValueError naming `op` when params are empty but the gradients are not.
void require_params(const Variables& grads, const Variables& params, const char* why, const char* op);
/// A weft::ValueError when `value` is not finite or is negative.
void check_non_negative(float value, const char* name, const char* op);
/// A weft::ValueError when `value` is not in [0, 1).
void check_decay(float value, const char* name, const char* op);

/// Runs f(begin, end) over [0, n) in parallel chunks that depend only on n (bit-identical results on
/// any thread count); the optimizers' kernels are one pass over a few arrays.
template <class F>
void for_chunks(std::int64_t n, F&& f) {
  weft::detail::parallel_for(n, weft::detail::kParallelGrain, std::forward<F>(f));
}

/// A new float32 tensor of a's shape holding f(a[i]), one vectorised pass in the chunks of for_chunks.
template <class F>
Tensor map_leaf(const Tensor& a, F f) {
  Tensor out = new_like(a);
  const float* pa = weft::detail::data<float>(a);
  float* po = weft::detail::mutable_data<float>(out);
  for_chunks(a.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) po[i] = f(pa[i]);
  });
  return out;
}

/// The same for two leaves of one shape: f(a[i], b[i]).
template <class F>
Tensor map_leaves(const Tensor& a, const Tensor& b, F f) {
  Tensor out = new_like(a);
  const float* pa = weft::detail::data<float>(a);
  const float* pb = weft::detail::data<float>(b);
  float* po = weft::detail::mutable_data<float>(out);
  for_chunks(a.size(), [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[i]);
  });
  return out;
}

/// f(i) for every i in [0, n), in the chunks of for_chunks.
template <class F>
void for_each_index(std::int64_t n, F&& f) {
  for_chunks(n, [&f](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) f(i);
  });
}

}  // namespace weft::optim::detail
