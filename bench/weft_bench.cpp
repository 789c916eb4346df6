// weft-bench: weft's workloads, one line each per thread count (see bench/README.md).
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "weft/core/normalization.hpp"
#include "weft/jit.hpp"
#include "weft/core/stochastic.hpp"
#include "weft/losses.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/weft.hpp"

namespace models {

using namespace weft;

/// Dense layers with ReLU between them and Dropout after each hidden ReLU when drop_rate > 0.
struct Mlp {
  std::vector<std::int64_t> sizes;  // hidden and output features
  float drop_rate = 0.0f;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      x = relu(s(nn::Dense{.features = sizes[i]}, x));
      if (drop_rate > 0.0f) x = s(nn::Dropout{.rate = drop_rate, .deterministic = !train}, x);
    }
    return s(nn::Dense{.features = sizes.back()}, x);
  }
};

/// The seed's ResidualModel: dense 784->256, ten blocks x + Dropout(Dense(relu(Dense(x)))), dense 256->10.
struct ResidualBlock {
  nn::Dropout dropout;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(dropout, s(nn::Dense{.features = 256}, relu(s(nn::Dense{.features = 256}, x))));
  }
};
struct ResidualMlp {
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    const auto dropout = nn::Dropout{.rate = 0.1f, .deterministic = !train};
    x = s(nn::Dense{.features = 256}, x);
    for (int i = 0; i < 10; ++i) x = s(ResidualBlock{.dropout = dropout}, x);
    return s(nn::Dense{.features = 10}, x);
  }
};

/// conv3x3(32, VALID) + ReLU + max-pool 2; conv3x3(64, VALID) + BatchNorm + ReLU + max-pool 2;
/// flatten; dense 128 + ReLU + Dropout(0.5); dense 10.
struct ConvNet {
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    const PoolOptions pool{.window = {2, 2}, .strides = {2, 2}};
    Tensor x = max_pool(relu(s(nn::Conv{.features = 32, .kernel_size = {3, 3}, .padding = "VALID"}, images)), pool);
    x = s(nn::Conv{.features = 64, .kernel_size = {3, 3}, .padding = "VALID"}, x);
    x = max_pool(relu(s(nn::BatchNorm{.use_running_average = !train}, x)), pool);
    x = relu(s(nn::Dense{.features = 128}, reshape(x, {x.shape()[0], -1})));
    x = s(nn::Dropout{.rate = 0.5f, .deterministic = !train}, x);
    return s(nn::Dense{.features = 10}, x);
  }
};

}  // namespace models

WEFT_RECORD(models::ResidualBlock, dropout);

namespace {

using namespace weft;

/// One training step on a fixed batch: forward, mean softmax cross-entropy, backward (value_and_grad),
/// Adam(lr 1e-3) update; the batch statistics of BatchNorm are carried along. A pure function of
/// the variables, the optimizer state and the dropout key, so that weft::jit can compile it.
template <class Model>
struct TrainStep {
  Model model;
  optim::GradientTransformation adam;
  std::pair<Variables, Variables> operator()(const Variables& variables, const Variables& opt_state, const Tensor& x,
                                             const Tensor& labels, Key key) const {
    const auto loss_fn = [&](const Variables& vars) {
      auto [logits, state] = nn::apply(model, vars, nn::Mutable{"batch_stats"}, Rngs{{"dropout", key}}, x, true);
      return std::pair{mean(losses::softmax_cross_entropy(logits, labels)), state};
    };
    auto [loss, state, grads] = value_and_grad_with_aux(loss_fn)(variables);
    const Variables params = variables.collection("params");
    auto [updates, new_state] = adam.update(grads, opt_state, params);
    return {optim::apply_updates(params, updates).merge(state), std::move(new_state)};
  }
};

/// The step of `model` on a fixed batch of `input_shape`, jitted (weft::jit) or eager.
template <class Model>
std::function<void()> train_step(Model model, const Shape& input_shape, bool jitted) {
  const std::int64_t batch = input_shape[0];
  const Tensor x = normal(Key(1), input_shape);
  const Tensor labels = astype(uniform(Key(2), Shape{batch}, 0.0f, 10.0f), DType::int32);
  auto variables = std::make_shared<Variables>(nn::init(model, Key(0), x, false));
  const TrainStep<Model> step_fn{model, optim::adam(1e-3f)};
  auto opt_state = std::make_shared<Variables>(step_fn.adam.init(variables->collection("params")));
  auto step = std::make_shared<std::uint32_t>(0);
  // The variables and the optimizer state are handed over (moved): jitted, the step updates them in
  // place; eager, it reads them as it would a const reference.
  using Step =
      std::function<std::pair<Variables, Variables>(Variables&&, Variables&&, const Tensor&, const Tensor&, Key)>;
  const Step run = jitted ? Step(jit(step_fn)) : Step(step_fn);
  return [=] {
    auto [next_variables, next_state] =
        run(std::move(*variables), std::move(*opt_state), x, labels, fold_in(Key(3), (*step)++));
    *variables = std::move(next_variables);
    *opt_state = std::move(next_state);
  };
}

/// The floor of the jitted step: its products on the GEMM backend back to back (taken from the
/// plan weft::jit compiled), plus one pass over the optimizer state at copy bandwidth: an in-place
/// Adam reads params, gradients and both moments and writes params and moments, seven arrays of
/// the parameter count, which a memcpy of 3.5 of them moves. The pass is timed at setup (median of
/// 21 copies) and added to each repetition: run together, it would evict what the products keep in
/// cache, and the sum would no longer bound the step from below.
template <class Model>
std::function<void()> train_floor(Model model, const Shape& input_shape, const std::shared_ptr<double>& copy_ms) {
  const Tensor x = normal(Key(1), input_shape);
  const Tensor labels = astype(uniform(Key(2), Shape{input_shape[0]}, 0.0f, 10.0f), DType::int32);
  const Variables variables = nn::init(model, Key(0), x, false);
  const TrainStep<Model> step_fn{model, optim::adam(1e-3f)};
  const auto jitted = jit(step_fn);
  (void)jitted(variables, step_fn.adam.init(variables.collection("params")), x, labels, Key(3));
  const auto floats = static_cast<std::size_t>(variables.collection("params").num_elements()) * 7 / 2;
  std::vector<float> src(floats, 1.0f), dst(floats);
  std::vector<double> ms;
  for (int i = 0; i < 22; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), floats * sizeof(float));
    asm volatile("" : : "r"(dst.data()) : "memory");
    if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::ranges::sort(ms);
  *copy_ms = ms[ms.size() / 2];
  return detail::jit_gemm_floor(*jitted.latest_plan());
}

/// The workload `name` jitted, `name`_eager in eager mode, and `name`_floor: the step's products
/// alone (a convolution's at the shapes its im2col chunks give them) and the optimizer's pass.
template <class Model>
void add_train_step(std::vector<bench::Workload>& w, const std::string& name, Model model, Shape input_shape) {
  w.push_back({name, [=] { return train_step(model, input_shape, true); }});
  w.push_back({name + "_eager", [=] { return train_step(model, input_shape, false); }});
  bench::Workload floor{name + "_floor", {}, 1, {}};
  floor.setup = [model, input_shape, copy_ms = floor.added_ms] { return train_floor(model, input_shape, copy_ms); };
  floor.extra = [copy_ms = floor.added_ms](double ms) {
    return "gemm_ms=" + bench::fmt_ms(ms - *copy_ms) + " copy_ms=" + bench::fmt_ms(*copy_ms);
  };
  w.push_back(std::move(floor));
}

std::vector<bench::Workload> workloads() {
  std::vector<bench::Workload> w;

  for (const bool jitted : {true, false})
    w.push_back({jitted ? "mlp_infer_b1" : "mlp_infer_b1_eager", [jitted] {
                   const models::Mlp model{.sizes = {128, 128, 10}};
                   const Tensor x = normal(Key(1), Shape{1, 64});
                   const Variables vars = nn::init(model, Key(0), x, false);
                   const auto forward = [model](const Variables& v, const Tensor& input) {
                     return nn::apply(model, v, input, false);
                   };
                   using Forward = std::function<Tensor(const Variables&, const Tensor&)>;
                   const Forward run = jitted ? Forward(jit(forward)) : Forward(forward);
                   return [run, vars, x] {
                     Tensor y = run(vars, x);
                     asm volatile("" : : "r"(&y) : "memory");
                   };
                 }});
  add_train_step(w, "mlp_train_b32", models::Mlp{.sizes = {128, 128, 10}, .drop_rate = 0.1f}, Shape{32, 64});
  add_train_step(w, "mlp_train_b256_large", models::Mlp{.sizes = {1024, 1024, 10}, .drop_rate = 0.1f},
                 Shape{256, 784});
  add_train_step(w, "residual_mlp_train", models::ResidualMlp{}, Shape{128, 784});
  add_train_step(w, "conv_train_b32", models::ConvNet{}, Shape{32, 28, 28, 1});

  // Dropout's random bits in the default (partitionable) layout and in the classic one, and the
  // floor of both: a copy of the same bytes (16M floats in, 16M out).
  for (const auto& [name, layout] : {std::pair{"dropout_fwd_16M", ThreefryLayout::partitionable},
                                     std::pair{"dropout_fwd_16M_classic", ThreefryLayout::classic}})
    w.push_back({name, [layout] {
                   const Tensor x = uniform(Key(1), Shape{16 * 1024 * 1024});
                   auto step = std::make_shared<std::uint32_t>(0);
                   const auto drop = partial(core::dropout, core::DropoutOptions{.rate = 0.5f, .deterministic = false});
                   return [x, step, drop, layout] {
                     const Key key = fold_in(Key(2, layout), (*step)++);
                     Tensor y = core::apply(drop)(Variables{}, Rngs{{"dropout", key}}, x);
                     asm volatile("" : : "r"(&y) : "memory");
                   };
                 }});
  w.push_back({"copy_16M", [] {
                 auto src = std::make_shared<std::vector<float>>(uniform(Key(1), Shape{16 * 1024 * 1024}).to_vector());
                 auto dst = std::make_shared<std::vector<float>>(src->size());
                 return [src, dst] {
                   std::memcpy(dst->data(), src->data(), src->size() * sizeof(float));
                   asm volatile("" : : "r"(dst->data()) : "memory");
                 };
               }});
  // Initialising the seed's residual model (1.52M parameters drawn by truncated_normal) in both
  // layouts.
  for (const auto& [name, layout] : {std::pair{"residual_mlp_init", ThreefryLayout::partitionable},
                                     std::pair{"residual_mlp_init_classic", ThreefryLayout::classic}})
    w.push_back({name, [layout] {
                   const Tensor x = normal(Key(1), Shape{1, 784});
                   return [x, layout] {
                     Variables vars = nn::init(models::ResidualMlp{}, Key(0, layout), x, false);
                     asm volatile("" : : "r"(&vars) : "memory");
                   };
                 }});
  w.push_back({"layernorm_fwd", [] {
                 const Tensor x = normal(Key(1), Shape{4096, 1024});
                 const auto norm = partial(core::layer_norm, core::LayerNormOptions{});
                 const Variables vars = core::init(norm)(Key(0), x).second;
                 return [x, vars, norm] {
                   Tensor y = core::apply(norm)(vars, x);
                   asm volatile("" : : "r"(&y) : "memory");
                 };
               }});

  // Framework cost of one op: add of two 1-element tensors (allocation, broadcasting plan, dispatch).
  w.push_back({"op_overhead",
               [] {
                 auto a = std::make_shared<Tensor>(Tensor({1.0f}, Shape{1}));
                 auto b = std::make_shared<Tensor>(Tensor({2.0f}, Shape{1}));
                 return [a, b] {
                   Tensor c = *a + *b;
                   asm volatile("" : : "r"(&c) : "memory");
                 };
               },
               1000, [](double ms) { return "ns_per_op=" + bench::fmt_ms(ms * 1e6); }});

  constexpr std::int64_t n = 1024;
  const auto gflops = [](double ms) { return "gflops=" + bench::fmt_ms(2.0 * n * n * n / (ms * 1e-3) / 1e9); };
  // 1024^3 matmul through weft's op (allocation of the result included)...
  w.push_back({"gemm_1024",
               [] {
                 auto a = std::make_shared<Tensor>(uniform(Key(1), Shape{n, n}));
                 auto b = std::make_shared<Tensor>(uniform(Key(2), Shape{n, n}));
                 return [a, b] {
                   Tensor c = matmul(*a, *b);
                   asm volatile("" : : "r"(&c) : "memory");
                 };
               },
               1, gflops});
  // ...and the backend called directly into a preallocated result, for the overhead of the op.
  w.push_back({"gemm_1024_backend_direct",
               [] {
                 auto a = std::make_shared<std::vector<float>>(uniform(Key(1), Shape{n, n}).to_vector());
                 auto b = std::make_shared<std::vector<float>>(uniform(Key(2), Shape{n, n}).to_vector());
                 auto c = std::make_shared<std::vector<float>>(static_cast<std::size_t>(n * n));
                 return [a, b, c] {
                   dnnl_sgemm('N', 'N', n, n, n, 1.0f, a->data(), n, b->data(), n, 0.0f, c->data(), n);
                 };
               },
               1, gflops});
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  if (!bench::parse(argc, argv, o, "weft-bench")) return 0;
  const auto all = workloads();
  for (int t : o.threads) {
    omp_set_num_threads(t);
    for (const auto& w : all)
      if (bench::selected(o, w.name)) bench::run("weft", t, w, o.seconds);
  }
}
