// The fused dropout op (forward and backward), called by core::dropout.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "../random_internal.hpp"
#include "fused.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft::detail {

namespace {

/// y = x / keep where unit_float(bits) < keep, else 0; the bits are random_bits(key, n), drawn tile by
/// tile without storing them. When `mask` is given it receives the kept flags (1 or 0, for the
/// gradient): bytes in eager mode, floats in a weft::jit plan (an operand of elementwise kernels).
template <class M = std::uint8_t>
void dropout_kernel(Key key, float keep, const float* x, float* y, M* mask, std::int64_t n) {
  for_each_bits(key, n, [=](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
    // Everything the loops read is a local value or a restrict pointer: with a captured reference
    // the compiler must assume each store may change `keep`, and the loops stay scalar.
    const float k = keep;
    const float* __restrict px = x + off;
    float* __restrict py = y + off;
#pragma omp simd
    for (std::int64_t i = 0; i < count; ++i) py[i] = (unit_float(bits[i]) < k ? px[i] : 0.0f) / k;
    if (mask) {
      M* __restrict pm = mask + off;
#pragma omp simd
      for (std::int64_t i = 0; i < count; ++i) pm[i] = static_cast<M>(unit_float(bits[i]) < k);
    }
  });
}

/// dx = g / keep where kept, else 0.
void dropout_backward_kernel(const float* g, const std::uint8_t* mask, float keep, float* dx, std::int64_t n) {
  parallel_for(n, kParallelGrain, [=](std::int64_t b, std::int64_t e) {
    const float k = keep;
    const float* __restrict pg = g;
    const std::uint8_t* __restrict pm = mask;
    float* __restrict pd = dx;
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) pd[i] = (pm[i] != 0 ? pg[i] : 0.0f) / k;
  });
}

/// A key from the two words a weft::jit plan holds it as.
Key key_at(const void* words, ThreefryLayout layout) {
  const auto* w = static_cast<const std::int32_t*>(words);
  return Key::from_words({static_cast<std::uint32_t>(w[0]), static_cast<std::uint32_t>(w[1])}, layout);
}

/// dx = g / keep where the bits of `key` keep the element, else 0: the gradient as an op of its own,
/// the bits drawn again (for a dropout inside another traced op's body, where its flags are not a
/// value of the trace). The same values as dropout_backward_kernel over the forward pass's mask.
Tensor dropout_grad(const Tensor& g, Key key, float keep) {
  const auto run = [keep](Key k, const float* pg, float* pd, std::int64_t n) {
    for_each_bits(k, n, [=](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
      const float kp = keep;
      const float* __restrict src = pg + off;
      float* __restrict dst = pd + off;
#pragma omp simd
      for (std::int64_t i = 0; i < count; ++i) dst[i] = (unit_float(bits[i]) < kp ? src[i] : 0.0f) / kp;
    });
  };
  const auto lower = [run](const Tensor& g, Key key, const Tensor&) -> JitKernel {
    return {[run, n = g.size(), layout = key.layout()](const void* const* in, void* const* out) {
      run(key_at(in[1], layout), static_cast<const float*>(in[0]), static_cast<float*>(out[0]), n);
    }};
  };
  return traced_lowered(
      "dropout_grad",
      [run](const Tensor& g, Key key) {
        Tensor dx = empty(g.shape(), DType::float32);
        run(key, data<float>(g), mutable_data<float>(dx), g.size());
        return dx;
      },
      lower, g, key);
}

/// dx = g / keep where `kept` is 1 (the float flags the traced forward pass wrote), else 0: the
/// values dropout_backward_kernel gives, as an elementwise op a plan fuses with its neighbours.
Tensor dropout_flags_grad(const Tensor& g, const Tensor& kept, float keep) {
  const auto loop = [keep](const float* pg, const float* pm, float* pd, std::int64_t n) {
    const float k = keep;
    for (std::int64_t i = 0; i < n; ++i) pd[i] = (pm[i] != 0.0f ? pg[i] : 0.0f) / k;
  };
  const auto run = [loop](const float* pg, const float* pm, float* pd, std::int64_t n) {
    parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) { loop(pg + b, pm + b, pd + b, e - b); });
  };
  const auto lower = [run, loop](const Tensor& g, const Tensor&, const Tensor&) -> JitKernel {
    JitKernel k{[run, n = g.size()](const void* const* in, void* const* out) {
                  run(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]), static_cast<float*>(out[0]),
                      n);
                },
                {{0, 0}}};
    k.block = [loop](const float* const* in, float* out, std::int64_t, std::int64_t n) { loop(in[0], in[1], out, n); };
    k.aligned = {true, true};
    return k;
  };
  return traced_lowered(
      "dropout_grad",
      [run](const Tensor& g, const Tensor& kept) {
        Tensor dx = empty(g.shape(), DType::float32);
        run(data<float>(g), data<float>(kept), mutable_data<float>(dx), g.size());
        return dx;
      },
      lower, g, kept);
}

/// Dropout of a tracked input while a weft::jit trace records: one op with the output and the
/// kept flags (floats), the gradient an elementwise op over the flags. Cheaper than drawing the
/// bits again in the backward pass; the flags are 4 bytes an element where eager mode keeps 1.
Tensor traced_dropout(const Tensor& x, Key key, float keep) {
  const auto lower = [keep](const Tensor& x, Key key, const std::array<Tensor, 2>&) -> JitKernel {
    return {[keep, n = x.size(), layout = key.layout()](const void* const* in, void* const* out) {
      dropout_kernel(key_at(in[1], layout), keep, static_cast<const float*>(in[0]), static_cast<float*>(out[0]),
                     static_cast<float*>(out[1]), n);
    }};
  };
  const std::array<Tensor, 2> out = traced_lowered(
      "dropout",
      [keep](const Tensor& x, Key key) {
        std::array<Tensor, 2> r{empty(x.shape(), DType::float32), empty(x.shape(), DType::float32)};
        dropout_kernel(key, keep, data<float>(x), mutable_data<float>(r[0]), mutable_data<float>(r[1]), x.size());
        return r;
      },
      lower, detach(x), key);  // untracked: the op itself is a kernel, its gradient recorded below
  Tensor y = out[0];
  // Recorded on the op's output, outside its body: the backward reads the flags as a traced value.
  autodiff::record_ops(y, "dropout", {&x}, [kept = out[1], keep](const Tensor& g, std::span<Tensor> grads) {
    grads[0] = dropout_flags_grad(g, kept, keep);
  });
  return y;
}

}  // namespace

Tensor dropout(const Tensor& x, Key key, float keep) {
  if (recording() != nullptr && autodiff::any_tracked(x)) return traced_dropout(x, key, keep);
  const auto lower = [keep](const Tensor& x, Key key, const Tensor&) -> JitKernel {
    return {[keep, n = x.size(), layout = key.layout()](const void* const* in, void* const* out) {
      dropout_kernel(key_at(in[1], layout), keep, static_cast<const float*>(in[0]), static_cast<float*>(out[0]),
                     static_cast<std::uint8_t*>(nullptr), n);
    }};
  };
  return detail::traced_lowered("dropout", [=](const Tensor& x, Key key) -> Tensor {
    const std::int64_t n = x.size();
    Tensor y = empty(x.shape(), DType::float32);
    const bool tracked = autodiff::any_tracked(x);
    // Eager, the forward pass keeps a byte mask, cheaper than drawing again. Inside another traced
    // op's body (recording paused: a checkpointed function), the gradient is an op that draws the
    // bits again from the key.
    const bool keep_mask = tracked && active_tracer == nullptr;
    auto mask = keep_mask ? std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(n)) : nullptr;
    dropout_kernel(key, keep, data<float>(x), mutable_data<float>(y), mask ? mask->data() : nullptr, n);
    if (keep_mask) {
      autodiff::record(y, "dropout", {&x}, [mask, keep](const Tensor& g, std::span<Tensor> grads) {
        Tensor dx = empty(g.shape(), DType::float32);
        dropout_backward_kernel(data<float>(g), mask->data(), keep, mutable_data<float>(dx), g.size());
        grads[0] = dx;
      });
    } else if (tracked) {
      autodiff::record_ops(y, "dropout", {&x}, [key, keep](const Tensor& g, std::span<Tensor> grads) {
        grads[0] = dropout_grad(g, key, keep);
      });
    }
    return y;
  }, lower, x, key);
}

}  // namespace weft::detail
