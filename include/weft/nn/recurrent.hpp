#pragma once
// Recurrent modules: the cells nn::LSTMCell, nn::OptimizedLSTMCell and nn::GRUCell (math in
// core::lstm_cell, core::optimized_lstm_cell, core::gru_cell), nn::RNN, which runs a cell over the
// time axis (the loop of core::rnn), and nn::Bidirectional (Linen's recurrent.py).
//
//   const nn::RNN<nn::LSTMCell> lstm{.cell = {.features = 64}};
//   Tensor y = s(lstm, x);                                   // (batch, time, 64)
//   Tensor y2 = s(lstm, x, "seq_lengths"_kw = lengths, "reverse"_kw = true);
//   auto [carry, y3] = s.method(lstm, &nn::RNN<nn::LSTMCell>::carry_and_outputs, x,
//                              nn::RNN<nn::LSTMCell>::CallKeywords{});
//
// A cell is called as cell(s, carry, x) -> (new carry, output) and names its carry type
// (carry_type) and initialize_carry(key, input_shape). Linen chooses the RNN's result by the
// return_carry flag; a C++ function has one result type, so weft has two calls instead: the call
// operator returns the outputs (return_carry=False) and carry_and_outputs returns (carry,
// outputs) (return_carry=True). Linen's scan arguments (unroll, variable_axes, split_rngs, ...) have
// no counterpart: the cell's parameters are shared by every step (variable_broadcast="params").
#include <functional>
#include <optional>
#include <utility>

#include <boost/hana/define_struct.hpp>

#include "weft/core/recurrent.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

/// Linen's LSTMCell; its carry is (c, h).
struct LSTMCell {
  required<std::int64_t, "features"> features;
  core::Activation gate_fn = &weft::sigmoid;
  core::Activation activation_fn = &weft::tanh;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer recurrent_kernel_init = core::initializers::orthogonal();
  Initializer bias_init = core::initializers::zeros();
  Initializer carry_init = core::initializers::zeros();

  using carry_type = core::LSTMCarry;
  /// One step: ((c', h'), h').
  std::pair<carry_type, Tensor> operator()(Scope& s, const carry_type& carry, const Tensor& inputs) const;
  /// (c, h) for inputs of `input_shape` (batch..., features): zeros by default.
  [[nodiscard]] carry_type initialize_carry(Key rng, const Shape& input_shape) const;
};

/// Linen's OptimizedLSTMCell: LSTMCell's parameters and math, the gate products fused.
struct OptimizedLSTMCell {
  required<std::int64_t, "features"> features;
  core::Activation gate_fn = &weft::sigmoid;
  core::Activation activation_fn = &weft::tanh;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer recurrent_kernel_init = core::initializers::orthogonal();
  Initializer bias_init = core::initializers::zeros();
  Initializer carry_init = core::initializers::zeros();

  using carry_type = core::LSTMCarry;
  /// One step: ((c', h'), h').
  std::pair<carry_type, Tensor> operator()(Scope& s, const carry_type& carry, const Tensor& inputs) const;
  /// (c, h) for inputs of `input_shape`: zeros by default.
  [[nodiscard]] carry_type initialize_carry(Key rng, const Shape& input_shape) const;
};

/// Linen's GRUCell; its carry is h.
struct GRUCell {
  required<std::int64_t, "features"> features;
  core::Activation gate_fn = &weft::sigmoid;
  core::Activation activation_fn = &weft::tanh;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer recurrent_kernel_init = core::initializers::orthogonal();
  Initializer bias_init = core::initializers::zeros();
  Initializer carry_init = core::initializers::zeros();

  using carry_type = Tensor;
  /// One step: (h', h').
  std::pair<carry_type, Tensor> operator()(Scope& s, const carry_type& carry, const Tensor& inputs) const;
  /// h for inputs of `input_shape`: zeros by default.
  [[nodiscard]] carry_type initialize_carry(Key rng, const Shape& input_shape) const;
};

/// Linen's RNN: `cell` run over the time axis of inputs (batch..., time, features), or (time,
/// batch..., features) when time_major, in the child scope "cell" (so parameters are
/// params/cell/..., as in Linen). Without an initial carry it starts from
/// cell.initialize_carry(init_key, inputs without the time axis), init_key defaulting to Key(0).
template <class Cell>
struct RNN {
  Cell cell;
  bool time_major = false;
  bool reverse = false;     ///< from the last step to the first; outputs in that order unless keep_order
  bool keep_order = false;  ///< with reverse: outputs back in the inputs' order (for Bidirectional)

  using carry_type = typename Cell::carry_type;

  /// Call-time keywords (Linen's keyword-only arguments); the flags, when given, override the
  /// attributes. seq_lengths: int32 (batch...), see core::rnn.
  struct CallKeywords {
    BOOST_HANA_DEFINE_STRUCT(CallKeywords, (std::optional<carry_type>, initial_carry), (std::optional<Key>, init_key),
                             (Tensor, seq_lengths), (std::optional<bool>, time_major), (std::optional<bool>, reverse),
                             (std::optional<bool>, keep_order));
  };
  using call_keywords = CallKeywords;

  /// The outputs (batch..., time, cell outputs...), Linen's return_carry=False.
  Tensor operator()(Scope& s, const Tensor& inputs) const { return carry_and_outputs(s, inputs, CallKeywords()).second; }
  /// The same with keywords: s(rnn, x, "seq_lengths"_kw = lengths).
  Tensor operator()(Scope& s, const Tensor& inputs, const CallKeywords& kw) const {
    return carry_and_outputs(s, inputs, kw).second;
  }
  /// (final carry, outputs), Linen's return_carry=True; with seq_lengths the carry is each
  /// sequence's after its last valid step.
  std::pair<carry_type, Tensor> carry_and_outputs(Scope& s, const Tensor& inputs, const CallKeywords& kw) const {
    const core::RNNOptions options{.time_major = kw.time_major.value_or(time_major),
                                   .reverse = kw.reverse.value_or(reverse),
                                   .keep_order = kw.keep_order.value_or(keep_order)};
    carry_type carry = kw.initial_carry ? *kw.initial_carry
                                        : cell.initialize_carry(kw.init_key.value_or(Key(0)),
                                                                core::detail::sequence_layout(inputs, Tensor{},
                                                                                              options.time_major)
                                                                    .step_shape);
    auto step = [&](const carry_type& c, const Tensor& x) { return s("cell", cell, c, x); };
    return core::rnn(options, step, std::move(carry), inputs, kw.seq_lengths);
  }
};

/// Concatenation along the last axis: Bidirectional's default merge_fn.
inline Tensor concatenate_last(const Tensor& a, const Tensor& b) { return concat({a, b}, -1); }

/// Linen's Bidirectional: forward_rnn over the inputs, backward_rnn over them reversed (reverse
/// and keep_order, so that its outputs align with the forward ones), the outputs merged by
/// merge_fn (concatenation along the last axis by default). Parameters are
/// params/forward_rnn/... and params/backward_rnn/...; init_key, when given, is split in two.
template <class Forward, class Backward = Forward>
struct Bidirectional {
  Forward forward_rnn;
  Backward backward_rnn;
  std::function<Tensor(const Tensor&, const Tensor&)> merge_fn = &concatenate_last;
  bool time_major = false;

  using carry_type = std::pair<typename Forward::carry_type, typename Backward::carry_type>;

  /// Call-time keywords; initial_carry is (forward carry, backward carry).
  struct CallKeywords {
    BOOST_HANA_DEFINE_STRUCT(CallKeywords, (std::optional<carry_type>, initial_carry), (std::optional<Key>, init_key),
                             (Tensor, seq_lengths), (std::optional<bool>, time_major));
  };
  using call_keywords = CallKeywords;

  /// The merged outputs.
  Tensor operator()(Scope& s, const Tensor& inputs) const { return carry_and_outputs(s, inputs, CallKeywords()).second; }
  /// The same with keywords.
  Tensor operator()(Scope& s, const Tensor& inputs, const CallKeywords& kw) const {
    return carry_and_outputs(s, inputs, kw).second;
  }
  /// ((forward carry, backward carry), merged outputs): Linen's return_carry=True.
  std::pair<carry_type, Tensor> carry_and_outputs(Scope& s, const Tensor& inputs, const CallKeywords& kw) const {
    const bool tm = kw.time_major.value_or(time_major);
    std::optional<Key> key_forward, key_backward;
    if (kw.init_key) {
      const std::vector<Key> keys = split(*kw.init_key);
      key_forward = keys[0];
      key_backward = keys[1];
    }
    typename Forward::CallKeywords fk;
    if (kw.initial_carry) fk.initial_carry = kw.initial_carry->first;
    fk.init_key = key_forward;
    fk.seq_lengths = kw.seq_lengths;
    fk.time_major = tm;
    fk.reverse = false;
    typename Backward::CallKeywords bk;
    if (kw.initial_carry) bk.initial_carry = kw.initial_carry->second;
    bk.init_key = key_backward;
    bk.seq_lengths = kw.seq_lengths;
    bk.time_major = tm;
    bk.reverse = true;
    bk.keep_order = true;
    auto [carry_forward, outputs_forward] =
        s.method("forward_rnn", forward_rnn, &Forward::carry_and_outputs, inputs, fk);
    auto [carry_backward, outputs_backward] =
        s.method("backward_rnn", backward_rnn, &Backward::carry_and_outputs, inputs, bk);
    return {{std::move(carry_forward), std::move(carry_backward)}, merge_fn(outputs_forward, outputs_backward)};
  }
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::LSTMCell, features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init, bias_init,
            carry_init);
WEFT_RECORD(weft::nn::OptimizedLSTMCell, features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init,
            bias_init, carry_init);
WEFT_RECORD(weft::nn::GRUCell, features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init, bias_init,
            carry_init);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

inline std::pair<LSTMCell::carry_type, Tensor> LSTMCell::operator()(Scope& s, const carry_type& carry,
                                                                    const Tensor& inputs) const {
  return core::lstm_cell(core_options<core::LSTMCellOptions>(*this), s, carry, inputs);
}
inline LSTMCell::carry_type LSTMCell::initialize_carry(Key rng, const Shape& input_shape) const {
  return core::initialize_carry(core_options<core::LSTMCellOptions>(*this), rng, input_shape);
}

inline std::pair<OptimizedLSTMCell::carry_type, Tensor> OptimizedLSTMCell::operator()(Scope& s,
                                                                                      const carry_type& carry,
                                                                                      const Tensor& inputs) const {
  return core::optimized_lstm_cell(core_options<core::OptimizedLSTMCellOptions>(*this), s, carry, inputs);
}
inline OptimizedLSTMCell::carry_type OptimizedLSTMCell::initialize_carry(Key rng, const Shape& input_shape) const {
  return core::initialize_carry(core_options<core::OptimizedLSTMCellOptions>(*this), rng, input_shape);
}

inline std::pair<GRUCell::carry_type, Tensor> GRUCell::operator()(Scope& s, const carry_type& carry,
                                                                  const Tensor& inputs) const {
  return core::gru_cell(core_options<core::GRUCellOptions>(*this), s, carry, inputs);
}
inline GRUCell::carry_type GRUCell::initialize_carry(Key rng, const Shape& input_shape) const {
  return core::initialize_carry(core_options<core::GRUCellOptions>(*this), rng, input_shape);
}

}  // namespace weft::nn
