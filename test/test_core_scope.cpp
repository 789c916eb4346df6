// The functional core's Scope, init and apply: Flax's flax.core semantics.
#include <optional>
#include <string>

#include "testing.hpp"
#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_throws_with;

namespace {

// A hand-written dense layer: enough to exercise the scope without the layer library.
Tensor toy_dense(std::int64_t features, core::Scope& s, const Tensor& x) {
  const Tensor k = s.param("kernel", core::initializers::ones(), Shape{x.shape()[x.rank() - 1], features});
  const Tensor b = s.param("bias", core::initializers::zeros(), Shape{features});
  return matmul(x, k) + b;
}

// A stateful counter in a "state" collection.
Tensor counting(core::Scope& s, const Tensor& x) {
  auto count = s.variable("state", "count", [] { return zeros(Shape{}); });
  if (!s.is_initializing()) count.set(count.value() + 1.0f);
  return x;
}

}  // namespace

TEST_CASE("init creates the parameters that apply reads, under child names") {
  auto model = [](core::Scope& s, const Tensor& x) {
    const Tensor h = s.child("hidden", [](core::Scope& c, const Tensor& t) { return toy_dense(3, c, t); })(x);
    return s.child("out", [](core::Scope& c, const Tensor& t) { return toy_dense(1, c, t); })(relu(h));
  };
  const Tensor x = ones(Shape{2, 4});
  auto [y, variables] = core::init(model)(Key(0), x);
  CHECK(variables.paths() ==
        std::vector<std::string>{"params/hidden/bias", "params/hidden/kernel", "params/out/bias", "params/out/kernel"});
  CHECK(variables.at("params/hidden/kernel").shape() == Shape{4, 3});
  check_close(y, {12, 12}, Shape{2, 1});  // ones: hidden = 4 per unit, out = 3 * 4
  check_close(core::apply(model)(variables, x), y);
  // A changed parameter changes the output: apply really reads the variables.
  const Variables halved = variables.set("params/out/kernel", full(Shape{3, 1}, 0.5f));
  check_close(core::apply(model)(halved, x), {6, 6}, Shape{2, 1});
}

TEST_CASE("a parameter whose shape disagrees with its initializer's is a Flax-like error") {
  auto layer = [](core::Scope& s, const Tensor& x) { return toy_dense(2, s, x); };
  auto [y, variables] = core::init(layer)(Key(0), ones(Shape{1, 3}));
  check_throws_with<ShapeError>([&] { (void)core::apply(layer)(variables, ones(Shape{1, 5})); },
                                {"For parameter \"kernel\" in \"/\"", "expected to generate shape (5, 2)",
                                 "existing parameter it received has shape (3, 2)"});
}

TEST_CASE("missing parameters and collections under apply name the path") {
  auto layer = [](core::Scope& s, const Tensor& x) {
    return s.child("dense", [](core::Scope& c, const Tensor& t) { return toy_dense(2, c, t); })(x);
  };
  check_throws_with<KeyError>([&] { (void)core::apply(layer)(Variables{}, ones(Shape{1, 3})); },
                              {"\"kernel\"", "collection \"params\"", "\"/dense\"", "the collection is empty"});
  const Variables other = Variables::from_leaves({{"params/other/kernel", ones(Shape{3, 2})}});
  check_throws_with<KeyError>([&] { (void)core::apply(layer)(other, ones(Shape{1, 3})); },
                              {"Could not find parameter named \"kernel\" in scope \"/dense\""});
  const Variables doubled = Variables::from_leaves({{"params/params/dense/kernel", ones(Shape{3, 2})}});
  check_throws_with<ValueError>([&] { (void)core::apply(layer)(doubled, ones(Shape{1, 3})); },
                                {"extra params layer", "{\"params\": {\"params\": ...}}"});
}

TEST_CASE("scope names: duplicates are errors, except variables of different collections") {
  auto twice = [](core::Scope& s, const Tensor& x) {
    (void)s.child("a", [](core::Scope&, const Tensor& t) { return t; });
    (void)s.child("a", [](core::Scope&, const Tensor& t) { return t; });
    return x;
  };
  check_throws_with<ValueError>([&] { (void)core::init(twice)(Key(0), ones(Shape{1})); },
                                {"Duplicate use of scope name: \"a\""});
  auto shared_name = [](core::Scope& s, const Tensor& x) {
    (void)s.param("w", core::initializers::zeros(), Shape{1});
    (void)s.variable("stats", "w", [] { return ones(Shape{1}); });  // another collection: allowed
    return x;
  };
  const auto vars = core::init(shared_name)(Key(0), ones(Shape{1})).second;
  CHECK(vars.contains("params/w"));
  CHECK(vars.contains("stats/w"));
  auto param_twice = [](core::Scope& s, const Tensor& x) {
    (void)s.param("w", core::initializers::zeros(), Shape{1});
    (void)s.param("w", core::initializers::zeros(), Shape{1});
    return x;
  };
  CHECK_THROWS_AS((void)core::init(param_twice)(Key(0), ones(Shape{1})), ValueError);
  auto child_and_param = [](core::Scope& s, const Tensor& x) {
    (void)s.param("w", core::initializers::zeros(), Shape{1});
    (void)s.child("w", [](core::Scope&, const Tensor& t) { return t; });
    return x;
  };
  CHECK_THROWS_AS((void)core::init(child_and_param)(Key(0), ones(Shape{1})), ValueError);
}

TEST_CASE("make_rng derives keys as Flax: fold_in(stream key, sha1(path names, counter)[:4])") {
  // Reference hashes from Python: int.from_bytes(hashlib.sha1(data).digest()[:4], 'big'),
  // with the counter as its minimal big-endian bytes (b'\x01' for 1).
  const Key key(7);
  std::vector<Key> got;
  auto f = [&](core::Scope& s, const Tensor& x) {
    got.push_back(s.make_rng("params"));  // root, counter 1: sha1(b'\x01')
    s.child("Dense_0", [&](core::Scope& c, const Tensor&) {
      got.push_back(c.make_rng("params"));  // sha1(b'Dense_0\x01')
      got.push_back(c.make_rng());          // sha1(b'Dense_0\x02'); "params" is the default stream
      return x;
    })(x);
    s.child("encoder", [&](core::Scope& c, const Tensor&) {
      return c.child("hidden", [&](core::Scope& d, const Tensor&) {
        got.push_back(d.make_rng("params"));  // sha1(b'encoderhidden\x01')
        return x;
      })(x);
    })(x);
    return x;
  };
  (void)core::init(f)(key, ones(Shape{1}));
  REQUIRE(got.size() == 4);
  CHECK(got[0] == fold_in(key, 0xbf8b4530u));
  CHECK(got[1] == fold_in(key, 0xb2b71315u));
  CHECK(got[2] == fold_in(key, 0x8916588au));
  CHECK(got[3] == fold_in(key, 0x4267b6f3u));
}

TEST_CASE("make_rng hashes a counter past 255 as its minimal big-endian bytes") {
  // Python: int.from_bytes(hashlib.sha1(b'\x01\x00').digest()[:4], 'big') == 0x0e356ba5.
  const Key key(7);
  Key last = key;
  auto f = [&](core::Scope& s, const Tensor& x) {
    for (int i = 0; i < 256; ++i) last = s.make_rng("params");
    return x;
  };
  (void)core::init(f)(key, ones(Shape{1}));
  CHECK(last == fold_in(key, 0x0e356ba5u));
}

TEST_CASE("keys depend on the path and the call count, not on the order siblings run in") {
  auto keys = [](bool a_first) {
    std::map<std::string, Key> out;
    auto f = [&](core::Scope& s, const Tensor& x) {
      auto draw = [&](const std::string& n) {
        s.child(n, [&](core::Scope& c, const Tensor&) {
          out.insert_or_assign(n, c.make_rng("dropout"));
          return x;
        })(x);
      };
      if (a_first) {
        draw("a");
        draw("b");
      } else {
        draw("b");
        draw("a");
      }
      return x;
    };
    (void)core::init(f)(core::Rngs{{"params", Key(0)}, {"dropout", Key(1)}}, ones(Shape{1}));
    return out;
  };
  const auto k1 = keys(true), k2 = keys(false);
  CHECK(k1.at("a") == k2.at("a"));
  CHECK(k1.at("b") == k2.at("b"));
  CHECK_FALSE(k1.at("a") == k1.at("b"));
}

TEST_CASE("calling the same child twice continues its counter") {
  std::vector<Key> got;
  auto f = [&](core::Scope& s, const Tensor& x) {
    auto c = s.child("drop", [&](core::Scope& d, const Tensor& t) {
      got.push_back(d.make_rng("dropout"));
      return t;
    });
    c(x);
    c(x);
    return x;
  };
  (void)core::init(f)(core::Rngs{{"dropout", Key(3)}}, ones(Shape{1}));
  REQUIRE(got.size() == 2);
  CHECK_FALSE(got[0] == got[1]);
  CHECK(got[1] == fold_in(Key(3), 0xc777b7d8u));  // sha1(b'drop\x02')[:4]
}

TEST_CASE("a missing stream falls back to params; with neither, the error names scope and stream") {
  Key from_dropout(0), from_params(0);
  auto f = [&](core::Scope& s, const Tensor& x) {
    from_dropout = s.make_rng("dropout");
    return x;
  };
  auto g = [&](core::Scope& s, const Tensor& x) {
    from_params = s.make_rng("params");
    return x;
  };
  (void)core::init(f)(Key(5), ones(Shape{1}));
  (void)core::init(g)(Key(5), ones(Shape{1}));
  CHECK(from_dropout == from_params);  // the fallback draws from the params stream and its counter

  auto child_draw = [](core::Scope& s, const Tensor& x) {
    return s.child("Dropout_0", [](core::Scope& c, const Tensor& t) {
      (void)c.make_rng("dropout");
      return t;
    })(x);
  };
  check_throws_with<Error>([&] { (void)core::apply(child_draw)(Variables{}, ones(Shape{1})); },
                           {"Dropout_0 needs PRNG for \"dropout\"", "Rngs{{\"dropout\", key}}"});
  check_throws_with<Error>([&] { (void)core::apply([](core::Scope& s, const Tensor& x) {
                             (void)s.make_rng("params");
                             return x;
                           })(Variables{}, ones(Shape{1})); },
                           {"None needs PRNG for \"params\""});
}

TEST_CASE("variables: mutable under init, immutable under plain apply, updated under mutable apply") {
  const Tensor x = ones(Shape{1});
  auto [y, vars] = core::init(counting)(Key(0), x);
  check_close(vars.at("state/count"), {0}, Shape{});
  // apply without "state" mutable: setting it is an error naming the variable and collection.
  check_throws_with<Error>([&] { (void)core::apply(counting)(vars, x); },
                           {"Cannot update variable \"count\"", "collection \"state\" is immutable"});
  auto [y2, updated] = core::apply(counting, {"state"})(vars, x);
  check_close(updated.at("state/count"), {1}, Shape{});
  CHECK(updated.collections() == std::vector<std::string>{"state"});
  auto [y3, updated2] = core::apply(counting, {"state"})(updated, x);
  check_close(updated2.at("state/count"), {2}, Shape{});
  // Reading a collection that was never passed.
  check_throws_with<KeyError>([&] { (void)core::apply(counting, {"other"})(Variables{}, x); },
                              {"\"count\"", "collection \"state\"", "the collection is empty"});
}

TEST_CASE("flags and the rngs argument of apply") {
  bool initializing = true, mut = true, has_dropout = false;
  auto f = [&](core::Scope& s, const Tensor& x) {
    initializing = s.is_initializing();
    mut = s.is_mutable("params");
    has_dropout = s.has_rng("dropout");
    return x;
  };
  (void)core::init(f)(Key(0), ones(Shape{1}));
  CHECK(initializing);
  CHECK(mut);
  CHECK_FALSE(has_dropout);
  (void)core::apply(f)(Variables{}, core::Rngs{{"dropout", Key(1)}}, ones(Shape{1}));
  CHECK_FALSE(initializing);
  CHECK_FALSE(mut);
  CHECK(has_dropout);
  // A key is the params stream; a map with only params is equivalent.
  Key a(0), b(0);
  (void)core::init([&](core::Scope& s, const Tensor& x) { a = s.make_rng(); return x; })(Key(9), ones(Shape{1}));
  (void)core::init([&](core::Scope& s, const Tensor& x) { b = s.make_rng(); return x; })(core::Rngs{{"params", Key(9)}},
                                                                                           ones(Shape{1}));
  CHECK(a == b);
}

TEST_CASE("a collection name with '/' (or none) is a ValueError, as such variable names are") {
  // "params/x" would write params/x/mean, a parameter the optimizer trains; "batch_stats/Other"
  // another module's statistics.
  for (const std::string collection : {"params/x", "batch_stats/Other", "/", ""}) {
    INFO("collection: " << collection);
    const std::string quoted = '"' + collection + '"';
    auto f = [&](core::Scope& s, const Tensor& x) {
      (void)s.variable(collection, "mean", [] { return zeros(Shape{1}); });
      return x;
    };
    check_throws_with<ValueError>([&] { (void)core::init(f)(Key(0), ones(Shape{1})); },
                                  {"weft::core::Scope::variable", "invalid collection name", quoted, "no '/'"});
  }
  auto probe = [](core::Scope& s, const Tensor& x) {
    (void)s.has_variable("params/x", "mean");
    return x;
  };
  check_throws_with<ValueError>([&] { (void)core::init(probe)(Key(0), ones(Shape{1})); },
                                {"weft::core::Scope::has_variable", "\"params/x\""});
  // The names themselves were already checked.
  auto bad_name = [](core::Scope& s, const Tensor& x) {
    (void)s.variable("batch_stats", "x/mean", [] { return zeros(Shape{1}); });
    return x;
  };
  check_throws_with<ValueError>([&] { (void)core::init(bad_name)(Key(0), ones(Shape{1})); }, {"invalid name", "no '/'"});
}

TEST_CASE("a Variable handle used after its init/apply call returned is an error, not a dangling read") {
  std::optional<core::Variable> kept;
  auto f = [&](core::Scope& s, const Tensor& x) {
    kept = s.variable("state", "count", [] { return full(Shape{}, 3.0f); });
    CHECK(kept->value().item() == 3.0f);  // valid during the call
    if (kept->is_mutable() && !s.is_initializing()) kept->set(kept->value() + 1.0f);
    return x;
  };
  auto [y, vars] = core::init(f)(Key(0), ones(Shape{1}));
  REQUIRE(kept.has_value());
  CHECK(kept->path() == "state/count");  // the path is the handle's own: still readable
  check_throws_with<Error>([&] { (void)kept->value(); },
                           {"weft::core::Variable::value", "\"state/count\"", "after the init/apply call", "variables.at"});
  check_throws_with<Error>([&] { kept->set(zeros(Shape{})); }, {"weft::core::Variable::set", "\"state/count\""});
  check_throws_with<Error>([&] { (void)kept->is_mutable(); }, {"weft::core::Variable::is_mutable"});
  // The same after apply; the handle of the new call works during it.
  auto [y2, updated] = core::apply(f, {"state"})(vars, ones(Shape{1}));
  check_close(updated.at("state/count"), {4}, Shape{});
  check_throws_with<Error>([&] { (void)kept->value(); }, {"after the init/apply call"});
  (void)y;
  (void)y2;
}

TEST_CASE("default_name gives the first prefix<i> not yet reserved, by a child or a variable (Flax core)") {
  std::vector<std::string> names;
  auto f = [&](core::Scope& s, const Tensor& x) {
    names.push_back(s.default_name("Dense_"));  // nothing reserved yet
    s.child("Dense_0", [](core::Scope&, const Tensor& t) { return t; })(x);
    names.push_back(s.default_name("Dense_"));  // Dense_0 is a child's
    (void)s.param("Dense_1", core::initializers::zeros(), Shape{1});
    names.push_back(s.default_name("Dense_"));  // Dense_1 is a variable's
    names.push_back(s.default_name("Conv_"));   // another prefix starts at 0
    return x;
  };
  (void)core::init(f)(Key(0), ones(Shape{1}));
  CHECK(names == std::vector<std::string>{"Dense_0", "Dense_1", "Dense_2", "Conv_0"});
}
