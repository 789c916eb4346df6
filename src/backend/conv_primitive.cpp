#include "conv_primitive.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

namespace weft::backend {

namespace {

using dims_t = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;

/// Sets the calling thread's OpenMP thread count to 1 while it lives: oneDNN sizes a primitive's
/// work split by it at creation.
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

/// The HWIO kernel as oneDNN's weights: OIHW dimensions (GOIHW with groups) over HWIO memory.
dnnl::memory::desc hwio_desc(const ConvDims& d) {
  const std::int64_t og = d.out / d.groups, in = d.c / d.groups;
  if (d.groups == 1) return {dims_t{d.out, in, d.kh, d.kw}, f32, tag::hwio};
  // Element (g, o, i, kh, kw) lies at ((kh * KW + kw) * I + i) * O + g * O/G + o.
  return {dims_t{d.groups, og, in, d.kh, d.kw}, f32, dims_t{og, 1, d.out, d.kw * in * d.out, in * d.out}};
}

dims_t weights_dims(const ConvDims& d) {
  const std::int64_t og = d.out / d.groups, in = d.c / d.groups;
  return d.groups == 1 ? dims_t{d.out, in, d.kh, d.kw} : dims_t{d.groups, og, in, d.kh, d.kw};
}

/// oneDNN's implementations that gather patches inside their kernels. Its names are fields joined
/// by ':' ("brgconv:avx512_core", "x64:gemm:jit"): a "gemm" field is im2col and a GEMM, as weft's
/// own path, and a "ref" field plain loops.
bool is_direct(std::string_view implementation) {
  while (!implementation.empty()) {
    const std::size_t end = std::min(implementation.find(':'), implementation.size());
    const std::string_view field = implementation.substr(0, end);
    if (field == "gemm" || field == "ref") return false;
    implementation.remove_prefix(std::min(end + 1, implementation.size()));
  }
  return true;
}

}  // namespace

struct ConvPrimitive::Impl {
  ConvPassKind pass;
  dnnl::engine engine;
  dnnl::primitive primitive;
  dnnl::memory::desc src, dst, weights, user_weights, scratchpad;
  dnnl::primitive reorder;  // user HWIO -> weights (forward, input_grad) or weights -> HWIO (kernel_grad)
  std::string implementation;
};

std::optional<ConvPrimitive> ConvPrimitive::create(ConvPassKind pass, const ConvDims& d) {
  if (d.n <= 0 || d.c <= 0 || d.out <= 0 || d.oh <= 0 || d.ow <= 0 || d.groups <= 0) return std::nullopt;
  try {
    const OneThread one_thread;
    auto impl = std::make_shared<Impl>();
    impl->pass = pass;
    impl->engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    const dnnl::memory::desc src{dims_t{d.n, d.c, d.h, d.w}, f32, tag::nhwc};
    const dnnl::memory::desc dst{dims_t{d.n, d.out, d.oh, d.ow}, f32, tag::nhwc};
    const dnnl::memory::desc any_weights{weights_dims(d), f32, tag::any};
    // The high padding the output extents need: XLA may pad more than the last window reaches,
    // which oneDNN would count as a further output row.
    const dims_t strides{d.sh, d.sw}, dilation{d.dh - 1, d.dw - 1}, pad_low{d.pad_h, d.pad_w};
    const dims_t pad_high{std::max<std::int64_t>(0, (d.oh - 1) * d.sh + (d.kh - 1) * d.dh + 1 - d.h - d.pad_h),
                          std::max<std::int64_t>(0, (d.ow - 1) * d.sw + (d.kw - 1) * d.dw + 1 - d.w - d.pad_w)};
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // run may be called on several threads at once
    const dnnl::convolution_forward::primitive_desc forward(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
                                        any_weights, dst, strides, dilation, pad_low, pad_high),
        attr, impl->engine);
    impl->src = src;
    impl->dst = dst;
    impl->user_weights = hwio_desc(d);
    if (pass == ConvPassKind::forward) {
      impl->implementation = forward.impl_info_str();
      impl->weights = forward.weights_desc();
      impl->scratchpad = forward.scratchpad_desc();
      impl->primitive = dnnl::convolution_forward(forward);
    } else if (pass == ConvPassKind::input_grad) {
      const dnnl::convolution_backward_data::primitive_desc backward(
          dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src, any_weights, dst, strides,
                                                dilation, pad_low, pad_high),
          attr, impl->engine, forward);
      impl->implementation = backward.impl_info_str();
      impl->weights = backward.weights_desc();
      impl->scratchpad = backward.scratchpad_desc();
      impl->primitive = dnnl::convolution_backward_data(backward);
    } else {
      const dnnl::convolution_backward_weights::primitive_desc backward(
          dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src, any_weights, dst,
                                                   strides, dilation, pad_low, pad_high),
          attr, impl->engine, forward);
      impl->implementation = backward.impl_info_str();
      impl->weights = backward.diff_weights_desc();
      impl->scratchpad = backward.scratchpad_desc();
      impl->primitive = dnnl::convolution_backward_weights(backward);
    }
    if (!is_direct(impl->implementation)) return std::nullopt;
    impl->reorder = pass == ConvPassKind::kernel_grad
                        ? dnnl::reorder(dnnl::reorder::primitive_desc(impl->engine, impl->weights, impl->engine,
                                                                      impl->user_weights))
                        : dnnl::reorder(dnnl::reorder::primitive_desc(impl->engine, impl->user_weights, impl->engine,
                                                                      impl->weights));
    return ConvPrimitive(std::move(impl));
  } catch (const dnnl::error&) {
    return std::nullopt;  // no implementation for these dims: the caller keeps its im2col path
  }
}

std::size_t ConvPrimitive::kernel_floats() const noexcept { return impl_->weights.get_size() / sizeof(float); }

const char* ConvPrimitive::implementation() const noexcept { return impl_->implementation.c_str(); }

namespace {

void reorder(const dnnl::engine& engine, const dnnl::primitive& r, const dnnl::memory::desc& from, const float* src,
             const dnnl::memory::desc& to, float* dst) {
  dnnl::stream stream(engine);
  dnnl::memory a(from, engine, const_cast<float*>(src)), b(to, engine, dst);  // oneDNN's handles are not const
  r.execute(stream, {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}});
  stream.wait();
}

}  // namespace

void ConvPrimitive::pack_kernel(const float* hwio, float* packed) const {
  reorder(impl_->engine, impl_->reorder, impl_->user_weights, hwio, impl_->weights, packed);
}

void ConvPrimitive::unpack_kernel_grad(const float* packed, float* hwio) const {
  reorder(impl_->engine, impl_->reorder, impl_->weights, packed, impl_->user_weights, hwio);
}

void ConvPrimitive::run(const float* a, const float* b, float* out) const {
  const Impl& p = *impl_;
  const auto scratch = std::make_unique_for_overwrite<std::byte[]>(p.scratchpad.get_size());
  dnnl::stream stream(p.engine);
  const dnnl::memory scratchpad(p.scratchpad, p.engine, scratch.get());
  auto in = [&](const dnnl::memory::desc& desc, const float* data) {
    return dnnl::memory(desc, p.engine, const_cast<float*>(data));  // read only; oneDNN's handles are not const
  };
  if (p.pass == ConvPassKind::forward) {
    p.primitive.execute(stream, {{DNNL_ARG_SRC, in(p.src, a)},
                                 {DNNL_ARG_WEIGHTS, in(p.weights, b)},
                                 {DNNL_ARG_DST, dnnl::memory(p.dst, p.engine, out)},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad}});
  } else if (p.pass == ConvPassKind::input_grad) {
    p.primitive.execute(stream, {{DNNL_ARG_DIFF_DST, in(p.dst, a)},
                                 {DNNL_ARG_WEIGHTS, in(p.weights, b)},
                                 {DNNL_ARG_DIFF_SRC, dnnl::memory(p.src, p.engine, out)},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad}});
  } else {
    p.primitive.execute(stream, {{DNNL_ARG_SRC, in(p.src, a)},
                                 {DNNL_ARG_DIFF_DST, in(p.dst, b)},
                                 {DNNL_ARG_DIFF_WEIGHTS, dnnl::memory(p.weights, p.engine, out)},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad}});
  }
  stream.wait();
}

}  // namespace weft::backend
