#pragma once
// weft::training::TrainState: what one training step reads and writes, as Flax's
// flax.training.train_state.TrainState holds it: the step, the model's forward pass, the params,
// the other variables (batch_stats, ...), the optimizer and its state.
//
//   const auto apply = [&model](const Variables& v, auto&&... args) { return nn::apply(model, v, args...); };
//   auto state = training::TrainState(apply, variables.collection("params"), optim::adam(1e-3f),
//                                     variables.without("params"));
//   const auto [loss, grads] = value_and_grad(loss_fn)(state.params(), x, y);
//   state = state.apply_gradients(grads);          // step + 1, params and opt_state updated
//
// A TrainState is an immutable value: apply_gradients returns a new state and leaves this one as it
// was; copies share their tensors (Variables are persistent trees), so a copy costs a few reference
// counts.
//
// weft::jit takes and returns TrainStates, as jax.jit does Flax's (a pytree whose apply_fn and tx
// are static fields): the step, params, model state and opt_state are the plan's inputs, the model
// function and the optimizer pick the plan (a state made with another optimizer traces again).
//
//   const auto train_step = weft::jit([](const State& s, const Tensor& x, const Tensor& y) {
//     const auto [loss, grads] = value_and_grad(loss_fn)(s.params(), x, y);
//     return std::pair{s.apply_gradients(grads), loss};
//   });
//   std::tie(state, loss) = train_step(std::move(state), x, y);  // moved in: updated in place
//
// The step is an int32 scalar tensor for that (Flax's is a jnp array; Optax counts in int32
// too), so inside a jitted function step() is a value the plan computes and cannot be read: use
// step_tensor() there.
#include <cstdint>
#include <memory>
#include <utility>

#include "weft/jit/traceable.hpp"
#include "weft/optim/transform.hpp"
#include "weft/tensor.hpp"
#include "weft/variables.hpp"

namespace weft::training {

namespace detail {

/// The params and optimizer state after one step of `tx`, with the checks of apply_gradients.
struct UpdatedParams {
  Variables params;
  Variables opt_state;
};
[[nodiscard]] UpdatedParams apply_gradients(const optim::GradientTransformation& tx, const Variables& params,
                                            const Variables& opt_state, const Variables& grads);
/// The checks of the constructor: params not empty, no collection both in params and in model_state,
/// a transformation with both functions.
void check_create(const Variables& params, const Variables& model_state, const optim::GradientTransformation& tx);
/// step + 1, as an op that weft::jit replays; it stays at 2^31 - 1 instead of overflowing.
[[nodiscard]] Tensor next_step(const Tensor& step);
/// The value of a step tensor.
[[nodiscard]] std::int64_t step_value(const Tensor& step);
/// The checks of restored: a step in [0, 2^31 - 1] and the trees of the current state.
void check_restored(std::int64_t step, const Variables& params, const Variables& opt_state,
                    const Variables& model_state, const Variables& current_params,
                    const Variables& current_opt_state, const Variables& current_model_state);

}  // namespace detail

/// ApplyFn is the model's forward pass in whatever form the training step calls it (a lambda
/// around nn::apply or core::apply); TrainState only keeps it, as Flax's apply_fn.
template <class ApplyFn>
class TrainState {
 public:
  /// Step 0, with opt_state = tx.init(params). `params` holds what the optimizer trains (usually
  /// the "params" collection), `model_state` every other collection (batch_stats, ...). Empty
  /// params, a collection in both, or a transformation without init or update is a weft::ValueError.
  TrainState(ApplyFn apply_fn, Variables params, optim::GradientTransformation tx, Variables model_state = {})
      : step_(full(Shape{}, std::int32_t{0})), apply_fn_(std::make_shared<const ApplyFn>(std::move(apply_fn))),
        params_(std::move(params)), model_state_(std::move(model_state)) {
    detail::check_create(params_, model_state_, tx);
    tx_ = std::make_shared<const optim::GradientTransformation>(std::move(tx));
    opt_state_ = tx_->init(params_);
  }

  /// Flax's TrainState.create: the constructor under its Flax name.
  [[nodiscard]] static TrainState create(ApplyFn apply_fn, Variables params, optim::GradientTransformation tx,
                                         Variables model_state = {}) {
    return TrainState(std::move(apply_fn), std::move(params), std::move(tx), std::move(model_state));
  }

  /// The state after one optimizer step: (updates, opt_state') = tx.update(grads, opt_state, params),
  /// params' = optim::apply_updates(params, updates), step + 1; the model state stays. Gradients of
  /// another structure than params are a weft::KeyError naming the first path in one and not the
  /// other, a leaf of another shape a weft::ShapeError naming the path and both shapes.
  [[nodiscard]] TrainState apply_gradients(const Variables& grads) const {
    return apply_gradients(grads, model_state_);
  }
  /// The same, with the model state replaced (the batch statistics the step computed), as Flax's
  /// state.apply_gradients(grads=grads, batch_stats=...).
  [[nodiscard]] TrainState apply_gradients(const Variables& grads, Variables model_state) const {
    auto updated = detail::apply_gradients(*tx_, params_, opt_state_, grads);
    TrainState next = *this;
    next.step_ = detail::next_step(step_);
    next.params_ = std::move(updated.params);
    next.opt_state_ = std::move(updated.opt_state);
    next.model_state_ = std::move(model_state);
    return next;
  }

  /// This state with the step and trees of a checkpoint (io::TrainingState holds them). Each tree
  /// must have the paths of this state's: otherwise a weft::KeyError naming the first path that
  /// differs; a step below 0 or above 2^31 - 1 is a weft::ValueError.
  [[nodiscard]] TrainState restored(std::int64_t step, Variables params, Variables opt_state,
                                    Variables model_state) const {
    detail::check_restored(step, params, opt_state, model_state, params_, opt_state_, model_state_);
    TrainState out = *this;
    out.step_ = full(Shape{}, static_cast<std::int32_t>(step));  // in range: check_restored
    out.params_ = std::move(params);
    out.opt_state_ = std::move(opt_state);
    out.model_state_ = std::move(model_state);
    return out;
  }

  /// Optimizer steps taken so far. Inside a function weft::jit traces, the step is computed by the
  /// plan and reading it is a weft::Error; use step_tensor() there.
  [[nodiscard]] std::int64_t step() const { return detail::step_value(step_); }
  /// The step as the int32 scalar tensor the state holds (what a jitted function computes with).
  [[nodiscard]] const Tensor& step_tensor() const noexcept { return step_; }
  [[nodiscard]] const ApplyFn& apply_fn() const noexcept { return *apply_fn_; }
  [[nodiscard]] const Variables& params() const noexcept { return params_; }
  /// Every collection but the trained params (batch_stats, ...).
  [[nodiscard]] const Variables& model_state() const noexcept { return model_state_; }
  /// params and model state in one tree, as the forward pass takes them.
  [[nodiscard]] Variables variables() const { return params_.merge(model_state_); }
  [[nodiscard]] const optim::GradientTransformation& tx() const noexcept { return *tx_; }
  [[nodiscard]] const Variables& opt_state() const noexcept { return opt_state_; }

 private:
  friend struct weft::Traceable<TrainState>;
  Tensor step_;
  // Shared: copies of a state call the same function and optimizer (which weft::jit tells apart by
  // address), and a state stays assignable when ApplyFn (a lambda with captures) is not.
  std::shared_ptr<const ApplyFn> apply_fn_;
  Variables params_, model_state_;
  std::shared_ptr<const optim::GradientTransformation> tx_;
  Variables opt_state_;
};

}  // namespace weft::training

namespace weft {

/// A TrainState for weft::jit: the step and the three trees vary; the model function and the
/// optimizer are static (Flax's pytree_node=False fields), compared by identity.
template <class ApplyFn>
struct Traceable<training::TrainState<ApplyFn>> {
  using State = training::TrainState<ApplyFn>;
  static void flatten(const State& s, JitFlattener& f) {
    f.open("TrainState{");
    f.static_object(s.apply_fn_, "apply_fn");
    f.static_object(s.tx_, "tx");
    f.tensor(s.step_);
    f.tree(s.params_);
    f.tree(s.model_state_);
    f.tree(s.opt_state_);
    f.close("}");
  }
  static State unflatten(const State& like, JitUnflattener& u) {
    State out = like;
    out.step_ = u.tensor();
    out.params_ = Traceable<Variables>::unflatten(like.params_, u);
    out.model_state_ = Traceable<Variables>::unflatten(like.model_state_, u);
    out.opt_state_ = Traceable<Variables>::unflatten(like.opt_state_, u);
    return out;
  }
};

}  // namespace weft
