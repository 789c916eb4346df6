// nn::core_options: every module's attributes against its core layer's options. The records'
// fields and types are checked at compile time (a mismatch is a compile error, see
// test/compile_fail/nn_core_options_type_differs.cpp); here, that the defaults agree and that the
// copy carries every attribute and the merged flags.
#include <doctest/doctest.h>

#include <optional>
#include <string_view>
#include <type_traits>

#include "testing.hpp"
#include "weft/nn.hpp"

using namespace weft;
using namespace weft::literals;

namespace {

template <class T>
inline constexpr bool always_false = false;

template <class T>
void check_same(std::string_view name, const T& a, const T& b) {
  INFO("field " << name);
  if constexpr (std::is_same_v<T, core::Initializer>) {
    REQUIRE(static_cast<bool>(a) == static_cast<bool>(b));
    // Initializers have no identity to compare; the same draw from the same key must be equal.
    if (a) testing::check_close(a(Key(7), Shape{3, 4}), b(Key(7), Shape{3, 4}), 0.0f, 0.0f);
  } else if constexpr (std::is_same_v<T, core::Activation>) {
    REQUIRE(static_cast<bool>(a) == static_cast<bool>(b));
    // Functions have no identity either: the same values on the same input.
    const Tensor x = testing::pattern(Shape{5}, -2.0f, 2.0f);
    if (a) testing::check_close(a(x), b(x), 0.0f, 0.0f);
  } else if constexpr (std::is_same_v<T, Padding>) {
    CHECK(a.str() == b.str());
  } else if constexpr (std::equality_comparable<T>) {
    CHECK(a == b);
  } else {
    static_assert(always_false<T>, "add a comparison for this field type");
  }
}

/// Every field of `options` equals the module attribute of the same name, except `merged`.
template <fixed_string Merged = "", class Options, class Module>
void check_fields_equal(const Module& module, const Options& options) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto one = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
      constexpr auto name = weft::detail::field_name_at<Options, J>;
      if constexpr (name.view() != Merged.view()) {
        using Field = field_t<Options, name>;
        check_same<Field>(name.view(), Field(field<name>(module)), field<name>(options));
      }
    };
    (one(std::integral_constant<std::size_t, I>{}), ...);
  }(std::make_index_sequence<field_names<Options>.size()>{});
}

}  // namespace

TEST_CASE("each module's default attributes are its core layer's default options") {
  check_fields_equal(nn::Dense{.features = 3}, core::DenseOptions{.features = 3});
  check_fields_equal(nn::DenseGeneral{.features = {2, 3}}, core::DenseGeneralOptions{.features = {2, 3}});
  check_fields_equal(nn::Embed{.num_embeddings = 5, .features = 3},
                     core::EmbedOptions{.num_embeddings = 5, .features = 3});
  check_fields_equal(nn::Conv{.features = 4, .kernel_size = {3, 3}},
                     core::ConvOptions{.features = 4, .kernel_size = {3, 3}});
  check_fields_equal(nn::ConvTranspose{.features = 4, .kernel_size = {3}},
                     core::ConvTransposeOptions{.features = 4, .kernel_size = {3}});
  check_fields_equal<"einsum_str">(nn::Einsum{.shape = {2, 3}},
                                   core::EinsumOptions{.shape = {2, 3}, .einsum_str = "ab,bc->ac"});
  CHECK_FALSE(nn::Einsum{.shape = {2, 3}}.einsum_str.has_value());
  check_fields_equal(nn::LayerNorm{}, core::LayerNormOptions{});
  check_fields_equal(nn::GroupNorm{}, core::GroupNormOptions{});
  check_fields_equal(nn::RMSNorm{}, core::RMSNormOptions{});
  check_fields_equal(nn::LSTMCell{.features = 3}, core::LSTMCellOptions{.features = 3});
  check_fields_equal(nn::OptimizedLSTMCell{.features = 3}, core::OptimizedLSTMCellOptions{.features = 3});
  check_fields_equal(nn::GRUCell{.features = 3}, core::GRUCellOptions{.features = 3});
  check_fields_equal<"use_running_average">(nn::BatchNorm{}, core::BatchNormOptions{.use_running_average = false});
  check_fields_equal<"deterministic">(nn::Dropout{.rate = 0.25f},
                                      core::DropoutOptions{.rate = 0.25f, .deterministic = false});
  check_fields_equal<"deterministic">(nn::MultiHeadDotProductAttention{.num_heads = 2},
                                      core::MultiHeadDotProductAttentionOptions{.num_heads = 2});
  check_fields_equal<"deterministic">(nn::SelfAttention{.num_heads = 2},
                                      core::MultiHeadDotProductAttentionOptions{.num_heads = 2});
  // The merged flags: unset in the module (taken from the call), as Linen's None.
  CHECK_FALSE(nn::BatchNorm{}.use_running_average.has_value());
  CHECK_FALSE(nn::Dropout{.rate = 0.5f}.deterministic.has_value());
  CHECK_FALSE(nn::SelfAttention{.num_heads = 1}.deterministic.has_value());
}

TEST_CASE("core_options copies every attribute that was set, and the merged flags from the keywords") {
  const nn::Conv conv{.features = 8,
                      .kernel_size = {5, 3},
                      .strides = {2, 1},
                      .padding = "VALID",
                      .kernel_dilation = {1, 2},
                      .feature_group_count = 2,
                      .use_bias = false,
                      .kernel_init = core::initializers::ones(),
                      .bias_init = core::initializers::ones()};
  const auto options = nn::core_options<core::ConvOptions>(conv);
  CHECK(options.features == 8);
  CHECK(options.kernel_size.value() == std::vector<std::int64_t>{5, 3});
  CHECK(options.strides == std::vector<std::int64_t>{2, 1});
  CHECK(options.padding.is_valid());
  CHECK(options.kernel_dilation == std::vector<std::int64_t>{1, 2});
  CHECK(options.feature_group_count == 2);
  CHECK_FALSE(options.use_bias);
  testing::check_close(options.kernel_init(Key(0), Shape{2}), {1.0f, 1.0f}, Shape{2}, 0.0f, 0.0f);
  check_fields_equal(conv, options);

  const nn::BatchNorm bn{.axis = 1, .momentum = 0.5f, .epsilon = 1e-3f, .use_scale = false};
  const auto running = nn::core_options<core::BatchNormOptions>(bn, "use_running_average"_kw = true);
  CHECK(running.use_running_average == true);
  CHECK(running.axis == 1);
  CHECK(running.momentum == 0.5f);
  CHECK(running.epsilon == 1e-3f);
  CHECK_FALSE(running.use_scale);
  CHECK(nn::core_options<core::BatchNormOptions>(bn, "use_running_average"_kw = false).use_running_average == false);

  const nn::Dropout dropout{.rate = 0.3f, .broadcast_dims = {0}, .rng_collection = "noise"};
  const auto det = nn::core_options<core::DropoutOptions>(dropout, "deterministic"_kw = true);
  CHECK(det.deterministic == true);
  CHECK(det.rate == 0.3f);
  CHECK(det.broadcast_dims == std::vector<int>{0});
  CHECK(det.rng_collection == "noise");
}
