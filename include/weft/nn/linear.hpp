#pragma once
// Linear modules: nn::Dense, nn::DenseGeneral, nn::Embed (math in core::dense, dense_general, embed).
#include "weft/core/linear.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct Dense {
  required<std::int64_t, "features"> features;
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const {
    return core::dense(core::DenseOptions{.features = features,
                                          .use_bias = use_bias,
                                          .kernel_init = kernel_init,
                                          .bias_init = bias_init},
                       s, x);
  }
};

struct DenseGeneral {
  required<std::vector<std::int64_t>, "features"> features;
  std::vector<int> axis = {-1};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const {
    return core::dense_general(core::DenseGeneralOptions{.features = features,
                                                         .axis = axis,
                                                         .use_bias = use_bias,
                                                         .kernel_init = kernel_init,
                                                         .bias_init = bias_init},
                               s, x);
  }
};

struct Embed {
  required<std::int64_t, "num_embeddings"> num_embeddings;
  required<std::int64_t, "features"> features;
  Initializer embedding_init = core::default_embed_init();

  /// The rows of the `embedding` table for int32 indices (an index out of range is an error).
  Tensor operator()(Scope& s, const Tensor& indices) const { return core::embed(options(), s, indices); }
  /// query @ embedding.T with the same table (Linen's Embed.attend). From a parent, run it in the
  /// Embed's scope with s.method(embed, &nn::Embed::attend, h) (Linen's self.embed.attend(h)).
  Tensor attend(core::Scope& s, const Tensor& query) const { return core::embed_attend(options(), s, query); }

 private:
  [[nodiscard]] core::EmbedOptions options() const {
    return {.num_embeddings = num_embeddings, .features = features, .embedding_init = embedding_init};
  }
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::Dense, features, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::nn::DenseGeneral, features, axis, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::nn::Embed, num_embeddings, features, embedding_init);
