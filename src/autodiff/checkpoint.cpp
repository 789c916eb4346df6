// autodiff::checkpoint: one node whose backward recomputes its function, recorded, from its inputs.
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../tensor_impl.hpp"
#include "engine.hpp"
#include "node.hpp"
#include "weft/autodiff.hpp"
#include "weft/error.hpp"
#include "weft/remat.hpp"

namespace weft::autodiff {

Tensor checkpoint(CheckpointFunction f, std::span<const Tensor> inputs, std::string_view where) {
  if (!f) throw ValueError(fmt::format("{}: the function is empty; pass a callable of the inputs", where));
  std::vector<Tensor> detached;
  detached.reserve(inputs.size());
  std::vector<bool> tracked;
  tracked.reserve(inputs.size());
  bool any = false;
  for (const Tensor& t : inputs) {
    detached.push_back(weft::detail::detach(t));
    tracked.push_back(weft::detail::node_of(t) != nullptr);
    any = any || tracked.back();
  }
  Tensor out = f(detached);
  weft::detail::require_defined(out, "autodiff::checkpoint");
  if (out.is_tracked())
    throw ValueError(fmt::format("{}: the result depends on a tensor being differentiated that is not one of the "
                                 "inputs (the function holds or captured it), so its gradient would be lost; pass "
                                 "that tensor as an input, or apply weft::stop_gradient to it if it is a constant",
                                 where));
  if (!any) return out;
  // The function is shared, not copied, by the node: a module and its arguments may be large.
  auto fn = std::make_shared<const CheckpointFunction>(std::move(f));
  record(out, "checkpoint", inputs,
         [fn, detached = std::move(detached), tracked = std::move(tracked)](const Tensor& g, std::span<Tensor> grads) {
           std::vector<Tensor> local;
           local.reserve(detached.size());
           std::size_t leaves = 0;
           for (std::size_t i = 0; i < detached.size(); ++i)
             local.push_back(tracked[i] ? track_leaf(detached[i], leaves++) : detached[i]);
           const Tensor again = (*fn)(local);
           std::vector<Tensor> local_grads = backpropagate(again, g, leaves);
           std::size_t k = 0;
           for (std::size_t i = 0; i < detached.size(); ++i)
             if (tracked[i]) grads[i] = std::move(local_grads[k++]);
         });
  weft::detail::node_of(out)->backward_is_ops = true;
  return out;
}

}  // namespace weft::autodiff
