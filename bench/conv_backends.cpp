// conv-backends: each pass of a 2-D convolution on weft's two paths, side by side (how conv2d
// chooses between them): im2col and a GEMM on the backend, and oneDNN's convolution primitives.
// One thread, float32, NHWC input, HWIO kernel, 3x3 window; the median of repeated runs.
//
//   conv-backends [--time SECONDS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <omp.h>

#include "../src/ops/conv_impl.hpp"
#include "weft/random.hpp"

namespace {

using namespace weft;
using detail::ConvPath;

/// The median milliseconds of f over about `seconds`.
double median_ms(const std::function<void()>& f, double seconds) {
  f();
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 5 ||
         (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds &&
          times.size() < 2000)) {
    const auto a = std::chrono::steady_clock::now();
    f();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

struct Case {
  std::int64_t n, h, w, c, out, stride;
  const char* padding;
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--time") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: conv-backends [--time SECONDS]\n");
      return 2;
    }
  }
  omp_set_num_threads(1);
  std::vector<Case> cases = {{32, 28, 28, 1, 32, 1, "VALID"}, {32, 13, 13, 32, 64, 1, "VALID"},  // conv_train_b32
                             {32, 32, 32, 64, 64, 2, "SAME"}};
  for (std::int64_t c : {1, 3, 8, 16, 32, 64, 128})
    for (std::int64_t o : {32, 128}) cases.push_back({32, 16, 16, c, o, 1, "VALID"});
  std::printf("milliseconds per pass, one thread: im2col + GEMM / oneDNN primitives (ratio)\n");
  std::printf("%-34s %-26s %-26s %-26s\n", "input NHWC -> O, 3x3", "forward", "input gradient", "kernel gradient");
  for (const Case& k : cases) {
    const Tensor x = uniform(Key(1), Shape{k.n, k.h, k.w, k.c}, -1.0f, 1.0f);
    const Tensor kernel = uniform(Key(2), Shape{3, 3, k.c, k.out}, -0.1f, 0.1f);
    const Conv2dOptions options{.strides = {k.stride, k.stride}, .padding = k.padding};
    const detail::ConvGeometry g = detail::conv2d_geometry(x.shape(), kernel.shape(), options);
    const Tensor dy = uniform(Key(3), Shape{k.n, g.win.oh, g.win.ow, k.out}, -1.0f, 1.0f);
    std::string line = std::to_string(k.n) + "x" + std::to_string(k.h) + "x" + std::to_string(k.w) + "x" +
                       std::to_string(k.c) + " -> " + std::to_string(k.out) + " s" + std::to_string(k.stride) + " " +
                       k.padding;
    std::printf("%-34s", line.c_str());
    const std::function<Tensor(ConvPath)> passes[] = {
        [&](ConvPath p) { return detail::conv2d_forward(x, kernel, g, p); },
        [&](ConvPath p) { return detail::conv2d_input_grad(dy, kernel, g, p); },
        [&](ConvPath p) { return detail::conv2d_kernel_grad(x, dy, g, p); }};
    for (const auto& pass : passes) {
      const double im2col = median_ms([&] { (void)pass(ConvPath::im2col); }, seconds);
      const double primitives = median_ms([&] { (void)pass(ConvPath::primitives); }, seconds);
      char cell[64];
      std::snprintf(cell, sizeof cell, "%.3f / %.3f (%.2f)", im2col, primitives, primitives / im2col);
      std::printf(" %-26s", cell);
    }
    std::printf("\n");
  }
}
