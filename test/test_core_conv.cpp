// core::conv and the pooling layers: Flax's semantics and defaults, against closed forms and
// finite differences.
#include <vector>

#include "core_testing.hpp"
#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using namespace weft::literals;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;
namespace init = weft::core::initializers;
using weft::testing::kRootFirst;
using weft::testing::lecun_normal_values;
using weft::testing::init_and_check_apply;

// ------------------------------------------------------------------------------------------- conv

TEST_CASE("conv: VALID and SAME with ones (Flax test_conv, in 2-D)") {
  const Tensor x = ones(Shape{1, 8, 8, 3});
  const auto valid =
      partial(core::conv, "features"_kw = 4, "kernel_size"_kw = std::vector<std::int64_t>{3, 3},
              "padding"_kw = Padding("VALID"), "kernel_init"_kw = init::ones(), "bias_init"_kw = init::ones());
  auto [y, variables] = init_and_check_apply(valid, Key(0), x);
  CHECK(variables.at("params/kernel").shape() == Shape{3, 3, 3, 4});
  CHECK(variables.at("params/bias").shape() == Shape{4});
  check_close(y, std::vector<float>(6 * 6 * 4, 28.0f), Shape{1, 6, 6, 4});  // 3 * 3 * 3 + 1

  const auto same = partial(
      core::conv,
      core::ConvOptions{.features = 4, .kernel_size = {3, 3}, .kernel_init = init::ones(), .bias_init = init::ones()});
  const Tensor ys = core::init(same)(Key(0), x).first;
  REQUIRE(ys.shape() == Shape{1, 8, 8, 4});
  const auto v = ys.to_vector();
  auto at = [&](int i, int j) { return v[static_cast<std::size_t>((i * 8 + j) * 4)]; };
  CHECK(at(0, 0) == 13.0f);  // corner: 2 * 2 * 3 + 1
  CHECK(at(0, 3) == 19.0f);  // edge: 2 * 3 * 3 + 1
  CHECK(at(4, 4) == 28.0f);  // interior
  CHECK(at(7, 7) == 13.0f);
}

TEST_CASE("conv: grouped convolution (Flax test_group_conv, in 2-D)") {
  const Tensor x = ones(Shape{1, 8, 8, 4});
  const auto layer = partial(core::conv, core::ConvOptions{.features = 4,
                                                           .kernel_size = {3, 3},
                                                           .padding = "VALID",
                                                           .feature_group_count = 2,
                                                           .kernel_init = init::ones(),
                                                           .bias_init = init::ones()});
  auto [y, variables] = init_and_check_apply(layer, Key(0), x);
  CHECK(variables.at("params/kernel").shape() == Shape{3, 3, 2, 4});
  check_close(y, std::vector<float>(6 * 6 * 4, 19.0f), Shape{1, 6, 6, 4});  // 3 * 3 * 2 + 1
}

TEST_CASE("conv: default lecun_normal kernel, strides and dilation reach conv2d, one image without batch") {
  const Tensor x = pattern(Shape{2, 7, 6, 3});
  const core::ConvOptions options{.features = 5, .kernel_size = {3, 2}, .strides = {2, 1}, .kernel_dilation = {1, 2}};
  auto [y, variables] = init_and_check_apply(partial(core::conv, options), Key(4), x);
  const Tensor kernel = variables.at("params/kernel");
  check_close(kernel, lecun_normal_values(fold_in(Key(4), kRootFirst), Shape{3, 2, 3, 5}, 3.0 * 2.0 * 3.0), 0.0f, 0.0f);
  check_close(y, conv2d(x, kernel, Conv2dOptions{.strides = {2, 1}, .padding = "SAME", .dilation = {1, 2}}));
  // (height, width, channels): Flax adds a batch axis and removes it again.
  const Tensor one = reshape(slice_axis(x, 0, 1, 2), Shape{7, 6, 3});
  const Tensor y1 = core::apply(partial(core::conv, options))(variables, one);
  REQUIRE(y1.shape() == Shape{4, 6, 5});
  check_close(y1, reshape(slice_axis(y, 0, 1, 2), Shape{4, 6, 5}));
  // Gradient with respect to the input.
  const Tensor w = pattern(y.shape(), -1.0f, 1.0f, 2);
  check_gradient([&](const Tensor& t) { return sum(core::apply(partial(core::conv, options))(variables, t) * w); }, x);
}

TEST_CASE("conv: bad options are errors naming the layer and the fix") {
  const Tensor x = ones(Shape{1, 5, 5, 3});
  check_throws_with<ValueError>(
      [&] {
        (void)core::init(partial(
            core::conv, core::ConvOptions{.features = 4, .kernel_size = {3, 3}, .feature_group_count = 2}))(Key(0), x);
      },
      {"core::conv", "feature_group_count 2", "input channels (3)"});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::conv, 4, std::vector<std::int64_t>{3}))(Key(0), x); },
      {"core::conv", "kernel_size", "(3,)"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::init(partial(core::conv, 4, std::vector<std::int64_t>{3, 3}))(Key(0), ones(Shape{5, 3}));
      },
      {"core::conv", "(5, 3)"});
}

TEST_CASE("max_pool and avg_pool take Flax's (inputs, window_shape, strides, padding)") {
  const Tensor x = reshape(arange(16), Shape{1, 4, 4, 1});
  check_close(core::max_pool(x, {2, 2}, {2, 2}), {5, 7, 13, 15}, Shape{1, 2, 2, 1});
  check_close(core::avg_pool(x, {2, 2}, {2, 2}), {2.5f, 4.5f, 10.5f, 12.5f}, Shape{1, 2, 2, 1});
  CHECK(core::max_pool(x, {2, 2}).shape() == Shape{1, 3, 3, 1});  // strides default to 1
  // SAME padding: the last window sees one padded row and column.
  const Tensor with_pad = core::avg_pool(x, {2, 2}, {2, 2}, "SAME");
  CHECK(with_pad.shape() == Shape{1, 2, 2, 1});
  const Tensor small = reshape(arange(9), Shape{1, 3, 3, 1});
  check_close(core::avg_pool(small, {2, 2}, {2, 2}, "SAME"), {2.0f, 7.0f / 4.0f, 13.0f / 4.0f, 8.0f / 4.0f},
              Shape{1, 2, 2, 1});
  check_close(core::avg_pool(small, {2, 2}, {2, 2}, "SAME", /*count_include_pad=*/false), {2.0f, 3.5f, 6.5f, 8.0f},
              Shape{1, 2, 2, 1});
  // One image without a batch axis.
  check_close(core::max_pool(reshape(x, Shape{4, 4, 1}), {2, 2}, {2, 2}), {5, 7, 13, 15}, Shape{2, 2, 1});
}
