#pragma once
// Helpers shared by the test suites: closeness checks and central finite differences.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "weft/autodiff.hpp"
#include "weft/ops.hpp"
#include "weft/tensor.hpp"

namespace weft::testing {

/// Every element of `actual` within atol + rtol * |expected| of `expected`, shapes equal.
inline void check_close(const Tensor& actual, const std::vector<float>& expected, const Shape& shape,
                        float atol = 1e-5f, float rtol = 1e-5f) {
  REQUIRE(actual.defined());
  REQUIRE(actual.shape() == shape);
  const auto v = actual.dtype() == DType::float32 ? actual.to_vector() : [&] {
    std::vector<float> f;
    for (auto i : actual.to_int_vector()) f.push_back(static_cast<float>(i));
    return f;
  }();
  REQUIRE(v.size() == expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i << ": got " << v[i] << ", expected " << expected[i]);
    const bool both_nan = std::isnan(v[i]) && std::isnan(expected[i]);
    const bool same_inf = std::isinf(v[i]) && v[i] == expected[i];
    CHECK((both_nan || same_inf || std::fabs(v[i] - expected[i]) <= atol + rtol * std::fabs(expected[i])));
  }
}

inline void check_close(const Tensor& actual, const Tensor& expected, float atol = 1e-5f, float rtol = 1e-5f) {
  check_close(actual, expected.to_vector(), expected.shape(), atol, rtol);
}

/// Central finite differences of a scalar function of one tensor, evaluated in float32 with step
/// `eps` (the function is evaluated twice per element).
inline Tensor numeric_gradient(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, float eps = 1e-2f) {
  std::vector<float> values = x.to_vector();
  std::vector<float> g(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float orig = values[i];
    values[i] = orig + eps;
    const double fp = f(Tensor(values, x.shape())).item();
    values[i] = orig - eps;
    const double fm = f(Tensor(values, x.shape())).item();
    values[i] = orig;
    g[i] = static_cast<float>((fp - fm) / (2.0 * eps));
  }
  return Tensor(g, x.shape());
}

/// weft::grad of f at x agrees with central differences. Float32 forward passes bound the
/// finite-difference error near eps^2 * f''' + ulp(f) / eps; the tolerances reflect that.
inline void check_gradient(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, float eps = 1e-2f,
                           float atol = 2e-3f, float rtol = 2e-2f) {
  const Tensor analytic = grad([&](const Tensor& t) { return f(t); })(x);
  const Tensor numeric = numeric_gradient(f, x, eps);
  check_close(analytic, numeric, atol, rtol);
}

/// A deterministic float32 tensor with values spread over [lo, hi) (a fixed pattern, no RNG).
inline Tensor pattern(const Shape& shape, float lo = -1.0f, float hi = 1.0f, int salt = 0) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double t = std::fmod(0.6180339887 * static_cast<double>(i + 1 + 7 * salt), 1.0);
    v[i] = lo + static_cast<float>(t) * (hi - lo);
  }
  return Tensor(v, shape);
}

/// Runs f and checks that it throws E with every one of `words` in the message.
template <class E, class F>
void check_throws_with(F&& f, std::initializer_list<std::string> words) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    const std::string msg = e.what();
    for (const auto& w : words) {
      INFO("message: " << msg << "\nmissing: " << w);
      CHECK(msg.find(w) != std::string::npos);
    }
  }
  CHECK_MESSAGE(thrown, "expected an exception");
}

/// Runs `run` (returning a std::vector<Tensor>) on 1 and then on 2 OpenMP threads, and checks that
/// the results are bit-identical; the thread count is restored afterwards.
template <class F>
void check_same_on_1_and_2_threads(const F& run) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(2);
  const auto two = run();
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    INFO("result " << i);
    CHECK(one[i].to_vector() == two[i].to_vector());
  }
}

}  // namespace weft::testing
