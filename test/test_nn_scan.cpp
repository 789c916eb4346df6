// nn::Scan: a stack of identical blocks with stacked parameters, equal to the unrolled stack whose
// blocks hold the slices, values and gradients alike.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "testing.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/remat.hpp"
#include "weft/nn/scan.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/random.hpp"

using namespace weft;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace scan_test {

/// x + Dense(relu(Dense(x))): the carry keeps its shape.
struct Block {
  std::int64_t features = 8;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(nn::Dense{.features = features}, relu(s(nn::Dense{.features = features}, x)));
  }
};

struct Stacked {
  int length = 3;
  std::int64_t features = 8;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return s(nn::scan(Block{.features = features}, length), x);
  }
};

/// The stack with each layer checkpointed (Linen's nn.scan(nn.remat(Block), ...)).
struct StackedRemat {
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::scan(nn::remat(Block{}), 3), x); }
};

/// The same stack unrolled: Block_0 .. Block_{length-1}.
struct Unrolled {
  int length = 3;
  Tensor operator()(nn::Scope& s, Tensor x) const {
    for (int i = 0; i < length; ++i) x = s(Block{}, x);
    return x;
  }
};

/// x + Dropout(ones): the carry gains 2 where a layer keeps the unit (rate 0.5), 0 where it drops it.
struct DropBlock {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(nn::Dropout{.rate = 0.5f, .deterministic = false}, full(x.shape(), 1.0f));
  }
};

/// Batch statistics in every layer, stacked like the parameters (variable_axes params and
/// batch_stats).
struct NormBlock {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + relu(s(nn::BatchNorm{.use_running_average = false}, s(nn::Dense{.features = 8}, x)));
  }
};
struct NormStacked {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return s(nn::Scan<NormBlock>{.module = {}, .length = 3, .variable_axes = {"params", "batch_stats"}}, x);
  }
};
struct NormUnrolled {
  Tensor operator()(nn::Scope& s, Tensor x) const {
    for (int i = 0; i < 3; ++i) x = s("Block_" + std::to_string(i), NormBlock{}, x);
    return x;
  }
};

/// A block that changes the carry's shape.
struct Widening {
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(nn::Dense{.features = 5}, x); }
};

}  // namespace scan_test

namespace {

/// The unrolled stack's variables: layer i's slice of each stacked variable, at Block_i.
Variables unrolled_variables(const Variables& stacked, int length) {
  Variables out;
  for (const auto& [path, value] : stacked.leaves()) {
    const std::string collection = path.substr(0, path.find('/'));
    const std::string rest = path.substr(collection.size() + std::string("/Scan_0/").size());
    const std::vector<std::int64_t> dims = value.shape().to_vector();
    for (int i = 0; i < length; ++i)
      out = out.set(collection + "/Block_" + std::to_string(i) + "/" + rest,
                    reshape(slice_axis(value, 0, i, i + 1), Shape(std::vector<std::int64_t>(dims.begin() + 1, dims.end()))));
  }
  return out;
}

}  // namespace

TEST_CASE("nn::Scan stores each parameter once, stacked on a leading axis of length") {
  const Tensor x = normal(Key(1), Shape{2, 8});
  const Variables vars = nn::init(scan_test::Stacked{}, Key(0), x);
  CHECK(vars.paths() == std::vector<std::string>{"params/Scan_0/Dense_0/bias", "params/Scan_0/Dense_0/kernel",
                                                 "params/Scan_0/Dense_1/bias", "params/Scan_0/Dense_1/kernel"});
  CHECK(vars.at("params/Scan_0/Dense_0/kernel").shape() == Shape{3, 8, 8});
  CHECK(vars.at("params/Scan_0/Dense_1/bias").shape() == Shape{3, 8});
  // Each layer its own key: split(make_rng("params"), length)[i], so the layers differ, and since a
  // split key does not depend on how many are split (the partitionable layout), the first two
  // layers of a stack of three are those of a stack of two.
  const Tensor kernel = vars.at("params/Scan_0/Dense_0/kernel");
  CHECK(slice_axis(kernel, 0, 0, 1).to_vector() != slice_axis(kernel, 0, 1, 2).to_vector());
  const Variables two = nn::init(scan_test::Stacked{.length = 2}, Key(0), x);
  CHECK(two.at("params/Scan_0/Dense_0/kernel").to_vector() == slice_axis(kernel, 0, 0, 2).to_vector());
  // A scan of six blocks of 256, as over the layers of a residual model.
  const Variables six = nn::init(scan_test::Stacked{.length = 6, .features = 256}, Key(0), Tensor(zeros(Shape{1, 256})));
  CHECK(six.at("params/Scan_0/Dense_0/kernel").shape() == Shape{6, 256, 256});
}

TEST_CASE("nn::Scan equals the unrolled blocks holding the slices, values and gradients") {
  const Tensor x = normal(Key(1), Shape{4, 8});
  const Variables vars = nn::init(scan_test::Stacked{}, Key(0), x);
  const Variables unrolled = unrolled_variables(vars, 3);
  CHECK(nn::apply(scan_test::Stacked{}, vars, x).to_vector() == nn::apply(scan_test::Unrolled{}, unrolled, x).to_vector());

  const auto loss = [&x](const auto& model) {
    return [&model, &x](const Variables& v) { return sum(square(nn::apply(model, v, x))); };
  };
  const Variables g = grad(loss(scan_test::Stacked{}))(vars);
  const Variables g_unrolled = grad(loss(scan_test::Unrolled{}))(unrolled);
  REQUIRE(g.paths() == vars.paths());
  CHECK(unrolled_variables(g, 3).paths() == g_unrolled.paths());
  const Variables g_sliced = unrolled_variables(g, 3);
  for (const std::string& path : g_sliced.paths()) {
    INFO(path);
    CHECK(g_sliced.at(path).to_vector() == g_unrolled.at(path).to_vector());
  }
  // Each layer checkpointed: the same parameters and gradients, bit for bit.
  CHECK(nn::init(scan_test::StackedRemat{}, Key(0), x).paths() == vars.paths());
  const Variables g_remat = grad(loss(scan_test::StackedRemat{}))(vars);
  for (const std::string& path : g.paths()) {
    INFO(path);
    CHECK(g_remat.at(path).to_vector() == g.at(path).to_vector());
  }
  // The input's gradient, against finite differences.
  const scan_test::Stacked small{.length = 2, .features = 3};
  const Tensor xs = pattern(Shape{2, 3});
  const Variables small_vars = nn::init(small, Key(4), xs);
  check_gradient([&](const Tensor& t) { return sum(square(nn::apply(small, small_vars, t))); }, xs);
}

TEST_CASE("nn::Scan stacks the batch statistics of its layers when variable_axes names them") {
  const Tensor x = normal(Key(1), Shape{6, 8});
  const Variables vars = nn::init(scan_test::NormStacked{}, Key(0), x);
  CHECK(vars.at("batch_stats/Scan_0/BatchNorm_0/mean").shape() == Shape{3, 8});
  CHECK(vars.at("params/Scan_0/BatchNorm_0/scale").shape() == Shape{3, 8});
  const Variables unrolled = unrolled_variables(vars, 3);
  REQUIRE(unrolled.contains("batch_stats/Block_2/BatchNorm_0/var"));
  auto [y, stats] = nn::apply(scan_test::NormStacked{}, vars, nn::Mutable{"batch_stats"}, x);
  auto [y_unrolled, stats_unrolled] = nn::apply(scan_test::NormUnrolled{}, unrolled, nn::Mutable{"batch_stats"}, x);
  CHECK(y.to_vector() == y_unrolled.to_vector());
  // Layer i's updated statistics are slice i of the stacked ones.
  const Variables sliced = unrolled_variables(stats, 3);
  REQUIRE(sliced.paths() == stats_unrolled.paths());
  for (const std::string& path : sliced.paths()) {
    INFO(path);
    CHECK(sliced.at(path).to_vector() == stats_unrolled.at(path).to_vector());
  }
  CHECK(stats.at("batch_stats/Scan_0/BatchNorm_0/mean").to_vector() !=
        vars.at("batch_stats/Scan_0/BatchNorm_0/mean").to_vector());
}

TEST_CASE("nn::Scan broadcasts random streams unless split_rngs names them") {
  const Tensor x = zeros(Shape{64});
  struct Broadcast {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::scan(scan_test::DropBlock{}, 3), t); }
  };
  struct Split {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return s(nn::Scan<scan_test::DropBlock>{.module = {}, .length = 3, .split_rngs = {"params", "dropout"}}, t);
    }
  };
  // Broadcast (Linen's default): every layer drops the same units, so each element is 0 or 3 x 2.
  const auto b = nn::apply(Broadcast{}, Variables{}, Rngs{{"dropout", Key(9)}}, x).to_vector();
  CHECK(std::all_of(b.begin(), b.end(), [](float v) { return v == 0.0f || v == 6.0f; }));
  CHECK(std::count(b.begin(), b.end(), 6.0f) > 0);
  // Split: each layer its own mask, so some element is kept by one or two layers only.
  const auto sp = nn::apply(Split{}, Variables{}, Rngs{{"dropout", Key(9)}}, x).to_vector();
  CHECK(std::any_of(sp.begin(), sp.end(), [](float v) { return v == 2.0f || v == 4.0f; }));
}

TEST_CASE("nn::Scan: a bad length, a block changing the carry's shape, or variables of another length") {
  const Tensor x = pattern(Shape{2, 8});
  check_throws_with<ValueError>([&] { (void)nn::init(scan_test::Stacked{.length = 0}, Key(0), x); },
                                {"weft::nn::Scan: length must be positive, got 0", "Scan at \"/Scan_0\"",
                                 ".length = 6"});
  check_throws_with<ValueError>([&] { (void)nn::init(scan_test::Stacked{.length = -2}, Key(0), x); },
                                {"got -2"});
  struct Widen {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::scan(scan_test::Widening{}, 2), t); }
  };
  check_throws_with<ShapeError>([&] { (void)nn::init(Widen{}, Key(0), x); },
                                {"weft::nn::Scan: layer 0 of Scan at \"/Scan_0\" returned shape (2, 5) float32",
                                 "for a carry of shape (2, 8) float32", "must return a carry of its input's shape"});
  const Variables three = nn::init(scan_test::Stacked{}, Key(0), x);
  check_throws_with<ShapeError>([&] { (void)nn::apply(scan_test::Stacked{.length = 2}, three, x); },
                                {"weft::nn::Scan: variable \"params/Scan_0/Dense_0/bias\" has shape (3, 8)",
                                 "leading axis of 2", "init made for a scan of the same length"});
}
