#include "weft/core/recurrent.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "messages.hpp"
#include "../tensor_impl.hpp"
#include "weft/core/linear.hpp"

namespace weft::core {

namespace {

using detail::in_scope;

void check_features(std::int64_t features, const Scope& scope, const char* op) {
  if (features <= 0)
    throw ValueError(fmt::format("weft::core::{}: features must be positive, got {}{}", op, features, in_scope(scope)));
}

/// The inputs (batch..., in) and one carry tensor (batch..., features) of a cell step.
void check_step(const Tensor& inputs, const Tensor& carry, const char* carry_name, std::int64_t features,
                const Scope& scope, const char* op) {
  weft::detail::require_float(inputs, op);
  weft::detail::require_float(carry, op);
  if (inputs.rank() == 0)
    throw ShapeError(fmt::format("weft::{}: the inputs are a scalar; a cell step takes (batch..., features) "
                                 "inputs{}",
                                 op, in_scope(scope)));
  const int r = inputs.rank();
  const bool batch_agrees =
      carry.rank() == r && std::equal(inputs.shape().begin(), inputs.shape().end() - 1, carry.shape().begin());
  if (!batch_agrees || carry.shape()[r - 1] != features)
    throw ShapeError(fmt::format("weft::{}: the carry's {} has shape {}, but inputs {} and features = {} need "
                                 "{}{}; make the carry with initialize_carry(options, key, inputs.shape())",
                                 op, carry_name, carry.shape().str(), inputs.shape().str(), features,
                                 [&] {
                                   std::vector<std::int64_t> d(inputs.shape().begin(), inputs.shape().end() - 1);
                                   d.push_back(features);
                                   return Shape(d).str();
                                 }(),
                                 in_scope(scope)));
}

/// core::dense in the child scope `name` (Flax's Dense(name=...)).
Tensor dense_in(Scope& scope, const char* name, std::int64_t features, bool use_bias, const Initializer& kernel_init,
                const Initializer& bias_init, const Tensor& x) {
  scope.reserve_child(name);
  Scope child = scope.push(name);
  return dense(DenseOptions{.features = features, .use_bias = use_bias, .kernel_init = kernel_init,
                            .bias_init = bias_init},
               child, x);
}

Shape carry_shape(const Shape& input_shape, std::int64_t features, const char* op) {
  if (input_shape.rank() == 0)
    throw ShapeError(fmt::format("weft::core::initialize_carry ({}): input_shape is (), but a cell's inputs are "
                                 "(batch..., features); give the shape of one step's inputs",
                                 op));
  if (features <= 0)
    throw ValueError(fmt::format("weft::core::initialize_carry ({}): features must be positive, got {}", op, features));
  std::vector<std::int64_t> d(input_shape.begin(), input_shape.end() - 1);
  d.push_back(features);
  return Shape(d);
}

template <class Options>
LSTMCarry lstm_carry(const Options& options, Key rng, const Shape& input_shape, const char* op) {
  const Shape shape = carry_shape(input_shape, options.features, op);
  const std::vector<Key> keys = split(rng);
  return {options.carry_init(keys[0], shape), options.carry_init(keys[1], shape)};
}

/// The lengths of seq_lengths (int32 of shape batch_dims, each in [0, steps]); `steps` each when
/// it is empty.
std::vector<std::int32_t> checked_lengths(const Tensor& seq_lengths, const std::vector<std::int64_t>& batch_dims,
                                          std::int64_t steps, const Tensor& inputs, const char* op) {
  const Shape batch_shape(batch_dims);
  if (!seq_lengths.defined())
    return std::vector<std::int32_t>(static_cast<std::size_t>(batch_shape.numel()), static_cast<std::int32_t>(steps));
  if (seq_lengths.dtype() != DType::int32 || !(seq_lengths.shape() == batch_shape))
    throw ShapeError(fmt::format("weft::{}: seq_lengths must be int32 of the batch shape {} of the inputs {}, got {} "
                                 "{}",
                                 op, batch_shape.str(), inputs.shape().str(), name(seq_lengths.dtype()),
                                 seq_lengths.shape().str()));
  std::vector<std::int32_t> lengths = seq_lengths.to_int_vector();
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 0 || lengths[b] > steps)
      throw ValueError(fmt::format("weft::{}: seq_lengths[{}] = {} is outside [0, {}], the length of the time axis "
                                   "of the inputs {}",
                                   op, b, lengths[b], steps, inputs.shape().str()));
  return lengths;
}

}  // namespace

std::pair<LSTMCarry, Tensor> lstm_cell_fn::operator()(const LSTMCellOptions& options, Scope& scope,
                                                      const LSTMCarry& carry, const Tensor& inputs) const {
  const std::int64_t f = options.features;
  check_features(f, scope, "lstm_cell");
  const Tensor& c = carry.first;  // not a structured binding: clang 14 cannot capture one in a lambda
  const Tensor& h = carry.second;
  check_step(inputs, c, "c", f, scope, "core::lstm_cell");
  check_step(inputs, h, "h", f, scope, "core::lstm_cell");
  const Initializer& ki = options.kernel_init;
  const Initializer& kh = options.recurrent_kernel_init;
  const Initializer& b = options.bias_init;
  // Input and hidden products are summed, so only the hidden one has a bias (as Flax).
  auto gate = [&](const char* input_name, const char* hidden_name) {
    return dense_in(scope, input_name, f, false, ki, b, inputs) + dense_in(scope, hidden_name, f, true, kh, b, h);
  };
  const Tensor i = options.gate_fn(gate("ii", "hi"));
  const Tensor fg = options.gate_fn(gate("if", "hf"));
  const Tensor g = options.activation_fn(gate("ig", "hg"));
  const Tensor o = options.gate_fn(gate("io", "ho"));
  const Tensor new_c = fg * c + i * g;
  const Tensor new_h = o * options.activation_fn(new_c);
  return {{new_c, new_h}, new_h};
}

std::pair<LSTMCarry, Tensor> optimized_lstm_cell_fn::operator()(const OptimizedLSTMCellOptions& options, Scope& scope,
                                                                const LSTMCarry& carry, const Tensor& inputs) const {
  const std::int64_t f = options.features;
  check_features(f, scope, "optimized_lstm_cell");
  const Tensor& c = carry.first;
  const Tensor& h = carry.second;
  check_step(inputs, c, "c", f, scope, "core::optimized_lstm_cell");
  check_step(inputs, h, "h", f, scope, "core::optimized_lstm_cell");
  const std::int64_t in = inputs.shape()[inputs.rank() - 1];
  // The parameters of LSTMCell (Flax's DenseParams), concatenated gate by gate: i, f, g, o.
  std::vector<Tensor> input_kernels, hidden_kernels, hidden_biases;
  for (const char* gate : {"i", "f", "g", "o"}) {
    const std::string input_name = std::string("i") + gate, hidden_name = std::string("h") + gate;
    scope.reserve_child(input_name);
    input_kernels.push_back(scope.push(input_name).param("kernel", options.kernel_init, Shape{in, f}));
    scope.reserve_child(hidden_name);
    Scope hidden = scope.push(hidden_name);
    hidden_kernels.push_back(hidden.param("kernel", options.recurrent_kernel_init, Shape{f, f}));
    hidden_biases.push_back(hidden.param("bias", options.bias_init, Shape{f}));
  }
  const Tensor y = matmul(h, concat(hidden_kernels, 1)) + concat(hidden_biases, 0) +
                   matmul(inputs, concat(input_kernels, 1));
  const int last = y.rank() - 1;
  auto part = [&](std::int64_t k) { return slice_axis(y, last, k * f, (k + 1) * f); };
  const Tensor i = options.gate_fn(part(0));
  const Tensor fg = options.gate_fn(part(1));
  const Tensor g = options.activation_fn(part(2));
  const Tensor o = options.gate_fn(part(3));
  const Tensor new_c = fg * c + i * g;
  const Tensor new_h = o * options.activation_fn(new_c);
  return {{new_c, new_h}, new_h};
}

std::pair<Tensor, Tensor> gru_cell_fn::operator()(const GRUCellOptions& options, Scope& scope, const Tensor& carry,
                                                  const Tensor& inputs) const {
  const std::int64_t f = options.features;
  check_features(f, scope, "gru_cell");
  const Tensor& h = carry;
  check_step(inputs, h, "h", f, scope, "core::gru_cell");
  const Initializer& ki = options.kernel_init;
  const Initializer& kh = options.recurrent_kernel_init;
  const Initializer& b = options.bias_init;
  const Tensor r = options.gate_fn(dense_in(scope, "ir", f, true, ki, b, inputs) + dense_in(scope, "hr", f, false, kh, b, h));
  const Tensor z = options.gate_fn(dense_in(scope, "iz", f, true, ki, b, inputs) + dense_in(scope, "hz", f, false, kh, b, h));
  // hn keeps its bias: r multiplies it, so it is not summed away (as Flax).
  const Tensor n =
      options.activation_fn(dense_in(scope, "in", f, true, ki, b, inputs) + r * dense_in(scope, "hn", f, true, kh, b, h));
  const Tensor new_h = (1.0f - z) * n + z * h;
  return {new_h, new_h};
}

LSTMCarry initialize_carry(const LSTMCellOptions& options, Key rng, const Shape& input_shape) {
  return lstm_carry(options, rng, input_shape, "LSTMCell");
}

LSTMCarry initialize_carry(const OptimizedLSTMCellOptions& options, Key rng, const Shape& input_shape) {
  return lstm_carry(options, rng, input_shape, "OptimizedLSTMCell");
}

Tensor initialize_carry(const GRUCellOptions& options, Key rng, const Shape& input_shape) {
  return options.carry_init(rng, carry_shape(input_shape, options.features, "GRUCell"));
}

Tensor flip_sequences(const Tensor& inputs, const Tensor& seq_lengths, int num_batch_dims, bool time_major) {
  weft::detail::require_defined(inputs, "core::flip_sequences");
  const int r = inputs.rank();
  if (num_batch_dims < 0 || num_batch_dims + 1 > r)
    throw ShapeError(fmt::format("weft::core::flip_sequences: num_batch_dims = {} does not fit the inputs {}: they "
                                 "need the batch axes and a time axis (rank >= num_batch_dims + 1)",
                                 num_batch_dims, inputs.shape().str()));
  const int time_axis = time_major ? 0 : num_batch_dims;
  const int first_batch = time_major ? 1 : 0;
  const std::int64_t steps = inputs.shape()[time_axis];
  std::vector<std::int64_t> batch_dims;
  std::int64_t batch = 1;
  for (int d = first_batch; d < first_batch + num_batch_dims; ++d) {
    batch_dims.push_back(inputs.shape()[d]);
    batch *= inputs.shape()[d];
  }
  const std::vector<std::int32_t> lengths =
      checked_lengths(seq_lengths, batch_dims, steps, inputs, "core::flip_sequences");
  if (inputs.size() == 0) return inputs;
  // Rows of the (time and batch flattened, features) view, gathered: step p of sequence b comes
  // from step (steps - 1 - p + length) % steps, Flax's index.
  const std::int64_t feature = inputs.size() / (batch * steps);
  std::vector<std::int32_t> rows(static_cast<std::size_t>(batch * steps));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t p = 0; p < steps; ++p) {
      const std::int64_t src = (steps - 1 - p + lengths[static_cast<std::size_t>(b)]) % steps;
      const std::int64_t dst = time_major ? p * batch + b : b * steps + p;
      rows[static_cast<std::size_t>(dst)] = static_cast<std::int32_t>(time_major ? src * batch + b : b * steps + src);
    }
  const Tensor flat = reshape(inputs, {batch * steps, feature});
  return reshape(take(flat, Tensor(rows, Shape{batch * steps})), inputs.shape());
}

namespace detail {

SequenceLayout sequence_layout(const Tensor& inputs, const Tensor& seq_lengths, bool time_major) {
  weft::detail::require_float(inputs, "core::rnn");
  const int r = inputs.rank();
  if (r < 2)
    throw ShapeError(fmt::format("weft::core::rnn: the inputs {} need a time axis and a feature axis: (batch..., "
                                 "time, features), or (time, batch..., features) with time_major",
                                 inputs.shape().str()));
  SequenceLayout layout;
  layout.time_axis = time_major ? 0 : r - 2;
  layout.num_batch_dims = r - 2;
  layout.steps = inputs.shape()[layout.time_axis];
  if (layout.steps == 0)
    throw ShapeError(fmt::format("weft::core::rnn: the time axis ({}) of the inputs {} is empty; give at least one "
                                 "step",
                                 layout.time_axis, inputs.shape().str()));
  std::vector<std::int64_t> step_dims, batch_dims;
  for (int d = 0; d < r; ++d)
    if (d != layout.time_axis) step_dims.push_back(inputs.shape()[d]);
  layout.step_shape = Shape(step_dims);
  batch_dims.assign(step_dims.begin(), step_dims.end() - 1);
  if (seq_lengths.defined()) {
    const std::vector<std::int32_t> lengths = checked_lengths(seq_lengths, batch_dims, layout.steps, inputs, "core::rnn");
    std::vector<std::int64_t> mask_dims = batch_dims;
    mask_dims.push_back(1);
    for (std::int64_t t = 0; t < layout.steps; ++t) {
      std::vector<std::int32_t> valid(lengths.size());
      for (std::size_t b = 0; b < lengths.size(); ++b) valid[b] = t < lengths[b] ? 1 : 0;
      layout.valid.emplace_back(valid, Shape(mask_dims));
    }
  }
  return layout;
}

Tensor step_inputs(const Tensor& inputs, const SequenceLayout& layout, std::int64_t t) {
  return reshape(slice_axis(inputs, layout.time_axis, t, t + 1), layout.step_shape);
}

Tensor join_steps(const std::vector<Tensor>& outputs, const SequenceLayout& layout) {
  std::vector<Tensor> steps;
  steps.reserve(outputs.size());
  for (const Tensor& y : outputs) {
    if (y.rank() < layout.time_axis || y.rank() + 1 > Shape::kMaxRank)
      throw ShapeError(fmt::format("weft::core::rnn: a step's output {} cannot take the time axis at position {}",
                                   y.shape().str(), layout.time_axis));
    std::vector<std::int64_t> dims = y.shape().to_vector();
    dims.insert(dims.begin() + layout.time_axis, 1);
    steps.push_back(reshape(y, dims));
  }
  return steps.size() == 1 ? steps[0] : concat(steps, layout.time_axis);
}

}  // namespace detail

}  // namespace weft::core
