// A module whose WEFT_RECORD leaves out a field: the sub-module in that field would silently be
// named in compact style (Dense_0) rather than after the field, so it is a compile error whose first
// line names the module, and whose note gives the number of fields and of listed fields.
// expect-error: WEFT_RECORD_MISSES_A_FIELD
// expect-error: TwoLayers
// expect-output: record_lists_all_fields<TwoLayers, 2, 1>
#include "weft/nn/linear.hpp"

struct TwoLayers {
  weft::nn::Dense hidden{.features = 3};
  weft::nn::Dense out{.features = 2};
  weft::Tensor operator()(weft::nn::Scope& s, const weft::Tensor& x) const { return s(out, s(hidden, x)); }
};
WEFT_RECORD(TwoLayers, hidden);

int main() { (void)weft::nn::init(TwoLayers{}, weft::Key(0), weft::Tensor()); }
