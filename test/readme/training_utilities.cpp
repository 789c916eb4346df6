#include <cstdio>
#include <filesystem>

#include <weft/weft.hpp>
using namespace weft;

int main() {
  const nn::Dense model{.features = 3};
  const Tensor x = uniform(Key(1), Shape{96, 8}, -1.0f, 1.0f);
  const Tensor y = argmax(matmul(x, uniform(Key(2), Shape{8, 3}, -1.0f, 1.0f)), -1);  // learnable labels
  const auto apply = [model](const Variables& v, const Tensor& in) { return nn::apply(model, v, in); };
  training::TrainState state(apply, nn::init(model, Key(0), x).collection("params"), optim::adam(0.05f));

  const auto dir = std::filesystem::temp_directory_path() / "weft-readme-run";
  std::filesystem::remove_all(dir);                        // a fresh run: the writers append
  training::JsonLinesWriter json(dir / "metrics.jsonl");   // {"step":1,"train_loss":1.31...}
  training::TensorBoardWriter tensorboard(dir);            // tensorboard --logdir /tmp/weft-readme-run
  training::ProgressBar bar("fit", 100, 96);               // on stderr
  training::Average loss;
  for (int i = 1; i <= 100; ++i) {
    const auto loss_fn = [&](const Variables& p) { return mean(losses::softmax_cross_entropy(apply(p, x), y)); };
    const auto [value, grads] = value_and_grad(loss_fn)(state.params());
    state = state.apply_gradients(grads);  // a new state: step + 1, params and Adam's moments updated
    loss = loss.merge(training::Average::of_batch(value.item(), 96));
    json.write_scalars(state.step(), {{"train_loss", value.item()}});
    tensorboard.write_scalars(state.step(), {{"train_loss", value.item()}});
    bar.update(i, {{"loss", loss.compute()}});
  }
  const auto accuracy = training::Accuracy::of_logits(apply(state.params(), x), y);
  std::printf("%lld steps, mean loss %.3f, accuracy %.3f\n", static_cast<long long>(state.step()), loss.compute(),
              accuracy.compute());
  return accuracy.compute() > 0.9 ? 0 : 1;
}
