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
  const Tensor labels = argmax(slice_axis(x, 1, 0, 3), 1);  // a learnable rule: the largest of 3
  Variables params = nn::init(model, Key(0), x).collection("params");
  const auto tx = optim::chain(optim::clip_by_global_norm(1.0f), optim::adamw(1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f));
  Variables opt_state = tx.init(params);

  const auto loss_fn = [&](const Variables& p, const Tensor& xb, const Tensor& yb) {
    return mean(losses::softmax_cross_entropy_with_integer_labels(nn::apply(model, p, xb), yb));
  };
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {  // the train step: value_and_grad, update, apply_updates
    auto [loss, grads] = value_and_grad(loss_fn)(params, x, labels);
    auto [updates, new_state] = tx.update(grads, opt_state, params);
    params = optim::apply_updates(params, updates);
    opt_state = std::move(new_state);
    (step == 0 ? first : last) = loss.item();
  }
  std::cout << "loss " << first << " -> " << last << "\n";
  return last < first ? 0 : 1;
}
