// weft::partial (positional and keyword), records and nn module templates. Misuses that must not
// compile are in test/compile_fail/.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/normalization.hpp"
#include "weft/keywords.hpp"
#include "weft/nn/attention.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/nn/partial.hpp"
#include "weft/partial.hpp"
#include "weft/record.hpp"

namespace partial_test {

// Stand-ins for weft's layers and modules (the real ones live in core/ and nn/).
struct Scope {
  std::vector<std::string> log;
};

struct DropoutOptions {
  float rate = 0.5f;
  std::optional<bool> deterministic;
  std::string rng_collection = "dropout";
};

// Returns a readable account of what it was given, so tests compare one string.
inline std::string dropout(const DropoutOptions& o, Scope& s, const std::string& x) {
  s.log.push_back(x);
  return x + " rate=" + std::to_string(o.rate).substr(0, 4) +
         " det=" + (o.deterministic ? (*o.deterministic ? "1" : "0") : "none") + " rng=" + o.rng_collection;
}

struct DenseOptions {
  weft::required<std::int64_t> features;
  bool use_bias = true;
  int scale;  // no initializer and not required: value-initialised (0)
};

// A core layer in the style weft's will have: an inline constexpr function object with overloads
// that names its record.
struct dense_fn {
  using options_type = DenseOptions;
  constexpr std::int64_t operator()(const DenseOptions& o, std::int64_t x) const {
    return o.features.value() * x + (o.use_bias ? 1 : 0) + o.scale;
  }
  constexpr std::int64_t operator()(const DenseOptions& o, std::int64_t x, std::int64_t y) const {
    return (*this)(o, x) * 1000 + y;
  }
};
inline constexpr dense_fn dense{};

struct Affine {
  int factor = 1;
  int offset = 0;
};
constexpr int affine(Affine a, int x) { return a.factor * x + a.offset; }
struct affine_fn {
  using options_type = Affine;
  constexpr int operator()(const Affine& a, int x) const { return affine(a, x); }
};

struct Holder {
  std::unique_ptr<int> ptr;
  int extra = 0;
};
inline int read_holder(Holder h) { return (h.ptr ? *h.ptr : -1) + h.extra; }

// Module-like aggregates: fields are attributes.
struct Dense {
  weft::required<std::int64_t> features;
  bool use_bias = true;
  std::int64_t operator()(std::int64_t x) const { return features * x + (use_bias ? 1 : 0); }
  friend bool operator==(const Dense&, const Dense&) = default;
};

struct Dropout {
  float rate = 0;
  std::optional<bool> deterministic{};  // unset; the initializer keeps -Wextra quiet on `Dropout{.rate = r}`
  std::string rng_collection = "dropout";
  friend bool operator==(const Dropout&, const Dropout&) = default;
};

constexpr int add3(int a, int b, int c) { return a * 100 + b * 10 + c; }

// Reports the value category and constness it sees for itself and for each argument.
struct probe {
  template <class T>
  static std::string category() {
    using U = std::remove_reference_t<T>;
    std::string s = std::is_const_v<U> ? "const " : "";
    return s + (std::is_lvalue_reference_v<T> ? "lvalue" : "rvalue");
  }
  template <class... A>
  std::string report(std::string self, A&&...) const {
    std::string out = self;
    ((out += ", " + category<A&&>()), ...);
    return out;
  }
  template <class... A>
  std::string operator()(A&&... a) & { return report("lvalue", std::forward<A>(a)...); }
  template <class... A>
  std::string operator()(A&&... a) const& { return report("const lvalue", std::forward<A>(a)...); }
  template <class... A>
  std::string operator()(A&&... a) && { return report("rvalue", std::forward<A>(a)...); }
  template <class... A>
  std::string operator()(A&&... a) const&& { return report("const rvalue", std::forward<A>(a)...); }
};

struct Counter {
  int n = 0;
  int bump(int by) { return n += by; }
};

// A required field whose type carries another field's name (test_partial's name check must catch it).
struct MisnamedRequired {
  weft::required<std::int64_t, "feature"> features;
};
}  // namespace partial_test

WEFT_RECORD(partial_test::DropoutOptions, rate, deterministic, rng_collection);
WEFT_RECORD(partial_test::DenseOptions, features, use_bias, scale);
WEFT_RECORD(partial_test::Affine, factor, offset);
WEFT_RECORD(partial_test::Holder, ptr, extra);
WEFT_RECORD(partial_test::Dense, features, use_bias);
WEFT_RECORD(partial_test::Dropout, rate, deterministic, rng_collection);
WEFT_RECORD(partial_test::MisnamedRequired, features);

using namespace partial_test;
using namespace weft::literals;
using weft::required;

namespace {

template <class T>
concept brace_default_constructible = requires { T{}; };

// --- compile-time facts --------------------------------------------------------------------

// Flattening: a partial of a partial has the type of the flat partial.
static_assert(std::is_same_v<decltype(weft::partial(weft::partial(add3, 1), 2)), decltype(weft::partial(add3, 1, 2))>);
static_assert(std::is_same_v<decltype(weft::partial(weft::partial(add3), 1)), decltype(weft::partial(add3, 1))>);
static_assert(std::is_same_v<decltype(weft::partial(add3, 1, 2)), weft::bound_front<int (*)(int, int, int), int, int>>);
static_assert(std::is_same_v<decltype(weft::partial(weft::partial(affine, "factor"_kw = 2), "offset"_kw = 1)),
                             decltype(weft::partial(affine, "factor"_kw = 2, "offset"_kw = 1))>);
static_assert(std::is_same_v<decltype(weft::partial(weft::partial(dense, "features"_kw = 2, 5),
                                                   "use_bias"_kw = false, 6)),
                             decltype(weft::partial(dense, "features"_kw = 2, 5, "use_bias"_kw = false, 6))>);
static_assert(std::is_same_v<decltype(weft::partial(weft::partial(affine), "factor"_kw = 2)),
                             decltype(weft::partial(affine, "factor"_kw = 2))>);

// constexpr wherever f is.
constexpr auto add_12 = weft::partial(add3, 1, 2);
static_assert(add_12(3) == 123);
static_assert(weft::partial(add_12, 4)() == 124);
constexpr auto triple = weft::partial(affine, "factor"_kw = 3);
static_assert(triple(2) == 6);
static_assert(triple("offset"_kw = 1, 2) == 7);
static_assert(triple(2, "offset"_kw = 1) == 7);
static_assert(weft::partial(affine_fn{}, "factor"_kw = 3)(2) == 6);
static_assert(weft::nn::partial<Affine>("offset"_kw = 4)("factor"_kw = 2).factor == 2);

// The record type: options_type first, else the first parameter.
static_assert(std::is_same_v<weft::options_type_t<dense_fn>, DenseOptions>);
static_assert(std::is_same_v<weft::options_type_t<decltype(dropout)>, DropoutOptions>);
static_assert(std::is_same_v<weft::options_type_t<decltype(&affine)>, Affine>);
static_assert(std::is_same_v<decltype(weft::partial(dropout, "rate"_kw = 0.1f))::record_type, DropoutOptions>);

// Keywords: the name is in the type.
static_assert(std::is_same_v<decltype("rate"_kw = 0.1f), weft::kwarg<weft::fixed_string("rate"), float>>);
static_assert(std::is_same_v<decltype("rng"_kw = "x"), weft::kwarg<weft::fixed_string("rng"), const char*>>);
static_assert(std::is_same_v<decltype(weft::kw<"rate">), const weft::keyword<weft::fixed_string("rate")>>);
static_assert(("rate"_kw = 2).value == 2);
static_assert(weft::keyword_argument<decltype("a_1"_kw = 1)&>);
static_assert(!weft::keyword_argument<int>);

// Records.
static_assert(weft::record<DropoutOptions> && weft::record<Dense>);
static_assert(!weft::record<int> && !weft::record<Scope>);
static_assert(weft::field_names<Dense>.size() == 2 && weft::field_names<Dense>[1] == "use_bias");
static_assert(weft::has_field<Dropout, "rng_collection"> && !weft::has_field<Dropout, "rng">);
static_assert(std::is_same_v<weft::field_t<Dense, "features">, required<std::int64_t>>);
static_assert(std::is_same_v<weft::field_t<DropoutOptions, "deterministic">, std::optional<bool>>);
// required<T>: omitted in aggregate initialisation does not compile; given, it does.
static_assert(!brace_default_constructible<Dense>);
static_assert(!brace_default_constructible<DenseOptions>);
static_assert(brace_default_constructible<Dropout>);
static_assert(std::is_convertible_v<int, required<std::int64_t>>);
static_assert(std::is_convertible_v<const char*, required<std::string>>);
static_assert(!std::is_convertible_v<std::string, required<int>>);

// Every required field of weft's own records carries its own name (record.hpp: the error for a
// field left out of aggregate initialisation names it), so the two cannot drift apart.
template <weft::record R>
constexpr bool required_fields_carry_their_names() {
  return boost::hana::unpack(boost::hana::accessors<R>(), [](auto... field) {
    return ((!weft::is_required_v<std::remove_cvref_t<decltype(boost::hana::second(field)(std::declval<R&>()))>> ||
             weft::required_name_v<std::remove_cvref_t<decltype(boost::hana::second(field)(std::declval<R&>()))>> ==
                 std::string_view(boost::hana::to<const char*>(boost::hana::first(field)))) &&
            ...);
  });
}
static_assert(required_fields_carry_their_names<weft::nn::Dense>() &&
              required_fields_carry_their_names<weft::nn::DenseGeneral>() &&
              required_fields_carry_their_names<weft::nn::Embed>() &&
              required_fields_carry_their_names<weft::nn::Conv>() &&
              required_fields_carry_their_names<weft::nn::Dropout>() &&
              required_fields_carry_their_names<weft::nn::MultiHeadDotProductAttention>() &&
              required_fields_carry_their_names<weft::nn::SelfAttention>());
static_assert(required_fields_carry_their_names<weft::core::DenseOptions>() &&
              required_fields_carry_their_names<weft::core::DenseGeneralOptions>() &&
              required_fields_carry_their_names<weft::core::EmbedOptions>() &&
              required_fields_carry_their_names<weft::core::ConvOptions>() &&
              required_fields_carry_their_names<weft::core::DropoutOptions>() &&
              required_fields_carry_their_names<weft::core::BatchNormOptions>() &&
              required_fields_carry_their_names<weft::core::MultiHeadDotProductAttentionOptions>());
// A field whose type carries another name fails the check.
static_assert(!required_fields_carry_their_names<MisnamedRequired>());

// Positional partials are SFINAE-friendly, as std::bind_front.
static_assert(std::is_invocable_v<decltype(add_12), int>);
static_assert(!std::is_invocable_v<decltype(add_12), std::string>);
static_assert(!std::is_invocable_v<decltype(add_12)>);

}  // namespace

TEST_CASE("partial: bind_front with positional arguments") {
  CHECK(weft::partial(add3)(1, 2, 3) == 123);
  CHECK(weft::partial(add3, 1)(2, 3) == 123);
  CHECK(weft::partial(add3, 1, 2, 3)() == 123);
  auto twice = weft::partial([](const std::string& a, const std::string& b) { return a + b + a; }, std::string("x"));
  CHECK(twice("y") == "xyx");
  CHECK(twice("z") == "xzx");  // the bound copy is reused, unchanged

  // Member function pointers go through std::invoke.
  Counter c;
  auto bump = weft::partial(&Counter::bump, std::ref(c));
  CHECK(bump(2) == 2);
  CHECK(bump(3) == 5);
  CHECK(c.n == 5);
}

TEST_CASE("partial: forwarding follows the partial's value category and the call's") {
  auto p = weft::partial(probe{}, 1);
  const auto& cp = p;
  int lvalue = 0;
  CHECK(p() == "lvalue, lvalue");
  CHECK(cp() == "const lvalue, const lvalue");
  CHECK(std::move(p)() == "rvalue, rvalue");
  CHECK(std::move(cp)() == "const rvalue, const rvalue");
  CHECK(p(lvalue, 2) == "lvalue, lvalue, lvalue, rvalue");
  CHECK(cp(std::as_const(lvalue)) == "const lvalue, const lvalue, const lvalue");
  CHECK(p(std::move(lvalue)) == "lvalue, lvalue, rvalue");
  // Flattening keeps the behaviour: every bound argument follows the partial's category.
  auto q = weft::partial(p, 2);
  CHECK(std::move(q)(3) == "rvalue, rvalue, rvalue, rvalue");
}

TEST_CASE("partial: move-only arguments and references") {
  auto sink = [](std::unique_ptr<int> a, int b) { return *a + b; };
  auto p = weft::partial(sink, std::make_unique<int>(40));
  static_assert(!std::is_copy_constructible_v<decltype(p)>);
  static_assert(!std::is_invocable_v<decltype(p)&, int>);  // would copy the unique_ptr
  static_assert(std::is_invocable_v<decltype(p)&&, int>);
  CHECK(std::move(p)(2) == 42);

  auto peek = weft::partial([](const std::unique_ptr<int>& a, int b) { return *a + b; }, std::make_unique<int>(1));
  CHECK(peek(1) == 2);
  CHECK(peek(2) == 3);
  // Flattening an rvalue partial moves its bound arguments.
  auto peek2 = weft::partial(std::move(peek), 5);
  CHECK(peek2() == 6);

  // Bound arguments are copies; std::ref binds a reference; call arguments are forwarded.
  int n = 1;
  auto inc = [](int& x, int by) { x += by; return x; };
  auto by_copy = weft::partial([](int x, int by) { x += by; return x; }, n);
  CHECK(by_copy(1) == 2);
  CHECK(n == 1);
  auto by_ref = weft::partial(inc, std::ref(n));
  CHECK(by_ref(2) == 3);
  CHECK(n == 3);
  auto late = weft::partial(inc);
  CHECK(late(n, 4) == 7);
  CHECK(n == 7);
}

TEST_CASE("partial: noexcept follows the function") {
  auto nothrow = weft::partial([](int a, int b) noexcept { return a + b; }, 1);
  auto may_throw = weft::partial([](int a, int b) { return a + b; }, 1);
  static_assert(noexcept(nothrow(2)));
  static_assert(!noexcept(may_throw(2)));
  CHECK(nothrow(2) == 3);
  CHECK(may_throw(2) == 3);
}

TEST_CASE("partial: keywords fill the record, in any order, defaults for the rest") {
  Scope s;
  auto drop = weft::partial(dropout, "rate"_kw = 0.1f);
  CHECK(drop("deterministic"_kw = true, s, "x") == "x rate=0.10 det=1 rng=dropout");
  CHECK(drop(s, "y") == "y rate=0.10 det=none rng=dropout");
  CHECK(drop(s, "z", "rng_collection"_kw = "noise") == "z rate=0.10 det=none rng=noise");
  CHECK(s.log == std::vector<std::string>{"x", "y", "z"});

  auto a = weft::partial(dropout, "rate"_kw = 0.25, "deterministic"_kw = false);   // double converts to float
  auto b = weft::partial(dropout, "deterministic"_kw = false, "rate"_kw = 0.25f);
  CHECK(a(s, "x") == "x rate=0.25 det=0 rng=dropout");
  CHECK(b(s, "x") == a(s, "x"));
  // Keywords at the call, in any order and anywhere among the positional arguments.
  auto rng = weft::partial(dropout, "rng_collection"_kw = "r");
  CHECK(rng("deterministic"_kw = true, s, "rate"_kw = 0.75f, "x") == "x rate=0.75 det=1 rng=r");
  CHECK(rng(s, "deterministic"_kw = true, "x", "rate"_kw = 0.75f) == "x rate=0.75 det=1 rng=r");

  // Every field at its default when nothing is bound: a keyword partial with no keywords yet.
  auto defaults = weft::partial(weft::partial(dropout), "rng_collection"_kw = std::string("dropout"));
  CHECK(defaults(s, "x") == "x rate=0.50 det=none rng=dropout");
}

TEST_CASE("partial: keyword partials of function objects that name options_type") {
  // dense: features * x + use_bias + scale, and *1000 + y for the two-input overload.
  auto d = weft::partial(dense, "features"_kw = 3);
  CHECK(d(std::int64_t{2}) == 7);
  CHECK(d(2) == 7);
  CHECK(d(2, 5) == 7005);  // the other overload
  CHECK(d("use_bias"_kw = false, 2) == 6);
  CHECK(d("scale"_kw = 10, 2) == 17);
  // Required fields may also come at the call.
  auto late = weft::partial(dense, "use_bias"_kw = false);
  CHECK(late("features"_kw = 4, 2) == 8);
  // A non-generic lambda: its first parameter is the record.
  auto lam = weft::partial([](const Affine& a, int x) { return a.factor * x - a.offset; }, "offset"_kw = 1);
  CHECK(lam(5) == 4);
  CHECK(lam("factor"_kw = 3, 5) == 14);
  // A function pointer.
  int (*fp)(Affine, int) = affine;
  CHECK(weft::partial(fp, "factor"_kw = 4)(2) == 8);
}

TEST_CASE("partial: keywords and positional arguments mixed") {
  Scope s;
  // Positional arguments given to partial are bound after the record, before the call's.
  auto drop = weft::partial(dropout, "rate"_kw = 0.2f, std::ref(s));
  CHECK(drop("x") == "x rate=0.20 det=none rng=dropout");
  CHECK(drop("deterministic"_kw = false, "y") == "y rate=0.20 det=0 rng=dropout");
  CHECK(s.log == std::vector<std::string>{"x", "y"});

  auto d = weft::partial(dense, 2, "features"_kw = 5);  // dense(o, 2, y)
  CHECK(d(7) == 11007);
  CHECK(d("use_bias"_kw = false, 7) == 10007);

  // Flattening keeps keywords and positional arguments in order.
  auto flat = weft::partial(weft::partial(dense, "features"_kw = 2, std::int64_t{3}), "use_bias"_kw = false, 4);
  CHECK(flat() == 6004);
}

TEST_CASE("partial: keyword partials follow their value category") {
  // Called as an rvalue, the bound keyword values move into the record.
  auto p = weft::partial(read_holder, "ptr"_kw = std::make_unique<int>(41));
  static_assert(!std::is_copy_constructible_v<decltype(p)>);
  CHECK(std::move(p)("extra"_kw = 1) == 42);

  // Called as an lvalue, they are copied and stay bound.
  auto q = weft::partial(affine, "factor"_kw = 2);
  CHECK(q(1) == 2);
  CHECK(q(2) == 4);
  const auto& cq = q;
  CHECK(cq("offset"_kw = 1, 2) == 5);
}

TEST_CASE("partial: records by keyword") {
  // Not const: clang 14 crashes evaluating R() as a constant when a field has no initializer.
  auto o = weft::make_record<DenseOptions>("features"_kw = 8);
  CHECK(o.features == 8);
  CHECK(o.features.value() == 8);
  CHECK(o.use_bias);
  CHECK(o.scale == 0);
  const std::int64_t& f = o.features;  // implicit conversion to const T&
  CHECK(f == 8);

  const auto p = weft::with_fields(o, "use_bias"_kw = false, "scale"_kw = 2);
  CHECK(p.features == 8);
  CHECK(!p.use_bias);
  CHECK(p.scale == 2);
  CHECK(o.use_bias);  // the original is unchanged

  auto d = weft::make_record<DropoutOptions>();
  CHECK(d.rate == 0.5f);
  CHECK(!d.deterministic.has_value());
  CHECK(d.rng_collection == "dropout");
  weft::field<"rate">(d) = 0.3f;
  CHECK(d.rate == 0.3f);
  CHECK(weft::field<"rng_collection">(std::as_const(d)) == "dropout");

  // required<T> in designated initializers, and its comparisons.
  const Dense a{.features = 64};
  const Dense b{.features = 64, .use_bias = true};
  CHECK(a == b);
  CHECK(a.features == 64);
  CHECK(64 == a.features);
  CHECK(a.features != 65);
  CHECK(required<std::string>("abc") == std::string("abc"));
  CHECK(required<std::string>("abc").value().size() == 3);
}

TEST_CASE("partial: nn::partial module templates") {
  // Flax: dense = partial(nn.Dense, use_bias=False); dense(features=64)
  auto dense_template = weft::nn::partial<Dense>("use_bias"_kw = false);
  const Dense d = dense_template("features"_kw = 64);
  CHECK(d == Dense{.features = 64, .use_bias = false});
  CHECK(d(2) == 128);
  CHECK(dense_template("features"_kw = 3)(2) == 6);

  // Nothing required is missing: calling with no keywords is fine.
  auto drop = weft::nn::partial<Dropout>("rate"_kw = 0.1f, "deterministic"_kw = true);
  CHECK(drop() == Dropout{.rate = 0.1f, .deterministic = true, .rng_collection = "dropout"});
  CHECK(drop("rng_collection"_kw = "noise").rng_collection == "noise");
  CHECK(weft::nn::partial<Dropout>()() == Dropout{});

  // A template is a keyword partial: weft::partial refines it further.
  auto wide = weft::partial(dense_template, "features"_kw = 256);
  static_assert(std::is_same_v<decltype(wide()), Dense>);
  CHECK(wide() == Dense{.features = 256, .use_bias = false});
  static_assert(std::is_same_v<decltype(wide),
                               decltype(weft::nn::partial<Dense>("use_bias"_kw = false, "features"_kw = 256))>);
}

TEST_CASE("partial: nn::clone replaces attributes") {
  const Dense d{.features = 64};
  const Dense e = weft::nn::clone(d, "features"_kw = 32);
  CHECK(e == Dense{.features = 32, .use_bias = true});
  CHECK(d.features == 64);  // the original is unchanged
  CHECK(weft::nn::clone(d) == d);
  CHECK(weft::nn::clone(d, "use_bias"_kw = false, "features"_kw = 1) == Dense{.features = 1, .use_bias = false});

  const Dropout drop{.rate = 0.1f};
  const Dropout eval = weft::nn::clone(drop, "deterministic"_kw = true);
  CHECK(eval.rate == 0.1f);
  CHECK(eval.deterministic == std::optional<bool>(true));
  CHECK(eval.rng_collection == "dropout");
}
