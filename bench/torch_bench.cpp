// torch-bench: weft-bench's workloads on the PyTorch C++ frontend (libtorch), the peer weft is
// compared with (see bench/README.md and bench/compare.sh). Plain, idiomatic libtorch: nn modules,
// torch::optim::Adam, no autograd on the inference workloads.
#include <dlfcn.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

// libtorch calls BLAS through libblas.so.3 and torch::set_num_threads leaves OpenBLAS's own thread
// pool alone, so OpenBLAS is reached by name; with another BLAS behind libblas.so.3 the symbols
// are absent and nothing happens.
template <class Fn>
Fn openblas(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

void set_threads(int t) {
  torch::set_num_threads(t);
  if (const auto set = openblas<void (*)(int)>("openblas_set_num_threads")) set(t);
}

/// One line on stdout (ignored by compare.sh's parser) saying which BLAS kernels libtorch runs on.
void print_configuration() {
  const auto config = openblas<char* (*)()>("openblas_get_config");
  const auto core = openblas<char* (*)()>("openblas_get_corename");
  std::printf("# libtorch %s, BLAS: %s%s%s\n", TORCH_VERSION, config ? config() : "not OpenBLAS",
              core ? ", kernels " : "", core ? core() : "");
  std::fflush(stdout);
}

/// Dense layers with ReLU between them, and Dropout after each hidden ReLU when dropout > 0.
struct MlpImpl : nn::Module {
  MlpImpl(const std::vector<std::int64_t>& sizes, double dropout) {
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      dense.push_back(register_module("dense" + std::to_string(i), nn::Linear(sizes[i], sizes[i + 1])));
      if (dropout > 0 && i + 2 < sizes.size())
        drop.push_back(register_module("dropout" + std::to_string(i), nn::Dropout(dropout)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (std::size_t i = 0; i + 1 < dense.size(); ++i) {
      x = torch::relu(dense[i](x));
      if (!drop.empty()) x = drop[i](x);
    }
    return dense.back()(x);
  }
  std::vector<nn::Linear> dense;
  std::vector<nn::Dropout> drop;
};
TORCH_MODULE(Mlp);

/// dense 784->256, ten blocks x + Dropout(0.1)(Dense(ReLU(Dense(x)))), dense 256->10.
struct ResidualMlpImpl : nn::Module {
  static constexpr int blocks = 10;
  ResidualMlpImpl() {
    for (int i = 0; i < blocks; ++i) {
      const auto n = std::to_string(i);
      first.push_back(register_module("block" + n + "_dense0", nn::Linear(256, 256)));
      second.push_back(register_module("block" + n + "_dense1", nn::Linear(256, 256)));
      drop.push_back(register_module("block" + n + "_dropout", nn::Dropout(0.1)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    x = input(x);
    for (int i = 0; i < blocks; ++i) x = x + drop[i](second[i](torch::relu(first[i](x))));
    return output(x);
  }
  nn::Linear input{register_module("input", nn::Linear(784, 256))};
  std::vector<nn::Linear> first, second;
  std::vector<nn::Dropout> drop;
  nn::Linear output{register_module("output", nn::Linear(256, 10))};
};
TORCH_MODULE(ResidualMlp);

/// 28x28x1 -> conv 3x3 (32) + ReLU + max-pool 2 -> conv 3x3 (64) + BatchNorm + ReLU + max-pool 2
/// -> flatten (1600) -> dense 128 + ReLU + Dropout(0.5) -> dense 10. VALID convolutions.
struct ConvNetImpl : nn::Module {
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv0(x)), 2);
    x = torch::max_pool2d(torch::relu(norm(conv1(x))), 2);
    x = drop(torch::relu(dense0(x.flatten(1))));
    return dense1(x);
  }
  nn::Conv2d conv0{register_module("conv0", nn::Conv2d(nn::Conv2dOptions(1, 32, 3)))};
  nn::Conv2d conv1{register_module("conv1", nn::Conv2d(nn::Conv2dOptions(32, 64, 3)))};
  nn::BatchNorm2d norm{register_module("norm", nn::BatchNorm2d(64))};
  nn::Linear dense0{register_module("dense0", nn::Linear(1600, 128))};
  nn::Dropout drop{register_module("dropout", nn::Dropout(0.5))};
  nn::Linear dense1{register_module("dense1", nn::Linear(128, 10))};
};
TORCH_MODULE(ConvNet);

/// One training step on a fixed batch: zero_grad, forward, mean softmax cross-entropy, backward, Adam.
template <class Model>
std::function<void()> train_step(Model model, std::vector<std::int64_t> input_shape) {
  const std::int64_t batch = input_shape.front();
  const auto x = torch::randn(input_shape);
  const auto labels = torch::randint(0, 10, {batch}, torch::kLong);
  model->train();
  auto adam = std::make_shared<torch::optim::Adam>(model->parameters(), torch::optim::AdamOptions(1e-3));
  return [model, adam, x, labels]() mutable {
    adam->zero_grad();
    const auto loss = F::cross_entropy(model->forward(x), labels);
    loss.backward();
    adam->step();
  };
}

std::vector<bench::Workload> workloads() {
  std::vector<bench::Workload> w;

  w.push_back({"mlp_infer_b1", [] {
                 torch::manual_seed(0);
                 Mlp model(std::vector<std::int64_t>{64, 128, 128, 10}, 0.0);
                 model->eval();
                 const auto x = torch::randn({1, 64});
                 return [model, x]() mutable {
                   const torch::NoGradGuard no_grad;
                   const auto y = model->forward(x);
                 };
               }});
  w.push_back({"mlp_train_b32", [] {
                 torch::manual_seed(0);
                 return train_step(Mlp(std::vector<std::int64_t>{64, 128, 128, 10}, 0.1), {32, 64});
               }});
  w.push_back({"mlp_train_b256_large", [] {
                 torch::manual_seed(0);
                 return train_step(Mlp(std::vector<std::int64_t>{784, 1024, 1024, 10}, 0.1), {256, 784});
               }});
  w.push_back({"residual_mlp_train", [] {
                 torch::manual_seed(0);
                 return train_step(ResidualMlp(), {128, 784});
               }});
  w.push_back({"conv_train_b32", [] {
                 torch::manual_seed(0);
                 return train_step(ConvNet(), {32, 1, 28, 28});
               }});

  w.push_back({"dropout_fwd_16M", [] {
                 torch::manual_seed(0);
                 const auto x = torch::rand({16 * 1024 * 1024});
                 return [x] {
                   const auto y = F::dropout(x, F::DropoutFuncOptions().p(0.5).training(true));
                 };
               }});
  w.push_back({"layernorm_fwd", [] {
                 torch::manual_seed(0);
                 nn::LayerNorm norm(nn::LayerNormOptions({1024}));
                 const auto x = torch::randn({4096, 1024});
                 return [norm, x]() mutable {
                   const torch::NoGradGuard no_grad;
                   const auto y = norm(x);
                 };
               }});

  // Framework cost of one op: add of two 1-element tensors, timed in batches as in weft-bench.
  w.push_back({"op_overhead",
               [] {
                 const auto a = torch::ones({1});
                 const auto b = torch::full({1}, 2.0f);
                 return [a, b] { const auto c = a + b; };
               },
               1000, [](double ms) { return "ns_per_op=" + bench::fmt_ms(ms * 1e6); }});

  constexpr std::int64_t n = 1024;
  w.push_back({"gemm_1024",
               [] {
                 torch::manual_seed(0);
                 const auto a = torch::rand({n, n});
                 const auto b = torch::rand({n, n});
                 return [a, b] { const auto c = torch::mm(a, b); };
               },
               1, [](double ms) { return "gflops=" + bench::fmt_ms(2.0 * n * n * n / (ms * 1e-3) / 1e9); }});
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  if (!bench::parse(argc, argv, o, "torch-bench")) return 0;
  // The inter-op pool can be sized only once, before any parallel work; these workloads have no
  // inter-op parallelism, so one thread.
  torch::set_num_interop_threads(1);
  print_configuration();
  const auto all = workloads();
  for (const int t : o.threads) {
    set_threads(t);
    for (const auto& w : all)
      if (bench::selected(o, w.name)) bench::run("libtorch", t, w, o.seconds);
  }
}
