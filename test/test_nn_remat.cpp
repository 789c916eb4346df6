// nn::Remat and autodiff::checkpoint: the same parameters, results and gradients as without
// checkpointing, bit for bit, the same dropout masks in the recomputation, and less kept for the
// backward pass.
#include <omp.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../src/buffer.hpp"
#include "testing.hpp"
#include "weft/losses.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/remat.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/nn/tabulate.hpp"
#include "weft/random.hpp"
#include "weft/remat.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace remat_test {

/// bench/weft_bench.cpp's block: x + Dropout(Dense(relu(Dense(x)))).
struct ResidualBlock {
  nn::Dropout dropout;
  std::int64_t features = 256;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(dropout, s(nn::Dense{.features = features}, relu(s(nn::Dense{.features = features}, x))));
  }
};

/// bench/weft_bench.cpp's ResidualMlp, with its ten blocks checkpointed or not.
template <bool Checkpointed>
struct ResidualMlp {
  std::int64_t features = 256;
  float rate = 0.1f;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    const auto dropout = nn::Dropout{.rate = rate, .deterministic = !train};
    x = s(nn::Dense{.features = features}, x);
    for (int i = 0; i < 10; ++i) {
      const ResidualBlock block{.dropout = dropout, .features = features};
      if constexpr (Checkpointed)
        x = s(nn::remat(block), x);
      else
        x = s(block, x);
    }
    return s(nn::Dense{.features = 10}, x);
  }
};

/// Setup style: the checkpointed block is a field, and runs in the child named after it.
struct WithField {
  nn::Remat<ResidualBlock> block;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::Dense{.features = 3}, s(block, x)); }
};
struct WithPlainField {
  ResidualBlock block;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::Dense{.features = 3}, s(block, x)); }
};

/// A field called twice: one child, its dropout stream drawn twice (the second call's recomputation
/// must replay the second key, not the first).
struct Twice {
  ResidualBlock block;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(block, s(block, x)); }
};
struct TwiceCheckpointed {
  nn::Remat<ResidualBlock> block;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(block, s(block, x)); }
};

/// Batch statistics updated inside the checkpointed module.
struct NormBlock {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return relu(s(nn::BatchNorm{.use_running_average = false}, s(nn::Dense{.features = 4}, x)));
  }
};
template <bool Checkpointed>
struct NormModel {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    if constexpr (Checkpointed) return s(nn::Dense{.features = 2}, s(nn::remat(NormBlock{}), x));
    return s(nn::Dense{.features = 2}, s(NormBlock{}, x));
  }
};

/// A module holding a tensor that is being differentiated: its gradient could not reach it.
struct Holding {
  Tensor scale;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::Dense{.features = 2}, x) * scale; }
};
struct HoldingModel {
  Tensor scale;
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::remat(Holding{.scale = scale}), x); }
};

/// A non-tensor argument, bound as it is (Linen's static_argnums).
struct Scaled {
  Tensor operator()(nn::Scope& s, const Tensor& x, float factor) const {
    return s(nn::Dense{.features = 3}, x) * full(Shape{}, factor);
  }
};

}  // namespace remat_test

WEFT_RECORD(remat_test::ResidualBlock, dropout, features);
WEFT_RECORD(remat_test::WithField, block);
WEFT_RECORD(remat_test::WithPlainField, block);
WEFT_RECORD(remat_test::Twice, block);
WEFT_RECORD(remat_test::TwiceCheckpointed, block);

namespace {

using remat_test::ResidualMlp;

/// Every leaf of `a` equals `b`'s at the same path, element for element.
void check_identical(const Variables& a, const Variables& b) {
  REQUIRE(a.paths() == b.paths());
  for (const auto& p : a.paths()) {
    INFO(p);
    CHECK(a.at(p).shape() == b.at(p).shape());
    CHECK(a.at(p).to_vector() == b.at(p).to_vector());
  }
}

template <class Model>
ValueAndGrad<Variables> train_gradients(const Model& model, const Variables& vars, const Tensor& x,
                                        const Tensor& labels, Key dropout) {
  return value_and_grad([&](const Variables& v) {
    return mean(losses::softmax_cross_entropy(nn::apply(model, v, Rngs{{"dropout", dropout}}, x, true), labels));
  })(vars);
}

Tensor labels_for(std::int64_t batch) {
  return astype(uniform(Key(2), Shape{batch}, 0.0f, 10.0f), DType::int32);
}

}  // namespace

TEST_CASE("nn::remat keeps the unwrapped module's parameters, paths and results") {
  const ResidualMlp<false> plain{.features = 16, .rate = 0.5f};
  const ResidualMlp<true> checkpointed{.features = 16, .rate = 0.5f};
  const Tensor x = normal(Key(1), Shape{4, 12});
  const Variables vars = nn::init(plain, Key(0), x, false);
  // The blocks sit where they sit without remat (Block_N, not Linen's CheckpointBlock_N).
  check_identical(nn::init(checkpointed, Key(0), x, false), vars);
  CHECK(vars.contains("params/ResidualBlock_9/Dense_1/kernel"));
  // nn::tabulate lists the same rows: the blocks under their own type name, and their layers.
  CHECK(nn::tabulate(checkpointed, Key(0), x, false) == nn::tabulate(plain, Key(0), x, false));
  // Eval and train (the same dropout masks), bit for bit.
  CHECK(nn::apply(checkpointed, vars, x, false).to_vector() == nn::apply(plain, vars, x, false).to_vector());
  CHECK(nn::apply(checkpointed, vars, Rngs{{"dropout", Key(5)}}, x, true).to_vector() ==
        nn::apply(plain, vars, Rngs{{"dropout", Key(5)}}, x, true).to_vector());

  // Setup style: the field's name.
  const remat_test::ResidualBlock block{.dropout = nn::Dropout{.rate = 0.5f, .deterministic = true}, .features = 12};
  const remat_test::WithField with_field{.block = nn::remat(block)};
  const remat_test::WithPlainField with_plain{.block = block};
  const Variables field_vars = nn::init(with_plain, Key(3), x);
  check_identical(nn::init(with_field, Key(3), x), field_vars);
  CHECK(field_vars.contains("params/block/Dense_0/kernel"));
  CHECK(nn::apply(with_field, field_vars, x).to_vector() == nn::apply(with_plain, field_vars, x).to_vector());
}

TEST_CASE("nn::remat gradients equal the unwrapped ones bit for bit, dropout masks replayed") {
  const ResidualMlp<false> plain{.features = 16, .rate = 0.5f};
  const ResidualMlp<true> checkpointed{.features = 16, .rate = 0.5f};
  const Tensor x = normal(Key(1), Shape{4, 12});
  const Tensor labels = labels_for(4);
  const Variables vars = nn::init(plain, Key(0), x, false);
  const auto expected = train_gradients(plain, vars, x, labels, Key(7));
  const auto actual = train_gradients(checkpointed, vars, x, labels, Key(7));
  CHECK(actual.value.item() == expected.value.item());
  check_identical(actual.grad, expected.grad);
  // The masks matter: another key gives other gradients.
  const auto other = train_gradients(checkpointed, vars, x, labels, Key(8));
  CHECK(other.grad.at("params/ResidualBlock_3/Dense_0/kernel").to_vector() !=
        expected.grad.at("params/ResidualBlock_3/Dense_0/kernel").to_vector());

  // A field called twice draws two dropout keys, and each recomputation replays its own.
  const remat_test::ResidualBlock dropping{.dropout = nn::Dropout{.rate = 0.5f, .deterministic = false}, .features = 12};
  const remat_test::Twice twice{.block = dropping};
  const remat_test::TwiceCheckpointed twice_checkpointed{.block = nn::remat(dropping)};
  const Variables twice_vars = nn::init(twice, Key(0), x);
  const auto twice_loss = [&](const auto& model) {
    return grad([&](const Variables& v) {
      return sum(square(nn::apply(model, v, Rngs{{"dropout", Key(11)}}, x)));
    })(twice_vars);
  };
  check_identical(twice_loss(twice_checkpointed), twice_loss(twice));

  // With respect to the input as well: the same as without remat, and as finite differences.
  const auto input_loss = [&](const auto& model) {
    return [&model, &vars](const Tensor& t) { return sum(square(nn::apply(model, vars, t, false))); };
  };
  CHECK(grad(input_loss(checkpointed))(x).to_vector() == grad(input_loss(plain))(x).to_vector());
  struct Small {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return s(nn::remat(remat_test::ResidualBlock{.dropout = nn::Dropout{.rate = 0.5f, .deterministic = true},
                                                   .features = 3}),
               t);
    }
  };
  const Tensor xs = pattern(Shape{2, 3});
  const Variables small_vars = nn::init(Small{}, Key(4), xs);
  check_gradient([&](const Tensor& t) { return sum(square(nn::apply(Small{}, small_vars, t))); }, xs);

  // The same on 1 and 2 threads.
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = train_gradients(checkpointed, vars, x, labels, Key(7));
  omp_set_num_threads(2);
  const auto two = train_gradients(checkpointed, vars, x, labels, Key(7));
  omp_set_num_threads(saved);
  check_identical(one.grad, two.grad);
}

TEST_CASE("nn::remat updates batch statistics once, as the unwrapped module does") {
  const Tensor x = normal(Key(1), Shape{6, 3});
  const remat_test::NormModel<false> plain;
  const remat_test::NormModel<true> checkpointed;
  const Variables vars = nn::init(plain, Key(0), x);
  check_identical(nn::init(checkpointed, Key(0), x), vars);
  const auto run = [&](const auto& model) {
    return value_and_grad_with_aux([&](const Variables& v) {
      auto [y, state] = nn::apply(model, v, nn::Mutable{"batch_stats"}, x);
      return std::pair{sum(square(y)), state};
    })(vars);
  };
  const auto expected = run(plain);
  const auto actual = run(checkpointed);
  CHECK(actual.value.item() == expected.value.item());
  check_identical(actual.aux, expected.aux);  // the recomputation's update is not kept
  check_identical(actual.grad, expected.grad);
}

TEST_CASE("nn::remat binds non-tensor arguments and runs untracked calls as they are") {
  const Tensor x = pattern(Shape{2, 4});
  struct Wrapped {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::remat(remat_test::Scaled{}), t, 2.0f); }
  };
  struct Plain {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(remat_test::Scaled{}, t, 2.0f); }
  };
  const Variables vars = nn::init(Plain{}, Key(0), x);
  check_identical(nn::init(Wrapped{}, Key(0), x), vars);
  CHECK(vars.contains("params/Scaled_0/Dense_0/kernel"));
  CHECK(nn::apply(Wrapped{}, vars, x).to_vector() == nn::apply(Plain{}, vars, x).to_vector());
  // The factor is used: twice the Dense output.
  const Tensor dense = matmul(x, vars.at("params/Scaled_0/Dense_0/kernel")) + vars.at("params/Scaled_0/Dense_0/bias");
  CHECK(nn::apply(Wrapped{}, vars, x).to_vector() == (dense * full(Shape{}, 2.0f)).to_vector());
  const auto loss = [&](const auto& model) {
    return grad([&](const Variables& v) { return sum(nn::apply(model, v, x)); })(vars);
  };
  check_identical(loss(Wrapped{}), loss(Plain{}));
}

TEST_CASE("nn::remat: a differentiated tensor the module holds is an error naming the module") {
  const Tensor x = pattern(Shape{2, 3});
  const remat_test::HoldingModel model{.scale = full(Shape{}, 2.0f)};
  const Variables vars = nn::init(model, Key(0), x);
  // Held as a constant, it is fine; differentiated along with the input, its gradient would be lost.
  CHECK(nn::apply(model, vars, x).shape() == Shape{2, 2});
  CHECK(grad([&](const Tensor& t) { return sum(nn::apply(model, vars, t)); })(x).shape() == x.shape());
  check_throws_with<ValueError>(
      [&] {
        (void)grad([&](const std::vector<Tensor>& v) {
          return sum(nn::apply(remat_test::HoldingModel{.scale = v[1]}, vars, v[0]));
        })(std::vector{x, full(Shape{}, 2.0f)});
      },
      {"weft::nn::Remat: Holding at \"/Holding_0\"", "not one of the inputs", "pass that tensor as an input"});
}

TEST_CASE("autodiff::checkpoint: the gradient of a function of two inputs, recomputed") {
  const Tensor a = pattern(Shape{3});
  const Tensor b = full(Shape{3}, 0.5f);
  int calls = 0;
  const autodiff::CheckpointFunction f = [&calls](std::span<const Tensor> in) {
    ++calls;
    return sum(exp(in[0]) * in[1]);
  };
  const auto g = grad([&](const std::vector<Tensor>& v) { return autodiff::checkpoint(f, v); })(std::vector{a, b});
  CHECK(calls == 2);  // the forward, then the recomputation
  // d/da sum(exp(a) b) = exp(a) b, d/db = exp(a), exactly as without checkpointing.
  const auto plain = grad([](const std::vector<Tensor>& v) { return sum(exp(v[0]) * v[1]); })(std::vector{a, b});
  CHECK(g[0].to_vector() == plain[0].to_vector());
  CHECK(g[1].to_vector() == plain[1].to_vector());
  check_close(g[1], exp(a));
  // Untracked inputs: one call, nothing recorded.
  calls = 0;
  const std::vector<Tensor> inputs{a, b};
  CHECK(!autodiff::checkpoint(f, inputs).is_tracked());
  CHECK(calls == 1);
  check_throws_with<ValueError>([&] { (void)autodiff::checkpoint(autodiff::CheckpointFunction{}, inputs); },
                                {"weft::autodiff::checkpoint", "the function is empty"});
}

TEST_CASE("nn::remat keeps less for the backward pass of the residual model") {
  // bench/weft_bench.cpp's ResidualMlp (784 -> 256, ten blocks Dense 256 -> relu -> Dense 256 with a
  // residual, Dropout 0.1) on a batch of 128: the element bytes of the tensors alive when the loss
  // is computed (what the backward pass will use, beyond what was alive before), and the peak over
  // the whole step, forward and backward.
  const Tensor x = normal(Key(1), Shape{128, 784});
  const Tensor labels = labels_for(128);
  const Variables vars = nn::init(ResidualMlp<false>{}, Key(0), x, false);
  struct Measured {
    std::size_t kept;
    std::size_t peak;
    Variables grad;
  };
  const auto measure = [&](const auto& model) {
    const std::size_t before = weft::detail::tensor_bytes().live;
    weft::detail::reset_tensor_bytes_peak();
    std::size_t at_loss = 0;
    auto g = value_and_grad([&](const Variables& v) {
      Tensor loss =
          mean(losses::softmax_cross_entropy(nn::apply(model, v, Rngs{{"dropout", Key(3)}}, x, true), labels));
      at_loss = weft::detail::tensor_bytes().live;
      return loss;
    })(vars);
    return Measured{at_loss - before, weft::detail::tensor_bytes().peak - before, std::move(g.grad)};
  };
  const Measured plain = measure(ResidualMlp<false>{});
  const Measured checkpointed = measure(ResidualMlp<true>{});
  MESSAGE("ResidualMlp, batch 128: bytes kept for the backward pass: " << plain.kept << " without remat, "
                                                                        << checkpointed.kept << " with remat; peak "
                                                                        << plain.peak << " without, "
                                                                        << checkpointed.peak << " with");
  check_identical(checkpointed.grad, plain.grad);
  // Each checkpointed block keeps its input only (128 x 256 floats, 128 KiB) instead of that and
  // what its ops keep for their gradients (measured: 4069388 bytes without remat, 1447948 with,
  // of which the ten block inputs are 1310720).
  CHECK(checkpointed.kept * 2 < plain.kept);
  CHECK(checkpointed.peak < plain.peak);
}
