// Properties every core layer shares.
#include <vector>

#include "core_testing.hpp"
#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using weft::testing::drop;

// ------------------------------------------------------------------------------------ empty input

TEST_CASE("layers accept an empty batch") {
  const Tensor x = zeros(Shape{0, 3});
  CHECK(core::init(partial(core::dense, 2))(Key(0), x).first.shape() == Shape{0, 2});
  CHECK(core::init(partial(core::dense_general, std::vector<std::int64_t>{2, 2}))(Key(0), x).first.shape() ==
        Shape{0, 2, 2});
  CHECK(core::init(partial(core::layer_norm, core::LayerNormOptions{}))(Key(0), x).first.shape() == Shape{0, 3});
  CHECK(drop(0.5f, x, Key(0)).shape() == Shape{0, 3});
  CHECK(core::init(partial(core::embed, 4, 3))(Key(0), Tensor(std::vector<std::int32_t>{}, Shape{0})).first.shape() ==
        Shape{0, 3});
  const Tensor q = zeros(Shape{0, 2, 1, 4});
  CHECK(core::dot_product_attention(q, q, q).shape() == Shape{0, 2, 1, 4});
  CHECK(core::init(partial(core::conv, 2, std::vector<std::int64_t>{3, 3}))(Key(0), zeros(Shape{0, 4, 4, 1}))
            .first.shape() == Shape{0, 4, 4, 2});
}
