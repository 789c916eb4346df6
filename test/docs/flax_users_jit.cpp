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
  Variables params = nn::init(model, Key(0), x).collection("params");
  const auto tx = optim::adam(1e-2f);
  Variables opt_state = tx.init(params);

  // The whole step is one pure function of its inputs; jit traces it on the first call and
  // replays the recorded ops on every later call with the same shapes.
  const auto train_step = jit([&model, tx](const Variables& p, const Variables& state, const Tensor& xb,
                                            const Tensor& yb) {
    const auto loss_fn = [&](const Variables& q) {
      return mean(losses::softmax_cross_entropy_with_integer_labels(nn::apply(model, q, xb), yb));
    };
    auto [loss, grads] = value_and_grad(loss_fn)(p);
    auto [updates, new_state] = tx.update(grads, state, p);
    return std::tuple{optim::apply_updates(p, updates), new_state, loss};
  });
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    auto [new_params, new_state, loss] = train_step(params, opt_state, x, labels);
    params = new_params;
    opt_state = new_state;
    (step == 0 ? first : last) = loss.item();
  }
  std::cout << "loss " << first << " -> " << last << ", traced " << train_step.trace_count() << " time(s)\n";
  return last < first && train_step.trace_count() == 1 ? 0 : 1;
}
