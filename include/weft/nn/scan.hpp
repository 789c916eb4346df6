#pragma once
// nn::Scan: a stack of identical blocks with stacked variables (flax.linen.scan over layers).
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/nn/module.hpp"
#include "weft/tensor.hpp"

namespace weft::nn {

namespace detail {

/// One layer of nn::Scan: the module run in `scope` (the scope of the scan itself) on `carry`.
using ScanBody = std::function<Tensor(core::Scope& scope, const Tensor& carry, const RunContext& run)>;

/// nn::Scan's attributes, for the type-erased loop.
struct ScanOptions {
  int length = 0;
  std::vector<std::string> variable_axes;
  std::vector<std::string> split_rngs;
};

/// Runs `body` options.length times in `scope`, carrying its result, each layer on its slice of
/// the stacked collections (and under init, stacking what each layer creates); `where` names the
/// scan for messages.
Tensor scan_call(core::Scope& scope, const Tensor& carry, const RunContext& run, const ScanOptions& options,
                 const ScanBody& body, const std::string& where);

}  // namespace detail

/// Linen's nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, length=n) over
/// a carry: `module` applied `length` times, x = module(x), each layer with its own parameters,
/// stored once per parameter with a leading axis of `length` (params/Scan_0/Dense_0/kernel of shape
/// (length, in, out)). The module maps its carry to a carry of the same shape and dtype (a
/// ShapeError otherwise); further arguments are the same for every layer (Linen's in_axes=
/// nn.broadcast). Collections in `variable_axes` are stacked on axis 0 (Linen's variable_axes with
/// axis 0 for each); the others are shared by every layer (Linen's broadcast variables, read as
/// they are; what one layer sows or sets, the next sees). Random streams in `split_rngs` are
/// split: layer i draws from split(s.make_rng(stream), length)[i], as Linen splits them; the others
/// are broadcast, every layer drawing the same keys (Linen's split_rngs default of False, so that
/// without "dropout" in split_rngs every layer drops the same units, as in Linen). Within a layer,
/// keys derive from its stream key as everywhere in weft, by the path from the root and the call
/// counter; Linen folds in the path below the scan only, so the bits of the keys differ from
/// Linen's while their structure (one split per layer) is the same. The scan runs in the child
/// `Scan_0` (Linen names its lifted class `ScanBlock`, giving `ScanBlock_0`). Under tabulate the
/// layers' sub-modules are listed once, for layer 0.
template <class M>
struct Scan {
  M module;                                          ///< the block applied at every layer
  int length = 0;                                    ///< the number of layers (positive)
  std::vector<std::string> variable_axes{"params"};  ///< collections stacked on axis 0
  std::vector<std::string> split_rngs{"params"};     ///< random streams split across layers

  /// The carry after `length` layers of module(s, carry, broadcast...).
  template <class... Args>
  Tensor operator()(Scope& s, const Tensor& carry, const Args&... broadcast) const {
    static_assert(
        std::is_same_v<std::remove_cvref_t<std::invoke_result_t<const M&, Scope&, const Tensor&, const Args&...>>,
                       Tensor>,
        "weft::nn::Scan: the module's call operator must return one Tensor, its new carry");
    const detail::ScanBody body = [this, &broadcast...](core::Scope& scope, const Tensor& c,
                                                        const detail::RunContext& run) -> Tensor {
      Scope view(scope, module, run);  // the scan's scope, as the scope of `module` itself
      return detail::invoke_module(module, view, c, broadcast...);
    };
    return detail::scan_call(s, carry, s.run_context(), {length, variable_axes, split_rngs}, body, s.describe());
  }
};

/// nn::scan(module, length): `module` stacked `length` times, with the defaults of nn::Scan
/// (Linen's nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, length=n)).
template <class M>
[[nodiscard]] Scan<M> scan(M module, int length) {
  return Scan<M>{.module = std::move(module), .length = length};
}

}  // namespace weft::nn
