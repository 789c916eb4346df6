#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

struct Classifier {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return s(nn::Dense{.features = 3}, relu(s(nn::Dense{.features = 16}, x)));
  }
};

int main() {
  const Classifier model;
  const Tensor x = uniform(Key(1), Shape{32, 8});
  const Tensor labels = argmax(slice_axis(x, 1, 0, 3), 1);
  const auto apply = [model](const Variables& v, const Tensor& in) { return nn::apply(model, v, in); };
  auto state = training::TrainState(apply, nn::init(model, Key(0), x).collection("params"), optim::adam(1e-2f));
  using State = decltype(state);

  // The whole step is one pure function of its inputs; jit traces it on the first call and
  // replays the recorded ops on every later call with the same shapes.
  const auto train_step = jit([](const State& s, const Tensor& xb, const Tensor& yb) {
    const auto loss_fn = [&](const Variables& params) {
      return mean(losses::softmax_cross_entropy_with_integer_labels(s.apply_fn()(params, xb), yb));
    };
    const auto [loss, grads] = value_and_grad(loss_fn)(s.params());
    return std::pair{s.apply_gradients(grads), loss};
  });
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    auto [next, loss] = train_step(std::move(state), x, labels);  // moved in: updated in place
    state = std::move(next);
    (step == 0 ? first : last) = loss.item();
  }
  std::cout << "loss " << first << " -> " << last << " in " << state.step() << " steps, traced "
            << train_step.trace_count() << " time(s)\n";
  return last < first && state.step() == 100 && train_step.trace_count() == 1 ? 0 : 1;
}
