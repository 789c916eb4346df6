#pragma once
// Recurrent cells of the functional core (flax.linen.recurrent): lstm_cell, optimized_lstm_cell and
// gru_cell, each one step (carry, inputs) -> (new carry, output); initialize_carry for each;
// flip_sequences, which reverses padded sequences in place as Flax's RNN does with reverse=True;
// and rnn, the loop of Flax's nn.RNN (its nn.scan over the time axis) around any step function.
//
// Parameters are named as Flax names them, one child scope per gate: LSTMCell's input kernels ii,
// if, ig, io (no bias) and hidden kernels hi, hf, hg, ho (with bias); GRUCell's ir, iz, in (with
// bias), hr, hz (no bias) and hn (with bias). Each holds `kernel` (in, features) and `bias`
// (features,). The inputs are (batch..., in) and the carry's tensors (batch..., features).
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/ops.hpp"
#include "weft/record.hpp"

namespace weft::core {

/// An elementwise function of a tensor, such as a cell's gate_fn (weft::sigmoid).
using Activation = std::function<Tensor(const Tensor&)>;

/// An LSTM cell's carry (c, h): the memory and the hidden state, as Flax's tuple.
using LSTMCarry = std::pair<Tensor, Tensor>;

struct LSTMCellOptions {
  required<std::int64_t, "features"> features;  ///< hidden size: the carry's and output's last extent
  Activation gate_fn = &weft::sigmoid;
  Activation activation_fn = &weft::tanh;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer recurrent_kernel_init = initializers::orthogonal();
  Initializer bias_init = initializers::zeros();
  Initializer carry_init = initializers::zeros();  ///< initialize_carry's (key, shape) -> tensor
};

struct lstm_cell_fn {
  using options_type = LSTMCellOptions;
  /// Flax's LSTMCell, one step: i = gate(ii(x) + hi(h)), f = gate(if(x) + hf(h)),
  /// g = act(ig(x) + hg(h)), o = gate(io(x) + ho(h)); c' = f * c + i * g; h' = o * act(c').
  /// Returns ((c', h'), h'). Flax takes the hidden size from h; weft checks that it is `features`.
  std::pair<LSTMCarry, Tensor> operator()(const LSTMCellOptions& options, Scope& scope, const LSTMCarry& carry,
                                          const Tensor& inputs) const;
};
inline constexpr lstm_cell_fn lstm_cell{};

/// The same options as LSTMCellOptions: the cells share their parameters' names and shapes.
struct OptimizedLSTMCellOptions {
  required<std::int64_t, "features"> features;
  Activation gate_fn = &weft::sigmoid;
  Activation activation_fn = &weft::tanh;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer recurrent_kernel_init = initializers::orthogonal();
  Initializer bias_init = initializers::zeros();
  Initializer carry_init = initializers::zeros();
};

struct optimized_lstm_cell_fn {
  using options_type = OptimizedLSTMCellOptions;
  /// Flax's OptimizedLSTMCell: the math and parameters of lstm_cell, with the four input kernels
  /// concatenated into one (in, 4 * features) product and the four hidden kernels and biases into
  /// another, whose results are split back into the gates.
  std::pair<LSTMCarry, Tensor> operator()(const OptimizedLSTMCellOptions& options, Scope& scope,
                                          const LSTMCarry& carry, const Tensor& inputs) const;
};
inline constexpr optimized_lstm_cell_fn optimized_lstm_cell{};

struct GRUCellOptions {
  required<std::int64_t, "features"> features;  ///< hidden size: the carry's and output's last extent
  Activation gate_fn = &weft::sigmoid;
  Activation activation_fn = &weft::tanh;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer recurrent_kernel_init = initializers::orthogonal();
  Initializer bias_init = initializers::zeros();
  Initializer carry_init = initializers::zeros();
};

struct gru_cell_fn {
  using options_type = GRUCellOptions;
  /// Flax's GRUCell, one step: r = gate(ir(x) + hr(h)), z = gate(iz(x) + hz(h)),
  /// n = act(in(x) + r * hn(h)), h' = (1 - z) * n + z * h. Returns (h', h').
  std::pair<Tensor, Tensor> operator()(const GRUCellOptions& options, Scope& scope, const Tensor& carry,
                                       const Tensor& inputs) const;
};
inline constexpr gru_cell_fn gru_cell{};

/// Flax's LSTMCell.initialize_carry: (c, h) of shape input_shape[:-1] + (features,), drawn by
/// carry_init with the two keys of split(rng) (zeros by default).
[[nodiscard]] LSTMCarry initialize_carry(const LSTMCellOptions& options, Key rng, const Shape& input_shape);
/// The same for OptimizedLSTMCell.
[[nodiscard]] LSTMCarry initialize_carry(const OptimizedLSTMCellOptions& options, Key rng, const Shape& input_shape);
/// Flax's GRUCell.initialize_carry: h of shape input_shape[:-1] + (features,), carry_init(rng, shape).
[[nodiscard]] Tensor initialize_carry(const GRUCellOptions& options, Key rng, const Shape& input_shape);

/// Flax's flip_sequences: `inputs` (batch..., time, features...) or, time_major, (time, batch...,
/// features...) reversed along the time axis. With int32 `seq_lengths` (batch...), only each
/// sequence's first seq_lengths[b] steps are reversed and its padding stays at the end (the
/// padding steps are reversed among themselves, as Flax's modular index does). The result is a
/// gather, so gradients flow back to `inputs`; applied twice it is the identity.
[[nodiscard]] Tensor flip_sequences(const Tensor& inputs, const Tensor& seq_lengths, int num_batch_dims,
                                    bool time_major);

struct RNNOptions {
  bool time_major = false;  ///< false: inputs (batch..., time, features); true: (time, batch..., features)
  bool reverse = false;     ///< run from the last step to the first (padding stays at the end)
  bool keep_order = false;  ///< with reverse: flip the outputs back to the inputs' order
};

namespace detail {

/// The time layout of an RNN's inputs, checked (with seq_lengths, when given).
struct SequenceLayout {
  int time_axis = 0;
  int num_batch_dims = 0;
  std::int64_t steps = 0;
  Shape step_shape;          ///< the inputs' shape without the time axis
  std::vector<Tensor> valid;  ///< with seq_lengths: per step, int32 (batch..., 1), 1 while step < length
};
[[nodiscard]] SequenceLayout sequence_layout(const Tensor& inputs, const Tensor& seq_lengths, bool time_major);
/// The inputs of step t, the time axis removed.
[[nodiscard]] Tensor step_inputs(const Tensor& inputs, const SequenceLayout& layout, std::int64_t t);
/// The outputs of every step joined along the layout's time axis.
[[nodiscard]] Tensor join_steps(const std::vector<Tensor>& outputs, const SequenceLayout& layout);

inline Tensor select_carry(const Tensor& valid, const Tensor& next, const Tensor& kept) {
  return where(valid, next, kept);
}
template <class A, class B>
std::pair<A, B> select_carry(const Tensor& valid, const std::pair<A, B>& next, const std::pair<A, B>& kept) {
  return {select_carry(valid, next.first, kept.first), select_carry(valid, next.second, kept.second)};
}

}  // namespace detail

/// Flax's nn.RNN loop: step(carry, x_t) -> (carry, y_t) over the time axis of `inputs` (axis -2,
/// or 0 when time_major), starting from `carry`; returns (final carry, outputs), the outputs y_t
/// joined along the time axis. reverse runs over flip_sequences(inputs) and keeps the outputs in
/// that order unless keep_order. With int32 seq_lengths (batch...), every step still runs, as in
/// Flax: the outputs past a sequence's length are computed from its padding (not zeroed), and the
/// returned carry is each sequence's carry after its last valid step. A length of 0 returns the
/// initial carry (Flax's index -1 would pick the carry after the last step).
template <class Carry, class Step>
std::pair<Carry, Tensor> rnn(const RNNOptions& options, Step&& step, Carry carry, const Tensor& inputs,
                             const Tensor& seq_lengths = {}) {
  const detail::SequenceLayout layout = detail::sequence_layout(inputs, seq_lengths, options.time_major);
  const Tensor xs =
      options.reverse ? flip_sequences(inputs, seq_lengths, layout.num_batch_dims, options.time_major) : inputs;
  std::vector<Tensor> outputs;
  outputs.reserve(static_cast<std::size_t>(layout.steps));
  Carry last = carry;  // with seq_lengths: each sequence's carry after its last valid step
  for (std::int64_t t = 0; t < layout.steps; ++t) {
    auto [next, y] = step(static_cast<const Carry&>(carry), detail::step_inputs(xs, layout, t));
    carry = std::move(next);
    if (seq_lengths.defined()) last = detail::select_carry(layout.valid[static_cast<std::size_t>(t)], carry, last);
    outputs.push_back(std::move(y));
  }
  Tensor ys = detail::join_steps(outputs, layout);
  if (options.reverse && options.keep_order)
    ys = flip_sequences(ys, seq_lengths, layout.num_batch_dims, options.time_major);
  return {seq_lengths.defined() ? std::move(last) : std::move(carry), std::move(ys)};
}

}  // namespace weft::core

WEFT_RECORD(weft::core::RNNOptions, time_major, reverse, keep_order);
WEFT_RECORD(weft::core::LSTMCellOptions, features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init,
            bias_init, carry_init);
WEFT_RECORD(weft::core::OptimizedLSTMCellOptions, features, gate_fn, activation_fn, kernel_init,
            recurrent_kernel_init, bias_init, carry_init);
WEFT_RECORD(weft::core::GRUCellOptions, features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init,
            bias_init, carry_init);
