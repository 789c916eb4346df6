// A merged mode flag that is a plain bool in the module: it could never be left to the call, so
// the copy is a compile error naming the flag.
// expect-error: WEFT_MERGED_ATTRIBUTE_NOT_OPTIONAL
// expect-error: {"deterministic"}, MyDropout>
#include "weft/nn/core_options.hpp"
#include "weft/nn/stochastic.hpp"

struct MyDropout {
  weft::required<float, "rate"> rate;
  std::vector<int> broadcast_dims{};
  bool deterministic = false;
  std::string rng_collection = "dropout";
};
WEFT_RECORD(MyDropout, rate, broadcast_dims, deterministic, rng_collection);

int main() {
  using namespace weft::literals;
  (void)weft::nn::core_options<weft::core::DropoutOptions>(MyDropout{.rate = 0.5f}, "deterministic"_kw = true);
}
