#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

struct Block {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(nn::Dense{.features = 16}, relu(s(nn::Dense{.features = 16}, x)));
  }
};

struct Stack {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = s(nn::Dense{.features = 16}, x);
    return s(nn::Dense{.features = 3}, s(nn::scan(nn::remat(Block{}), 4), h));  // 4 blocks, recomputed
  }
};

int main() {
  const Stack model;
  const Tensor x = uniform(Key(1), Shape{32, 8});
  const Tensor labels = argmax(slice_axis(x, 1, 0, 3), 1);
  Variables params = nn::init(model, Key(0), x).collection("params");
  std::cout << "stacked kernel " << params.at("params/Scan_0/Dense_0/kernel").shape().str() << "\n";

  const optim::Mask decay_kernels = [](std::string_view path) { return path.ends_with("/kernel"); };
  const auto tx = optim::adamw(1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, decay_kernels);
  Variables opt_state = tx.init(params);
  const auto loss_fn = [&](const Variables& p, const Tensor& xb, const Tensor& yb) {
    return mean(losses::softmax_cross_entropy_with_integer_labels(nn::apply(model, p, xb), yb));
  };
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    auto [loss, grads] = value_and_grad(loss_fn)(params, x, labels);
    auto [updates, new_state] = tx.update(grads, opt_state, params);
    params = optim::apply_updates(params, updates);
    opt_state = std::move(new_state);
    (step == 0 ? first : last) = loss.item();
  }
  std::cout << "loss " << first << " -> " << last << "\n";
  return last < first ? 0 : 1;
}
