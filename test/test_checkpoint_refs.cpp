// The reference files of test/data (written by make_checkpoint_refs.py from the formats'
// specifications, with NumPy): loaded by weft value by value, re-encoded byte for byte, and run
// through the weft twin of the Linen MLP they hold.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint_testing.hpp"
#include "testing.hpp"
#include "weft/io/flax_msgpack.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/safetensors.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/weft.hpp"

using namespace weft;
using namespace weft::testing;
namespace fs = std::filesystem;

namespace {

const fs::path kData = WEFT_TEST_DATA_DIR;

/// The twin of the script's Linen MLP: Dense(8) -> BatchNorm (running averages) -> relu -> Dense(3).
struct Mlp {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = s(nn::Dense{.features = 8}, x);
    return s(nn::Dense{.features = 3}, relu(s(nn::BatchNorm{.use_running_average = true}, h)));
  }
};

std::vector<std::uint32_t> bits(const std::vector<float>& xs) {
  std::vector<std::uint32_t> out;
  for (const float x : xs) out.push_back(std::bit_cast<std::uint32_t>(x));
  return out;
}

}  // namespace

TEST_CASE("checkpoint refs: the safetensors and msgpack references load with the script's values") {
  const Variables st = io::load_safetensors(kData / "mlp.safetensors");
  const Variables mp = io::load_flax_msgpack(kData / "mlp.msgpack");
  CHECK(io::load_safetensors_metadata(kData / "mlp.safetensors") ==
        io::SafetensorsMetadata{{"format", "np"}, {"model", "mlp"}});
  // The two formats, decoded independently, hold the same leaves (Flax's file has three more).
  Variables common;
  for (const auto& [path, t] : st.leaves()) common = common.set(path, mp.at(path));
  check_identical(common, st);
  for (const auto* v : {&st, &mp}) {
    CHECK(v->collection("params").size() == 6);
    CHECK(v->at("params/Dense_0/kernel").shape() == Shape{4, 8});
    CHECK(v->at("batch_stats/BatchNorm_0/var").shape() == Shape{8});
    CHECK(v->at("extras/step").to_int_vector() == std::vector<std::int32_t>{7});
    CHECK(v->at("extras/step").shape() == Shape{});
    CHECK(v->at("extras/labels").to_int_vector() ==
          std::vector<std::int32_t>{3, -1, 0, std::numeric_limits<std::int32_t>::max(), std::numeric_limits<std::int32_t>::min()});
    CHECK(v->at("extras/scalar").to_vector() == std::vector<float>{-1.5f});
    CHECK(v->at("extras/half").shape() == Shape{2, 3});
    CHECK(bits(v->at("extras/half").to_vector()) == bits({1.0f, -2.5f, 65504.0f, 0x1p-14f, 0.0f, -0.0f}));
    // bfloat16 of 1e-3 (rounded to nearest even by the script): 0x3a83 -> 0x3a830000.
    CHECK(bits(v->at("extras/brain").to_vector()) == bits({1.0f, 3.140625f, -123.5f, std::bit_cast<float>(0x3a830000u)}));
    CHECK(v->at("extras/double").to_vector() == std::vector<float>{1.0f / 3.0f, -2.0f, 1e-3f});
  }
  // The forms only Flax's files have.
  CHECK(mp.at("extras/py_int").to_int_vector() == std::vector<std::int32_t>{12});
  CHECK(mp.at("extras/np_scalar").to_vector() == std::vector<float>{2.5f});
  CHECK(mp.at("extras/chunked").shape() == Shape{3, 5});
  std::vector<float> chunked(15);
  for (std::size_t i = 0; i < chunked.size(); ++i) chunked[i] = static_cast<float>(i) - 7.0f;
  CHECK(mp.at("extras/chunked").to_vector() == chunked);
  CHECK_FALSE(mp.contains_collection("empty_state"));
  CHECK(mp.size() == st.size() + 3);
}

TEST_CASE("checkpoint refs: weft re-encodes the script's sorted files byte for byte") {
  const auto st = read_bytes(kData / "mlp_sorted.safetensors");
  CHECK(io::to_safetensors_bytes(io::load_safetensors(kData / "mlp_sorted.safetensors")) == st);
  const auto mp = read_bytes(kData / "mlp_sorted.msgpack");
  CHECK(io::to_flax_msgpack_bytes(io::load_flax_msgpack(kData / "mlp_sorted.msgpack")) == mp);
}

TEST_CASE("checkpoint refs: the weft twin of the Linen MLP gives the script's outputs") {
  const Variables io_data = io::load_safetensors(kData / "mlp_io.safetensors");
  const Tensor x = io_data.at("data/x"), y = io_data.at("data/y");
  const Mlp model;
  // Linen's names are weft's: the loaded variables fit a freshly initialised twin exactly.
  const Variables fresh = nn::init(model, Key(0), x);
  for (const char* file : {"mlp.msgpack", "mlp.safetensors"}) {
    INFO(file);
    const fs::path path = kData / file;
    const Variables loaded = std::string(file).ends_with(".msgpack") ? io::load_flax_msgpack(path) : io::load_safetensors(path);
    const Variables variables = io::restore(fresh, loaded.without("extras"));
    check_close(nn::apply(model, variables, x), y, 1e-5f, 1e-5f);
  }
}
