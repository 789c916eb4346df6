#pragma once
// Internal: one pass of a 2-D convolution on oneDNN's convolution primitive, over a fixed number of
// images. ops/conv.cpp runs it per chunk of images, where it beats im2col and a GEMM
// (conv-backends, bench/README.md): the primitive gathers its patches inside its own kernel
// instead of writing them out (im2col) and adding them back (col2im).
//
// Every primitive is created for one thread, so that its arithmetic is the same whatever thread
// runs it: ops/conv.cpp spreads the chunks over the threads, as it does the im2col path's.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace weft::backend {

/// A convolution's geometry: NHWC input, HWIO kernel (O = groups * outputs per group), NHWC output.
struct ConvDims {
  std::int64_t n = 0, h = 0, w = 0, c = 0;  // input; c = groups * channels per group
  std::int64_t kh = 1, kw = 1, out = 0, groups = 1;
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1;  // strides; dilation as XLA counts it (1: none)
  std::int64_t pad_h = 0, pad_w = 0;            // low padding; the high side follows from oh, ow
  std::int64_t oh = 0, ow = 0;
};

enum class ConvPassKind { forward, input_grad, kernel_grad };

/// One pass over `dims.n` images, created once: a primitive takes longer to create than a small
/// convolution takes to run, so weft::jit plans keep theirs. Copies share the primitive; run may be
/// called from several threads at once.
///
/// The primitive keeps the kernel (and the kernel gradient) in a layout of its own choosing:
/// `pack_kernel` reorders an HWIO kernel into it, `unpack_kernel_grad` reorders a kernel gradient
/// back to HWIO, and `kernel_floats` is that layout's size.
class ConvPrimitive {
 public:
  /// The pass on oneDNN's direct convolution kernels; nullopt where oneDNN has none for these dims
  /// (or offers only its own im2col GEMM or its reference loops, which weft's im2col path matches).
  static std::optional<ConvPrimitive> create(ConvPassKind pass, const ConvDims& dims);

  [[nodiscard]] std::size_t kernel_floats() const noexcept;
  /// hwio (the kernel, O fastest) into `packed` (kernel_floats()); forward and input_grad only.
  void pack_kernel(const float* hwio, float* packed) const;
  /// forward: a = x, packed = the packed kernel, out = y. input_grad: a = dy, out = dx (written, not
  /// added). kernel_grad: a = x, b = dy, out = the packed kernel gradient (kernel_floats()).
  void run(const float* a, const float* b_or_packed, float* out) const;
  /// A packed kernel gradient (kernel_floats()) into HWIO; kernel_grad only.
  void unpack_kernel_grad(const float* packed, float* hwio) const;
  /// oneDNN's name for the kernel it chose, for benchmarks.
  [[nodiscard]] const char* implementation() const noexcept;

 private:
  struct Impl;
  explicit ConvPrimitive(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace weft::backend
