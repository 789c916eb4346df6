#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_throws_with;

TEST_CASE("Shape: extents, numel, equality, printing") {
  const Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s == Shape{2, 3, 4});
  CHECK_FALSE(s == Shape{2, 3});
  CHECK(s.dim(-1) == 4);
  CHECK(s.str() == "(2, 3, 4)");
  CHECK(Shape{}.str() == "()");
  CHECK(Shape{5}.str() == "(5,)");
  CHECK(Shape{}.numel() == 1);
  check_throws_with<ShapeError>([] { (void)Shape{1, 2, 3, 4, 5, 6, 7, 8, 9}; }, {"rank 9", "8"});
  check_throws_with<ShapeError>([] { (void)Shape{2, -1}; }, {"negative"});
  check_throws_with<ShapeError>([&] { (void)s.dim(3); }, {"axis 3", "rank 3"});
}

TEST_CASE("Tensor: construction from values, access, dtypes") {
  const Tensor t({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.rank() == 2);
  CHECK(t.size() == 6);
  CHECK(t.dtype() == DType::float32);
  CHECK(t.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});

  const Tensor labels(std::vector<std::int32_t>{3, 1, 4}, Shape{3});
  CHECK(labels.dtype() == DType::int32);
  CHECK(labels.to_int_vector() == std::vector<std::int32_t>{3, 1, 4});
  CHECK_THROWS_AS((void)labels.to_vector(), DTypeError);

  CHECK(Tensor(2.5f).rank() == 0);
  CHECK(Tensor(2.5f).item() == 2.5f);
  check_throws_with<ShapeError>([&] { (void)t.item(); }, {"exactly one element", "(2, 3)"});

  // Rank up to 8; a large tensor lives outside the inline buffer.
  const Tensor r6 = ones(Shape{1, 2, 1, 3, 1, 2});
  CHECK(r6.rank() == 6);
  CHECK(r6.size() == 12);
  const Tensor big = full(Shape{1000}, 7.0f);
  CHECK(big.to_vector()[999] == 7.0f);
}

TEST_CASE("Tensor: a value count that disagrees with the shape is a ShapeError") {
  check_throws_with<ShapeError>([] { (void)Tensor(std::vector<float>{1, 2, 3}, Shape{2, 2}); },
                                {"3", "(2, 2)", "4 elements"});
  check_throws_with<ShapeError>([] { (void)Tensor(std::vector<std::int32_t>{1}, Shape{2}); }, {"int32", "(2,)"});
}

TEST_CASE("Tensor: an empty (default) tensor is refused with a clear error") {
  const Tensor e;
  CHECK_FALSE(e.defined());
  check_throws_with<Error>([&] { (void)e.shape(); }, {"empty Tensor"});
  check_throws_with<Error>([&] { (void)(e + e); }, {"add", "empty Tensor"});
}

TEST_CASE("Tensor: factories") {
  check_close(zeros(Shape{2}), {0, 0}, Shape{2});
  check_close(ones(Shape{2, 1}), {1, 1}, Shape{2, 1});
  check_close(full(Shape{3}, 1.5f), {1.5f, 1.5f, 1.5f}, Shape{3});
  CHECK(full(Shape{2}, std::int32_t{4}).to_int_vector() == std::vector<std::int32_t>{4, 4});
  check_close(arange(4), {0, 1, 2, 3}, Shape{4});
  check_close(arange(5, 0, -2), {5, 3, 1}, Shape{3});
  CHECK(arange(3, DType::int32).to_int_vector() == std::vector<std::int32_t>{0, 1, 2});
  CHECK(arange(0).size() == 0);
  CHECK_THROWS_AS((void)arange(0, 3, 0), ValueError);
}

TEST_CASE("Tensor: printing shows shape, dtype and values") {
  const Tensor t({1.f, 2.f, 3.f, 4.f}, Shape{2, 2});
  const std::string s = t.str();
  CHECK(s.find("shape=(2, 2)") != std::string::npos);
  CHECK(s.find("float32") != std::string::npos);
  CHECK(s.find("[[1, 2],\n [3, 4]]") != std::string::npos);
  const std::string long_row = arange(2000).str();
  CHECK(long_row.find("[0, 1, 2, ..., 1997, 1998, 1999]") != std::string::npos);
  CHECK(arange(8).str().find("[0, 1, 2, 3, 4, 5, 6, 7]") != std::string::npos);  // small: all shown
}

TEST_CASE("Tensor: values are immutable and copies share the buffer") {
  const Tensor a({1.f, 2.f}, Shape{2});
  const Tensor b = a;  // cheap copy
  CHECK(b.values<float>().data() == a.values<float>().data());
  const Tensor c = a + 1.0f;
  CHECK(a.to_vector() == std::vector<float>{1, 2});  // the input is unchanged
  CHECK(c.to_vector() == std::vector<float>{2, 3});
  const Tensor big = arange(64);
  const Tensor r = reshape(big, Shape{8, 8});
  CHECK(r.values<float>().data() == big.values<float>().data());  // reshape shares a buffer
}
