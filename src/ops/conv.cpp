// 2-D convolution with the semantics of lax.conv_general_dilated (NHWC input, HWIO kernel,
// cross-correlation), on the GEMM backend, and its gradients.
//
// Forward: the input's patches become the rows of a matrix (im2col), one row per output pixel,
// with columns ordered (group, kh, kw, i); each group is then one GEMM against the kernel, whose
// HWIO layout already is the [KH*KW*I, O] matrix the product needs. Backward: the kernel gradient
// is patches^T . dy, and the input gradient scatters dy . kernel^T back onto the input (col2im).
// Where oneDNN's convolution primitives are faster (primitives_win, as conv-backends measured it,
// bench/README.md), a pass runs on them instead, per chunk of images: they gather the patches
// inside their kernels.
//
// Determinism: the rows are cut into chunks whose size depends only on the problem, every chunk
// runs inside an OpenMP region (so oneDNN runs its GEMM on one thread: threaded, it may split the
// contraction across threads and tie the rounding to the thread count), and the kernel gradient's
// partial sums are added in a fixed order. The primitives are created for one thread and run per
// chunk of images, a fixed number of them, so the same holds for them.
#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <omp.h>

#include "../backend/conv_primitive.hpp"
#include "../backend/gemm.hpp"
#include "../checked.hpp"
#include "conv_impl.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

namespace detail {

namespace {

/// Patch floats per chunk: 512 KiB, which keeps a chunk's patches in L2 while its GEMM is still
/// large enough to run near the backend's peak.
constexpr std::int64_t kChunkFloats = std::int64_t{1} << 17;
/// At most this many partial kernel gradients (and at most kPartialFloats floats of them).
constexpr std::int64_t kMaxSlices = 16;
constexpr std::int64_t kPartialFloats = std::int64_t{1} << 22;

std::int64_t patch_cols(const ConvGeometry& g) { return g.win.kh * g.win.kw * g.win.c; }

std::int64_t rows_per_chunk(std::int64_t cols) { return std::max<std::int64_t>(1, kChunkFloats / std::max<std::int64_t>(cols, 1)); }

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

/// Calls f(i) for i in [0, chunks) so that every GEMM f makes runs on one thread (see the file
/// comment): inside an OpenMP parallel region when there are several chunks, else with the thread
/// count set to 1 around the loop. Rethrows the first exception a chunk threw once all have finished.
template <class F>
void run_chunks(std::int64_t chunks, F&& f) {
  if (chunks <= 0) return;
  const int threads = chunks == 1 || omp_in_parallel() ? 1 : detail::region_threads(omp_get_max_threads());
  if (threads == 1) {
    struct SingleThread {  // restores the caller's thread count, also when f throws
      int saved = omp_get_max_threads();
      SingleThread() { omp_set_num_threads(1); }
      ~SingleThread() { omp_set_num_threads(saved); }
      SingleThread(const SingleThread&) = delete;
      SingleThread& operator=(const SingleThread&) = delete;
    } const single;
    for (std::int64_t i = 0; i < chunks; ++i) f(i);
    return;
  }
  std::exception_ptr error;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < chunks; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(weft_conv_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

/// Rows [r0, r1) of the patch matrix into dst ([r1 - r0, KH*KW*C]); zeros where the window lies in
/// the padding.
void im2col(const float* x, const ConvGeometry& g, std::int64_t r0, std::int64_t r1, float* dst) {
  const Window2d& w = g.win;
  const std::int64_t in = g.in_per_group, block = w.kh * w.kw * in, cols = block * g.groups;
  const std::int64_t pixels = w.oh * w.ow;
  std::int64_t n = r0 / pixels, oh = (r0 % pixels) / w.ow, ow = r0 % w.ow;
  for (std::int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * cols;
    // One group, no dilation across columns, the window's columns all inside: each window row is
    // one contiguous run of KW * C input floats (a copy, not KW of them).
    const std::int64_t iw0 = w.in_col(ow, 0);
    const bool run = g.groups == 1 && w.dw == 1 && iw0 >= 0 && iw0 + w.kw <= w.w;
    for (std::int64_t kh = 0; kh < w.kh; ++kh) {
      const std::int64_t ih = w.in_row(oh, kh);
      const bool row_inside = ih >= 0 && ih < w.h;
      if (row_inside && run) {
        const float* __restrict s = x + ((n * w.h + ih) * w.w + iw0) * w.c;
        float* __restrict d = row + kh * w.kw * in;
        for (std::int64_t i = 0; i < w.kw * in; ++i) d[i] = s[i];
        continue;
      }
      for (std::int64_t kw = 0; kw < w.kw; ++kw) {
        const std::int64_t iw = w.in_col(ow, kw);
        float* d = row + (kh * w.kw + kw) * in;
        if (row_inside && iw >= 0 && iw < w.w) {
          const float* s = x + ((n * w.h + ih) * w.w + iw) * w.c;
          if (in == 1 && g.groups == 1) {
            *d = *s;  // one channel (a grey image): a library copy per element costs far more
          } else {
            for (std::int64_t gi = 0; gi < g.groups; ++gi) std::copy_n(s + gi * in, in, d + gi * block);
          }
        } else {
          for (std::int64_t gi = 0; gi < g.groups; ++gi) std::fill_n(d + gi * block, in, 0.0f);
        }
      }
    }
    if (++ow == w.ow) {
      ow = 0;
      if (++oh == w.oh) {
        oh = 0;
        ++n;
      }
    }
  }
}

/// Adds rows [r0, r1) of a patch-shaped matrix (src, [r1 - r0, KH*KW*C]) onto the input pixels they
/// were gathered from: the transpose of im2col. Rows and window positions are visited in order.
void col2im_add(const float* src, const ConvGeometry& g, std::int64_t r0, std::int64_t r1, float* dx) {
  const Window2d& w = g.win;
  const std::int64_t in = g.in_per_group, block = w.kh * w.kw * in, cols = block * g.groups;
  const std::int64_t pixels = w.oh * w.ow;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t n = r / pixels, oh = (r % pixels) / w.ow, ow = r % w.ow;
    const float* row = src + (r - r0) * cols;
    for (std::int64_t kh = 0; kh < w.kh; ++kh) {
      const std::int64_t ih = w.in_row(oh, kh);
      if (ih < 0 || ih >= w.h) continue;
      for (std::int64_t kw = 0; kw < w.kw; ++kw) {
        const std::int64_t iw = w.in_col(ow, kw);
        if (iw < 0 || iw >= w.w) continue;
        const float* s = row + (kh * w.kw + kw) * in;
        float* d = dx + ((n * w.h + ih) * w.w + iw) * w.c;
        for (std::int64_t gi = 0; gi < g.groups; ++gi)
          for (std::int64_t i = 0; i < in; ++i) d[gi * in + i] += s[gi * block + i];
      }
    }
  }
}

/// A chunk's patches: the input itself for a pointwise window, else im2col into `buffer`.
const float* patches_of(const float* x, const ConvGeometry& g, std::int64_t r0, std::int64_t r1,
                        std::unique_ptr<float[]>& buffer) {
  if (g.win.is_pointwise()) return x + r0 * g.win.c;
  if (!buffer) buffer = std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(rows_per_chunk(patch_cols(g)) * patch_cols(g)));
  im2col(x, g, r0, r1, buffer.get());
  return buffer.get();
}

}  // namespace

ConvGeometry conv2d_geometry(const Shape& x, const Shape& k, const Conv2dOptions& o) {
  const std::string where = "weft::conv2d: ";
  if (x.rank() != 4)
    throw ShapeError(fmt::format("{}the input must be NHWC (rank 4), got shape {}{}", where, x.str(),
                                 x.rank() == 3 ? "; add a batch axis with weft::reshape(x, {1, H, W, C})"
                                               : "; reshape it to (batch, height, width, channels)"));
  if (k.rank() != 4)
    throw ShapeError(fmt::format("{}the kernel must be HWIO (rank 4: height, width, in-channels / feature_group_count, "
                                 "out-channels), got shape {} for input {}",
                                 where, k.str(), x.str()));
  if (o.feature_group_count < 1)
    throw ValueError(fmt::format("{}feature_group_count must be >= 1, got {}", where, o.feature_group_count));
  const std::int64_t groups = o.feature_group_count;
  if (k[0] == 0 || k[1] == 0)
    throw ShapeError(fmt::format("{}the kernel {} has an empty spatial extent; its height and width must be >= 1",
                                 where, k.str()));
  if (x[3] % groups != 0)
    throw ShapeError(fmt::format("{}the input {} has C = {} channels, not a multiple of feature_group_count {}; every "
                                 "group takes C / feature_group_count channels",
                                 where, x.str(), x[3], groups));
  if (x[3] / groups != k[2]) {  // C = I * groups, without the product (groups may be near INT64_MAX)
    const auto expected = detail::checked_mul(k[2], groups);
    throw ShapeError(fmt::format("{}the input {} has C = {} channels but the kernel {} expects I * feature_group_count "
                                 "= {} * {} = {}; the kernel's axis 2 must be C / feature_group_count = {}",
                                 where, x.str(), x[3], k.str(), k[2], groups,
                                 expected ? fmt::format("{}", *expected) : "more than 2^63 - 1", x[3] / groups));
  }
  if (k[3] % groups != 0)
    throw ShapeError(fmt::format("{}the kernel {} has O = {} output channels, not a multiple of feature_group_count "
                                 "{}; every group produces O / feature_group_count channels",
                                 where, k.str(), k[3], groups));
  ConvGeometry g;
  g.win = window2d(x, k[0], k[1], o.strides, o.padding, o.dilation, "conv2d");
  g.groups = groups;
  g.in_per_group = k[2];
  g.out = k[3];
  return g;
}

namespace {

using backend::ConvPassKind;

/// A forward or input-gradient pass on the primitives runs its images in at most this many chunks.
constexpr std::int64_t kMaxImageChunks = 16;
/// A kernel gradient on the primitives gives each partial sum at least this many images: each
/// partial costs a reorder and a pass to add it.
constexpr std::int64_t kImagesPerSlice = 8;

std::int64_t kernel_size(const ConvGeometry& g) { return g.win.kh * g.win.kw * g.in_per_group * g.out; }

/// How a pass runs: on oneDNN's primitives, in `chunks` chunks of `images` images (the last one on
/// `last` where it is shorter), or, where `full` is empty, on im2col and the GEMM.
struct PassPlan {
  std::int64_t images = 0, chunks = 0;
  std::optional<backend::ConvPrimitive> full, last;

  [[nodiscard]] bool on_primitives() const noexcept { return full.has_value(); }
  /// Whether chunk `chunk` is the shorter last one, which runs on `last`.
  [[nodiscard]] bool on_last(std::int64_t chunk) const noexcept { return last && chunk + 1 == chunks; }
  [[nodiscard]] const backend::ConvPrimitive& primitive(std::int64_t chunk) const {
    return on_last(chunk) ? *last : *full;
  }
};

backend::ConvDims conv_dims(const ConvGeometry& g, std::int64_t images) {
  const Window2d& w = g.win;
  return {.n = images, .h = w.h, .w = w.w, .c = w.c, .kh = w.kh, .kw = w.kw, .out = g.out, .groups = g.groups,
          .sh = w.sh, .sw = w.sw, .dh = w.dh, .dw = w.dw, .pad_h = w.pad_h, .pad_w = w.pad_w, .oh = w.oh, .ow = w.ow};
}

/// The pass on oneDNN's primitives, or the im2col path's empty plan where oneDNN has no direct
/// kernel for it. The chunks depend on the problem only, never on the thread count (see the file
/// comment).
PassPlan primitive_plan(ConvPassKind pass, const ConvGeometry& g) {
  const Window2d& w = g.win;
  if (w.rows() * g.out == 0 || patch_cols(g) == 0) return {};
  const std::int64_t chunks =
      pass == ConvPassKind::kernel_grad
          ? std::clamp<std::int64_t>(
                std::min({kMaxSlices, kPartialFloats / kernel_size(g), ceil_div(w.n, kImagesPerSlice)}), 1, w.n)
          : std::min(w.n, kMaxImageChunks);
  PassPlan plan;
  plan.images = ceil_div(w.n, chunks);
  plan.chunks = ceil_div(w.n, plan.images);
  plan.full = backend::ConvPrimitive::create(pass, conv_dims(g, plan.images));
  if (!plan.full) return {};
  if (const std::int64_t rest = w.n - (plan.chunks - 1) * plan.images; rest != plan.images) {
    plan.last = backend::ConvPrimitive::create(pass, conv_dims(g, rest));
    if (!plan.last) return {};
  }
  return plan;
}

/// Whether a pass is faster on oneDNN's primitives than on im2col and the GEMM, as conv-backends
/// measured it (bench/README.md): with stride 1 and up to 64 outputs per group, where im2col's
/// extra pass costs most against its GEMM, except for an input gradient into fewer than 8 channels
/// (there the primitive's kernel is slower than col2im). With more outputs, or strides, the two
/// are within about 15% either way, and the kernel gradient of a strided one is slower.
bool primitives_win(ConvPassKind pass, const ConvGeometry& g) {
  const Window2d& w = g.win;
  if (w.sh != 1 || w.sw != 1 || g.out / g.groups > 64) return false;
  return pass != ConvPassKind::input_grad || g.in_per_group >= 8;
}

/// The plan `path` asks for; ConvPath::chosen takes the primitives where they are faster.
PassPlan plan_pass(ConvPassKind pass, const ConvGeometry& g, ConvPath path) {
  if (path == ConvPath::im2col || (path == ConvPath::chosen && !primitives_win(pass, g))) return {};
  return primitive_plan(pass, g);
}

/// The floats of one input image and of one output image.
std::int64_t input_image(const ConvGeometry& g) { return g.win.h * g.win.w * g.win.c; }
std::int64_t output_image(const ConvGeometry& g) { return g.win.oh * g.win.ow * g.out; }

/// A forward pass (a = x, out = y) or an input-gradient pass (a = dy, out = dx) on the plan's
/// primitives; `products_only` leaves out packing the kernel (weft-bench's floor lines).
void run_on_primitives(const PassPlan& plan, ConvPassKind pass, const ConvGeometry& g, const float* a,
                       const float* kernel, float* out, bool products_only = false) {
  const bool forward = pass == ConvPassKind::forward;
  const std::int64_t a_image = forward ? input_image(g) : output_image(g);
  const std::int64_t out_image = forward ? output_image(g) : input_image(g);
  const auto pack = [&](const backend::ConvPrimitive& primitive) {
    auto packed = std::make_unique_for_overwrite<float[]>(primitive.kernel_floats());
    if (!products_only) primitive.pack_kernel(kernel, packed.get());
    return packed;
  };
  const auto full = pack(*plan.full);
  const auto last = plan.last ? pack(*plan.last) : nullptr;
  run_chunks(plan.chunks, [&](std::int64_t chunk) {
    plan.primitive(chunk).run(a + chunk * plan.images * a_image, (plan.on_last(chunk) ? last : full).get(),
                              out + chunk * plan.images * out_image);
  });
}

/// pdk = the sum of `slices` partial kernel gradients (partials, one after the other), in order.
void add_partials(const float* partials, std::int64_t slices, std::int64_t ksize, float* pdk) {
  parallel_for(ksize, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      float total = partials[i];
      for (std::int64_t s = 1; s < slices; ++s) total += partials[s * ksize + i];
      pdk[i] = total;
    }
  });
}

/// The kernel gradient on the plan's primitives: one partial per chunk of images, each reordered to
/// HWIO by the thread that made it, then added in order. `products_only` runs the primitives alone,
/// each into its own buffer as here, for weft-bench's floor lines (pdk unused).
void kernel_grad_on_primitives(const PassPlan& plan, const ConvGeometry& g, const float* x, const float* dy,
                               float* pdk, bool products_only = false) {
  const std::int64_t ksize = kernel_size(g), slices = plan.chunks;
  std::vector<float> partials(static_cast<std::size_t>(slices > 1 && !products_only ? slices * ksize : 0));
  run_chunks(slices, [&](std::int64_t s) {
    const backend::ConvPrimitive& primitive = plan.primitive(s);
    const auto packed = std::make_unique_for_overwrite<float[]>(primitive.kernel_floats());
    primitive.run(x + s * plan.images * input_image(g), dy + s * plan.images * output_image(g), packed.get());
    if (!products_only) primitive.unpack_kernel_grad(packed.get(), slices == 1 ? pdk : partials.data() + s * ksize);
  });
  if (slices > 1 && !products_only) add_partials(partials.data(), slices, ksize, pdk);
}

// The products of one chunk of m patch rows, group by group: what each pass runs per chunk, and
// what weft-bench's floor lines time alone (conv_products).

/// patches (m rows, leading dimension cols) . kernel into the chunk's m output rows y.
void forward_products(const ConvGeometry& g, std::int64_t m, const float* patches, const float* pk, float* y) {
  const std::int64_t cols = patch_cols(g), block = cols / g.groups, out_per_group = g.out / g.groups;
  for (std::int64_t gi = 0; gi < g.groups; ++gi)
    backend::sgemm(false, false, m, out_per_group, block, patches + gi * block, cols, pk + gi * out_per_group, g.out,
                   0.0f, y + gi * out_per_group, g.out);
}

/// d patches = the chunk's m rows of dy . kernel^T into dst (leading dimension cols).
void input_grad_products(const ConvGeometry& g, std::int64_t m, const float* dy, const float* pk, float* dst) {
  const std::int64_t cols = patch_cols(g), block = cols / g.groups, out_per_group = g.out / g.groups;
  for (std::int64_t gi = 0; gi < g.groups; ++gi)
    backend::sgemm(false, true, m, block, out_per_group, dy + gi * out_per_group, g.out, pk + gi * out_per_group,
                   g.out, 0.0f, dst + gi * block, cols);
}

/// acc += patches^T . the chunk's m rows of dy.
void kernel_grad_products(const ConvGeometry& g, std::int64_t m, const float* patches, const float* dy, float* acc) {
  const std::int64_t cols = patch_cols(g), block = cols / g.groups, out_per_group = g.out / g.groups;
  for (std::int64_t gi = 0; gi < g.groups; ++gi)
    backend::sgemm(true, false, block, out_per_group, m, patches + gi * block, cols, dy + gi * out_per_group, g.out,
                   1.0f, acc + gi * out_per_group, g.out);
}

void conv2d_forward_into(const float* px, const float* pk, float* py, const ConvGeometry& g, const PassPlan& plan) {
  const Window2d& w = g.win;
  const std::int64_t rows = w.rows(), cols = patch_cols(g);
  if (rows * g.out == 0) return;
  if (cols == 0) {  // no input channels: an empty sum
    std::fill_n(py, rows * g.out, 0.0f);
    return;
  }
  if (plan.on_primitives()) return run_on_primitives(plan, ConvPassKind::forward, g, px, pk, py);
  const std::int64_t step = rows_per_chunk(cols);
  run_chunks(ceil_div(rows, step), [&](std::int64_t chunk) {
    const std::int64_t r0 = chunk * step, r1 = std::min(rows, r0 + step);
    std::unique_ptr<float[]> buffer;
    forward_products(g, r1 - r0, patches_of(px, g, r0, r1, buffer), pk, py + r0 * g.out);
  });
}

void conv2d_input_grad_into(const float* pdy, const float* pk, float* pdx, const ConvGeometry& g,
                            const PassPlan& plan) {
  const Window2d& w = g.win;
  const std::int64_t rows = w.rows(), cols = patch_cols(g);
  if (w.n * w.h * w.w * w.c == 0) return;
  if (g.out == 0) {  // nothing depends on x
    std::fill_n(pdx, w.n * w.h * w.w * w.c, 0.0f);
    return;
  }
  if (plan.on_primitives()) return run_on_primitives(plan, ConvPassKind::input_grad, g, pdy, pk, pdx);
  const std::int64_t step = rows_per_chunk(cols);
  // d patches[r0:r1] into `dst` with leading dimension cols.
  auto patch_grad = [&](std::int64_t r0, std::int64_t r1, float* dst) {
    input_grad_products(g, r1 - r0, pdy + r0 * g.out, pk, dst);
  };
  if (w.is_pointwise()) {  // the patch matrix is the input: its gradient is dx itself
    run_chunks(ceil_div(rows, step), [&](std::int64_t chunk) {
      const std::int64_t r0 = chunk * step, r1 = std::min(rows, r0 + step);
      patch_grad(r0, r1, pdx + r0 * w.c);
    });
    return;
  }
  // Chunks of whole images, so that no two chunks add onto the same input pixel; within a chunk,
  // blocks of rows in order.
  const std::int64_t pixels = w.oh * w.ow, image = w.h * w.w * w.c;
  const std::int64_t images_per_chunk = std::max<std::int64_t>(1, step / pixels);
  run_chunks(ceil_div(w.n, images_per_chunk), [&](std::int64_t chunk) {
    const std::int64_t n0 = chunk * images_per_chunk, n1 = std::min(w.n, n0 + images_per_chunk);
    std::fill(pdx + n0 * image, pdx + n1 * image, 0.0f);
    const auto buffer = std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(std::min(step, (n1 - n0) * pixels) * cols));
    for (std::int64_t r0 = n0 * pixels; r0 < n1 * pixels; r0 += step) {
      const std::int64_t r1 = std::min(n1 * pixels, r0 + step);
      patch_grad(r0, r1, buffer.get());
      col2im_add(buffer.get(), g, r0, r1, pdx);
    }
  });
}

void conv2d_kernel_grad_into(const float* px, const float* pdy, float* pdk, const ConvGeometry& g,
                             const PassPlan& plan) {
  const Window2d& w = g.win;
  const std::int64_t ksize = kernel_size(g), rows = w.rows(), cols = patch_cols(g);
  if (ksize == 0) return;
  if (rows == 0) {  // an empty batch
    std::fill_n(pdk, ksize, 0.0f);
    return;
  }
  if (plan.on_primitives()) return kernel_grad_on_primitives(plan, g, px, pdy, pdk);
  const std::int64_t step = rows_per_chunk(cols), chunks = ceil_div(rows, step);
  // Each slice sums a fixed run of chunks into its own partial; the partials are added in order.
  const std::int64_t slices =
      std::clamp<std::int64_t>(std::min(kMaxSlices, kPartialFloats / ksize), 1, chunks);
  std::vector<float> partials(static_cast<std::size_t>(slices > 1 ? slices * ksize : 0), 0.0f);
  if (slices == 1) std::fill_n(pdk, ksize, 0.0f);
  run_chunks(slices, [&](std::int64_t s) {
    float* acc = slices == 1 ? pdk : partials.data() + s * ksize;
    std::unique_ptr<float[]> buffer;
    for (std::int64_t chunk = s * chunks / slices; chunk < (s + 1) * chunks / slices; ++chunk) {
      const std::int64_t r0 = chunk * step, r1 = std::min(rows, r0 + step);
      kernel_grad_products(g, r1 - r0, patches_of(px, g, r0, r1, buffer), pdy + r0 * g.out, acc);
    }
  });
  if (slices > 1) add_partials(partials.data(), slices, ksize, pdk);
}

/// The products of one pass alone, on buffers a, b, c of conv_product_bytes each: what weft-bench's
/// floor lines time for a convolution. On im2col, in chunks of rows_per_chunk rows (the input
/// gradient also cuts its chunks at image boundaries, so its own may be shorter), its im2col and
/// col2im left out; on the primitives, the primitives without reordering the kernel.
void conv_products(ConvPassKind pass, const ConvGeometry& g, const PassPlan& plan, const float* a, const float* b,
                   float* c) {
  const std::int64_t rows = g.win.rows(), cols = patch_cols(g);
  if (rows == 0 || cols == 0 || g.out == 0) return;
  if (plan.on_primitives()) {
    if (pass == ConvPassKind::kernel_grad) return kernel_grad_on_primitives(plan, g, a, b, c, true);
    return run_on_primitives(plan, pass, g, a, b, c, true);
  }
  const std::int64_t step = rows_per_chunk(cols);
  for (std::int64_t r0 = 0; r0 < rows; r0 += step) {
    const std::int64_t m = std::min(rows, r0 + step) - r0;
    if (pass == ConvPassKind::forward)
      forward_products(g, m, a, b, c + r0 * g.out);
    else if (pass == ConvPassKind::input_grad)
      input_grad_products(g, m, a + r0 * g.out, b, c);
    else
      kernel_grad_products(g, m, a, b + r0 * g.out, c);
  }
}

/// Bytes each of conv_products' buffers needs: the largest of the input, the output, the kernel (as
/// the primitives pack it) and a chunk's patches.
std::size_t conv_product_bytes(const ConvGeometry& g, const PassPlan& plan) {
  const Window2d& w = g.win;
  std::size_t packed = 0;
  if (plan.full) packed = std::max(plan.full->kernel_floats(), plan.last ? plan.last->kernel_floats() : 0);
  const auto floats = static_cast<std::size_t>(std::max(
      {w.n * w.h * w.w * w.c, w.rows() * g.out, kernel_size(g), rows_per_chunk(patch_cols(g)) * patch_cols(g)}));
  return std::max(floats, packed) * sizeof(float);
}

/// A pass lowered for weft::jit plans: `into` on the plan's buffers (inputs in order, one output),
/// with its primitives created once, here.
template <class Into>
JitKernel lower_conv(Into into, ConvPassKind pass, const ConvGeometry& g) {
  const PassPlan plan = plan_pass(pass, g, ConvPath::chosen);
  JitKernel k{[into, g, plan](const void* const* in, void* const* out) {
    into(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]), static_cast<float*>(out[0]), g, plan);
  }};
  k.products = [pass, g, plan](const float* a, const float* b, float* c) { conv_products(pass, g, plan, a, b, c); };
  k.product_bytes = conv_product_bytes(g, plan);
  return k;
}

}  // namespace

ConvPath conv2d_path(ConvPassKind pass, const ConvGeometry& g, ConvPath path) {
  return plan_pass(pass, g, path).on_primitives() ? ConvPath::primitives : ConvPath::im2col;
}

Tensor conv2d_forward(const Tensor& x, const Tensor& kernel, const ConvGeometry& g, ConvPath path) {
  Tensor y = empty(Shape{g.win.n, g.win.oh, g.win.ow, g.out}, DType::float32);
  if (y.size() > 0)
    conv2d_forward_into(data<float>(x), data<float>(kernel), mutable_data<float>(y), g,
                        plan_pass(ConvPassKind::forward, g, path));
  return y;
}

Tensor conv2d_input_grad(const Tensor& dy, const Tensor& kernel, const ConvGeometry& g, ConvPath path) {
  Tensor dx = empty(Shape{g.win.n, g.win.h, g.win.w, g.win.c}, DType::float32);
  if (dx.size() > 0)
    conv2d_input_grad_into(data<float>(dy), data<float>(kernel), mutable_data<float>(dx), g,
                           plan_pass(ConvPassKind::input_grad, g, path));
  return dx;
}

Tensor conv2d_kernel_grad(const Tensor& x, const Tensor& dy, const ConvGeometry& g, ConvPath path) {
  Tensor dk = empty(Shape{g.win.kh, g.win.kw, g.in_per_group, g.out}, DType::float32);
  if (dk.size() > 0)
    conv2d_kernel_grad_into(data<float>(x), data<float>(dy), mutable_data<float>(dk), g,
                            plan_pass(ConvPassKind::kernel_grad, g, path));
  return dk;
}

}  // namespace detail

Tensor conv2d(const Tensor& x, const Tensor& kernel, const Conv2dOptions& options) {
  const auto lower = [options](const Tensor& x, const Tensor& kernel, const Tensor&) {
    return detail::lower_conv(detail::conv2d_forward_into, backend::ConvPassKind::forward,
                              detail::conv2d_geometry(x.shape(), kernel.shape(), options));
  };
  return detail::traced_lowered("conv2d", [=](const Tensor& x, const Tensor& kernel) -> Tensor {
    detail::require_defined(x, "conv2d");
    detail::require_defined(kernel, "conv2d");
    detail::require_float(x, "conv2d");
    detail::require_float(kernel, "conv2d");
    const detail::ConvGeometry g = detail::conv2d_geometry(x.shape(), kernel.shape(), options);
    Tensor y = detail::conv2d_forward(x, kernel, g);
    if (autodiff::any_tracked(x, kernel)) {
      const bool need_x = detail::node_of(x) != nullptr, need_k = detail::node_of(kernel) != nullptr;
      // Each gradient needs only the other operand.
      // The two gradients are ops of their own, so that a weft::jit trace records them.
      autodiff::record_ops(
          y, "conv2d", {&x, &kernel},
          [vx = need_k ? detail::detach(x) : Tensor(), vk = need_x ? detail::detach(kernel) : Tensor(), g, need_x,
           need_k](const Tensor& dy, std::span<Tensor> gr) {
            if (need_x)
              gr[0] = detail::traced_lowered(
                  "conv2d_input_grad",
                  [g](const Tensor& d, const Tensor& k) { return detail::conv2d_input_grad(d, k, g); },
                  [g](const Tensor&, const Tensor&, const Tensor&) {
                    return detail::lower_conv(detail::conv2d_input_grad_into, backend::ConvPassKind::input_grad, g);
                  },
                  dy, vk);
            if (need_k)
              gr[1] = detail::traced_lowered(
                  "conv2d_kernel_grad",
                  [g](const Tensor& v, const Tensor& d) { return detail::conv2d_kernel_grad(v, d, g); },
                  [g](const Tensor&, const Tensor&, const Tensor&) {
                    return detail::lower_conv(detail::conv2d_kernel_grad_into, backend::ConvPassKind::kernel_grad, g);
                  },
                  vx, dy);
          });
    }
    return y;
  }, lower, x, kernel);
}

}  // namespace weft
