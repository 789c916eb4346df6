#include <limits>
#include <new>
#include <vector>

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

// The sanitizers' allocators abort on an allocation larger than they support instead of throwing.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAllocatorThrows = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kAllocatorThrows = false;
#else
constexpr bool kAllocatorThrows = true;
#endif
#elif defined(__SANITIZE_THREAD__)
constexpr bool kAllocatorThrows = false;
#else
constexpr bool kAllocatorThrows = true;
#endif

TEST_CASE("Shape: extents whose element count overflows int64 are a ShapeError naming them") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  check_throws_with<ShapeError>([] { (void)Shape{(1LL << 62) + 1, 4}; },
                                {"weft::Shape", "(4611686018427387905, 4)", "more than 2^63 - 1 elements"});
  check_throws_with<ShapeError>([] { (void)Shape{1LL << 32, 1LL << 32}; }, {"(4294967296, 4294967296)"});
  check_throws_with<ShapeError>([] { (void)Shape(std::vector<std::int64_t>{3037000500, 3037000500}); }, {"3037000500"});
  check_throws_with<ShapeError>([] { (void)Shape{2, 3}.with(0, 1LL << 62); }, {"(4611686018427387904, 3)"});
  // The largest counts that fit are exact.
  CHECK(Shape{kMax}.numel() == kMax);
  CHECK(Shape{3037000499, 3037000499}.numel() == 3037000499LL * 3037000499LL);  // the largest square below 2^63
  CHECK(Shape{1LL << 31, 1LL << 31, 1}.numel() == 1LL << 62);
  // A zero extent gives no elements; the other extents must still multiply within int64 (as NumPy
  // checks), so that every stride of the shape is exact too.
  CHECK(Shape{0, 1LL << 62}.numel() == 0);
  CHECK(Shape{1LL << 31, 0, 1LL << 31}.numel() == 0);
  check_throws_with<ShapeError>([] { (void)Shape{1LL << 40, 0, 1LL << 40}; }, {"(1099511627776, 0, 1099511627776)"});
}

TEST_CASE("Tensor: byte sizes are checked; a size that fits but cannot be allocated is std::bad_alloc") {
  check_throws_with<ShapeError>([] { (void)zeros(Shape{1LL << 62}); },
                                {"weft::Tensor", "float32", "(4611686018427387904,)", "more than 2^63 - 1 bytes"});
  check_throws_with<ShapeError>([] { (void)ones(Shape{1LL << 61, 2}, DType::int32); }, {"int32", "(2305843009213693952, 2)"});
  check_throws_with<ShapeError>([] { (void)full(Shape{(1LL << 61) + 1, 1, 2}, 1.0f); }, {"(2305843009213693953, 1, 2)"});
  check_throws_with<ShapeError>([] { (void)Tensor({1.f, 2.f, 3.f, 4.f}, Shape{(1LL << 62) + 1, 4}); },
                                {"(4611686018427387905, 4)"});
  check_throws_with<ShapeError>([] { (void)Tensor(std::vector<std::int32_t>{1, 2}, Shape{1LL << 62, 1}); },
                                {"int32", "(4611686018427387904, 1)"});
  // 2^62 bytes fit in the arithmetic but in no memory.
  if (kAllocatorThrows) CHECK_THROWS_AS((void)zeros(Shape{1LL << 60}), std::bad_alloc);
}

TEST_CASE("arange: counts and values without signed overflow") {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  check_throws_with<ShapeError>([] { (void)arange(kMin, kMax); },
                                {"arange(-9223372036854775808, 9223372036854775807, 1)", "18446744073709551615 elements"});
  check_throws_with<ShapeError>([] { (void)arange(kMax, kMin, -1); }, {"18446744073709551615 elements"});
  check_throws_with<ShapeError>([] { (void)arange(0, 1LL << 62); }, {"(4611686018427387904,)", "bytes"});
  // Ranges at the ends of int64: the count is exact, and the values (checked as int32 offsets).
  CHECK(arange(kMax - 2, kMax).size() == 2);
  CHECK(arange(kMin, kMin + 7, 3).size() == 3);
  CHECK(arange(kMin, kMax, kMax).size() == 3);  // kMin, -1, kMax - 1
  check_close(arange(kMax, kMin, kMin), {static_cast<float>(kMax), -1.0f}, Shape{2});
  check_close(arange(kMin, kMax, kMax), {static_cast<float>(kMin), -1.0f, static_cast<float>(kMax - 1)}, Shape{3});
  CHECK(arange(5, 0, -2, DType::int32).to_int_vector() == std::vector<std::int32_t>{5, 3, 1});
  CHECK(arange(2147483645, 2147483648, 1, DType::int32).to_int_vector() ==
        std::vector<std::int32_t>{2147483645, 2147483646, 2147483647});
  CHECK(arange(-2147483648LL, -2147483647LL, 1, DType::int32).to_int_vector() ==
        std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min()});
  check_throws_with<ValueError>([] { (void)arange(2147483646, 2147483649, 1, DType::int32); },
                                {"arange(2147483646, 2147483649, 1)", "2147483646 to 2147483648", "int32", "float32"});
  check_throws_with<ValueError>([] { (void)arange(-2147483649LL, 0, 1000, DType::int32); }, {"-2147483649"});
}

TEST_CASE("reshape: -1 inference, and shapes whose element count overflows are ShapeErrors") {
  CHECK(reshape(arange(12), {-1, 4}).shape() == Shape{3, 4});
  CHECK(reshape(arange(12), {2, -1, 3}).shape() == Shape{2, 2, 3});
  check_throws_with<ShapeError>([] { (void)reshape(arange(12), {-1, 5}); }, {"weft::reshape", "(12,)", "(-1, 5)"});
  check_throws_with<ShapeError>([] { (void)reshape(arange(12), {-1, -1}); }, {"more than one -1"});
  check_throws_with<ShapeError>([] { (void)reshape(arange(12), {-2, 6}); }, {"-2", "negative"});
  // Extents that multiply to the element count only modulo 2^64.
  check_throws_with<ShapeError>([] { (void)reshape(ones({4}), {(1LL << 62) + 1, 4}); }, {"(4611686018427387905, 4)"});
  check_throws_with<ShapeError>([] { (void)reshape(ones({4}), {-1, 1LL << 62, 1LL << 62}); },
                                {"weft::reshape", "(-1, 4611686018427387904, 4611686018427387904)", "2^63 - 1"});
  check_throws_with<ShapeError>([] { (void)reshape(zeros({0}), {-1, 1LL << 40, 1LL << 40}); }, {"weft::reshape", "2^63 - 1"});
  check_throws_with<ShapeError>([] { (void)reshape(zeros({0}), {0, -1}); }, {"cannot reshape", "(0, -1)"});
  CHECK(reshape(zeros({0}), {1LL << 40, 0}).shape() == Shape{1LL << 40, 0});
}
