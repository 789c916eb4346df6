#include <algorithm>
#include <ranges>
#include <sstream>

#include "testing.hpp"
#include "weft/variables.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

using Strings = std::vector<std::string>;

// A two-layer MLP with a batch norm: 6 leaves, 29 scalars (params 23, batch_stats 6).
Variables mlp_variables() {
  return Variables::from_leaves({
      {"params/Dense_1/kernel", pattern(Shape{3, 2}, -1, 1, 3)},
      {"params/Dense_0/kernel", pattern(Shape{4, 3}, -1, 1, 1)},
      {"batch_stats/BatchNorm_0/var", ones(Shape{3})},
      {"params/Dense_0/bias", Tensor({0.1f, 0.2f, 0.3f}, Shape{3})},
      {"params/Dense_1/bias", Tensor({-1.f, 1.f}, Shape{2})},
      {"batch_stats/BatchNorm_0/mean", zeros(Shape{3})},
  });
}

const float* data_of(const Tensor& t) { return t.values<float>().data(); }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("Variables: construction and accessors") {
  const Variables empty;
  CHECK(empty.empty());
  CHECK(empty.size() == 0);
  CHECK(empty.num_elements() == 0);
  CHECK(empty.paths().empty());
  CHECK(empty.collections().empty());
  CHECK_FALSE(empty.contains("params/x"));
  CHECK(Variables::from_leaves({}).empty());

  const Variables v = mlp_variables();
  CHECK_FALSE(v.empty());
  CHECK(v.size() == 6);
  CHECK(v.num_elements() == 29);
  CHECK(v.collections() == Strings{"batch_stats", "params"});
  CHECK(v.paths() == Strings{"batch_stats/BatchNorm_0/mean", "batch_stats/BatchNorm_0/var", "params/Dense_0/bias",
                             "params/Dense_0/kernel", "params/Dense_1/bias", "params/Dense_1/kernel"});
  check_close(v.at("params/Dense_0/bias"), {0.1f, 0.2f, 0.3f}, Shape{3});
  check_close(v.at("params/Dense_1/kernel"), pattern(Shape{3, 2}, -1, 1, 3));
  CHECK(v.at("params/Dense_0/kernel").shape() == Shape{4, 3});

  CHECK(v.contains("params/Dense_0/kernel"));
  CHECK_FALSE(v.contains("params/Dense_0"));  // a module, not a leaf
  CHECK_FALSE(v.contains("params"));
  CHECK_FALSE(v.contains(""));
  CHECK_FALSE(v.contains("params/Dense_0/kernel/x"));
  CHECK_FALSE(v.contains("params//kernel"));
  CHECK(v.find("params/Dense_1/bias") == &v.at("params/Dense_1/bias"));
  CHECK(v.find("params/Dense_2/bias") == nullptr);
  CHECK(v.contains_collection("params"));
  CHECK(v.contains_collection("batch_stats"));
  CHECK_FALSE(v.contains_collection("param"));
  CHECK_FALSE(v.contains_collection("params/Dense_0"));

  const auto leaves = v.leaves();
  REQUIRE(leaves.size() == 6);
  CHECK(leaves[2].first == "params/Dense_0/bias");
  CHECK(data_of(leaves[2].second) == data_of(v.at("params/Dense_0/bias")));
  CHECK(std::ranges::equal(leaves | std::views::keys, v.paths()));

  // Integer leaves are allowed (a step counter), and counted.
  const Variables with_step = v.set("state/step", Tensor({7}, Shape{}));
  CHECK(with_step.num_elements() == 30);
  CHECK(with_step.at("state/step").to_int_vector() == std::vector<std::int32_t>{7});
}

TEST_CASE("Variables: paths are in std::string order, also with names that sort below '/'") {
  // '-' and '.' sort before '/', so "a-b/..." comes before "a/...": the tree keeps that order.
  const Strings input = {"p/a/x", "p/a-b/y", "p/a.c", "p/ab/z", "p/a/b-c/w", "p/a/b/v", "p/a/b.d", "p-q/a/b", "p/a0"};
  std::vector<std::pair<std::string, Tensor>> leaves;
  for (const auto& p : input) leaves.emplace_back(p, Tensor(1.f));
  const Variables v = Variables::from_leaves(leaves);
  Strings sorted = input;
  std::ranges::sort(sorted);
  CHECK(v.paths() == sorted);
  CHECK(v.collections() == Strings{"p", "p-q"});
  for (const auto& p : input) CHECK(v.contains(p));

  // Built by successive sets, in another order, the tree is the same.
  Variables w;
  for (auto it = input.rbegin(); it != input.rend(); ++it) w = w.set(*it, Tensor(2.f));
  CHECK(w.paths() == sorted);
  CHECK(same_structure(v, w));
  CHECK(v.merge(w).paths() == sorted);
  CHECK(tree_map([](const Tensor& a, const Tensor& b) { return a + b; }, v, w).at("p/a-b/y").item() == 3.f);
}

TEST_CASE("Variables: bad leaves name the path") {
  const auto bad = [](std::vector<std::pair<std::string, Tensor>> leaves) {
    return [leaves = std::move(leaves)] { (void)Variables::from_leaves(leaves); };
  };
  const Tensor t(1.f);
  check_throws_with<ValueError>(bad({{"params/a/k", t}, {"params/b", t}, {"params/a/k", t}}),
                                {"from_leaves", "duplicate path \"params/a/k\""});
  check_throws_with<ValueError>(bad({{"params//k", t}}), {"\"params//k\"", "empty segment"});
  check_throws_with<ValueError>(bad({{"/params/k", t}}), {"\"/params/k\"", "empty segment"});
  check_throws_with<ValueError>(bad({{"params/k/", t}}), {"\"params/k/\"", "empty segment"});
  check_throws_with<ValueError>(bad({{"", t}}), {"invalid path \"\""});
  check_throws_with<ValueError>(bad({{"kernel", t}}), {"\"kernel\"", "collection and a name"});
  check_throws_with<ValueError>(bad({{"params/k", Tensor{}}}), {"\"params/k\"", "empty"});
  // Leaf and prefix at once, also when other paths sort between them ("a-x" < "a/").
  check_throws_with<ValueError>(bad({{"params/a/b", t}, {"params/a", t}}),
                                {"\"params/a\"", "both a leaf and a prefix", "\"params/a/b\""});
  check_throws_with<ValueError>(bad({{"params/a/b/c", t}, {"params/a-x", t}, {"params/a/b", t}, {"params/a/b-x", t}}),
                                {"\"params/a/b\"", "both a leaf and a prefix", "\"params/a/b/c\""});

  const Variables v = mlp_variables();
  check_throws_with<ValueError>([&] { (void)v.set("params/Dense_0", t); },
                                {"set", "\"params/Dense_0\"", "both a leaf and a prefix", "\"params/Dense_0/bias\""});
  check_throws_with<ValueError>([&] { (void)v.set("params/Dense_0/kernel/x", t); },
                                {"\"params/Dense_0/kernel\"", "both a leaf and a prefix", "\"params/Dense_0/kernel/x\""});
  check_throws_with<ValueError>([&] { (void)v.set("params", t); }, {"\"params\"", "collection and a name"});
  check_throws_with<ValueError>([&] { (void)v.set("params/Dense_0/w", Tensor{}); }, {"\"params/Dense_0/w\"", "empty"});
}

TEST_CASE("Variables: set copies only the changed path; the rest is shared") {
  const Variables v = mlp_variables();
  const Variables copy = v;  // a copy shares everything
  CHECK(copy.node_identity("") == v.node_identity(""));

  const Tensor old_kernel = v.at("params/Dense_1/kernel");
  const Variables w = v.set("params/Dense_1/kernel", zeros(Shape{3, 2}));
  // The original is unchanged.
  check_close(v.at("params/Dense_1/kernel"), old_kernel);
  CHECK(data_of(v.at("params/Dense_1/kernel")) == data_of(old_kernel));
  check_close(w.at("params/Dense_1/kernel"), std::vector<float>(6, 0.f), Shape{3, 2});
  CHECK(w.size() == 6);
  CHECK(w.num_elements() == 29);
  // New nodes on the path, shared nodes elsewhere (both subtrees and leaves).
  CHECK(w.node_identity("") != v.node_identity(""));
  CHECK(w.node_identity("params") != v.node_identity("params"));
  CHECK(w.node_identity("params/Dense_1") != v.node_identity("params/Dense_1"));
  CHECK(w.node_identity("params/Dense_0") == v.node_identity("params/Dense_0"));
  CHECK(w.node_identity("batch_stats") == v.node_identity("batch_stats"));
  CHECK(w.node_identity("params/Dense_1/bias") == v.node_identity("params/Dense_1/bias"));
  CHECK(w.node_identity("params/Dense_1/bias") != nullptr);
  CHECK(w.node_identity("params/Dense_9") == nullptr);
  CHECK(data_of(w.at("params/Dense_0/kernel")) == data_of(v.at("params/Dense_0/kernel")));

  // Adding leaves: a new leaf in a module, a new module, a new collection.
  const Variables x = v.set("params/Dense_1/scale", ones(Shape{2}))
                          .set("params/Dense_2/kernel", ones(Shape{2, 1}))
                          .set("intermediates/Dense_0/out", ones(Shape{5}));
  CHECK(x.size() == 9);
  CHECK(x.num_elements() == 29 + 2 + 2 + 5);
  CHECK(x.collections() == Strings{"batch_stats", "intermediates", "params"});
  CHECK(x.paths()[5] == "params/Dense_1/bias");
  CHECK(x.paths()[7] == "params/Dense_1/scale");
  CHECK(x.node_identity("params/Dense_0") == v.node_identity("params/Dense_0"));
  CHECK(v.size() == 6);
  CHECK_FALSE(v.contains("params/Dense_2/kernel"));
}

TEST_CASE("Variables: KeyError names the path and the nearest existing paths") {
  const Variables v = mlp_variables();
  CHECK(message_of([&] { (void)v.at("params/Dense_1/kernl"); }) ==
        "weft::Variables::at: no variable at \"params/Dense_1/kernl\"; nearest existing paths: "
        "\"params/Dense_1/kernel\", \"params/Dense_1/bias\"");
  CHECK_THROWS_AS((void)v.at("params/Dense_1/kernl"), KeyError);
  // A typo in the collection: every leaf is a candidate, ranked by common prefix then edit distance.
  CHECK(v.nearest_paths("parms/Dense_0/bias") ==
        Strings{"params/Dense_0/bias", "params/Dense_1/bias", "params/Dense_0/kernel"});
  CHECK(v.nearest_paths("batch_stats/BatchNorm_0/varr") ==
        Strings{"batch_stats/BatchNorm_0/var", "batch_stats/BatchNorm_0/mean"});
  CHECK(v.nearest_paths("params/Dense_3/bias", 1) == Strings{"params/Dense_0/bias"});
  CHECK(Variables().nearest_paths("params/x").empty());
  // A module is not a leaf; the message says so and lists its leaves.
  check_throws_with<KeyError>([&] { (void)v.at("params/Dense_0"); },
                              {"no variable at \"params/Dense_0\"", "module holding 2 leaves",
                               "\"params/Dense_0/bias\", \"params/Dense_0/kernel\""});
  check_throws_with<KeyError>([&] { (void)v.at("params/Dense_0/kernel/x"); },
                              {"\"params/Dense_0/kernel/x\"", "nearest existing paths: \"params/Dense_0/kernel\""});
  check_throws_with<KeyError>([] { (void)Variables().at("params/x"); }, {"\"params/x\"", "is empty"});
}

TEST_CASE("Variables: collection, subtree, merge, without") {
  const Variables v = mlp_variables();
  const Variables params = v.collection("params");
  CHECK(params.paths() == Strings{"params/Dense_0/bias", "params/Dense_0/kernel", "params/Dense_1/bias",
                                  "params/Dense_1/kernel"});
  CHECK(params.num_elements() == 23);
  CHECK(params.node_identity("params") == v.node_identity("params"));
  CHECK(v.collection("batch_stats").size() == 2);
  CHECK(v.collection("cache").empty());
  check_throws_with<ValueError>([&] { (void)v.collection("params/Dense_0"); }, {"not a collection name", "subtree"});

  const Variables dense0 = v.subtree("params/Dense_0");
  CHECK(dense0.paths() == Strings{"params/Dense_0/bias", "params/Dense_0/kernel"});
  CHECK(dense0.node_identity("params/Dense_0") == v.node_identity("params/Dense_0"));
  CHECK(v.subtree("params/Dense_0/bias").paths() == Strings{"params/Dense_0/bias"});
  CHECK(v.subtree("params/Dense_7").empty());
  CHECK(v.subtree("params/Dense_0/bias/x").empty());
  CHECK(v.subtree("").size() == 6);

  // merge: the union; the other side's leaves win; untouched subtrees are shared.
  const Variables stats = Variables::from_leaves({{"batch_stats/BatchNorm_0/mean", full(Shape{3}, 0.5f)},
                                                  {"batch_stats/BatchNorm_1/mean", full(Shape{4}, 2.f)}});
  const Variables merged = v.merge(stats);
  CHECK(merged.size() == 7);
  check_close(merged.at("batch_stats/BatchNorm_0/mean"), {0.5f, 0.5f, 0.5f}, Shape{3});
  check_close(merged.at("batch_stats/BatchNorm_0/var"), {1, 1, 1}, Shape{3});
  check_close(merged.at("batch_stats/BatchNorm_1/mean"), {2, 2, 2, 2}, Shape{4});
  CHECK(merged.node_identity("params") == v.node_identity("params"));
  CHECK(merged.node_identity("batch_stats/BatchNorm_1") == stats.node_identity("batch_stats/BatchNorm_1"));
  CHECK(merged.node_identity("batch_stats/BatchNorm_0/var") == v.node_identity("batch_stats/BatchNorm_0/var"));
  check_close(v.at("batch_stats/BatchNorm_0/mean"), {0, 0, 0}, Shape{3});  // unchanged
  check_close(stats.merge(v).at("batch_stats/BatchNorm_0/mean"), {0, 0, 0}, Shape{3});
  CHECK(v.merge(Variables()).node_identity("") == v.node_identity(""));
  CHECK(Variables().merge(v).node_identity("") == v.node_identity(""));
  CHECK(v.merge(v).node_identity("") == v.node_identity(""));
  const Variables clash = Variables::from_leaves({{"params/Dense_0", ones(Shape{1})}});
  check_throws_with<ValueError>([&] { (void)v.merge(clash); },
                                {"merge", "\"params/Dense_0\"", "both a leaf and a prefix", "\"params/Dense_0/bias\""});
  check_throws_with<ValueError>([&] { (void)clash.merge(v); }, {"merge", "\"params/Dense_0\""});

  // without
  const Variables no_stats = v.without("batch_stats");
  CHECK(no_stats.collections() == Strings{"params"});
  CHECK(no_stats.size() == 4);
  CHECK(no_stats.num_elements() == 23);
  CHECK(no_stats.node_identity("params") == v.node_identity("params"));
  CHECK(v.without("cache").node_identity("") == v.node_identity(""));
  CHECK(v.without("batch_stats").without("params").empty());
  CHECK(v.size() == 6);
}

TEST_CASE("Variables: prefixed and unprefixed nest a tree under a name and back, sharing its nodes") {
  const Variables v = mlp_variables();
  const Variables mu = v.prefixed("mu");
  CHECK(mu.paths() == Strings{"mu/batch_stats/BatchNorm_0/mean", "mu/batch_stats/BatchNorm_0/var",
                              "mu/params/Dense_0/bias", "mu/params/Dense_0/kernel", "mu/params/Dense_1/bias",
                              "mu/params/Dense_1/kernel"});
  CHECK(mu.collections() == Strings{"mu"});
  CHECK(mu.node_identity("mu/params") == v.node_identity("params"));
  CHECK(mu.node_identity("mu") == v.node_identity(""));
  const Variables deep = v.collection("params").prefixed("1/nu");
  CHECK(deep.paths().front() == "1/nu/params/Dense_0/bias");
  CHECK(deep.size() == 4);
  CHECK(deep.node_identity("1/nu/params") == v.node_identity("params"));
  CHECK(Variables().prefixed("mu").empty());

  // unprefixed is the inverse, without copying.
  CHECK(mu.unprefixed("mu").node_identity("") == v.node_identity(""));
  CHECK(deep.unprefixed("1/nu").paths() == v.collection("params").paths());
  CHECK(deep.unprefixed("1").paths().front() == "nu/params/Dense_0/bias");
  CHECK(deep.unprefixed("2").empty());
  CHECK(deep.unprefixed("").node_identity("") == deep.node_identity(""));
  CHECK(Variables().unprefixed("mu").empty());
  // Both collections of a merged state come apart again.
  const Variables state = v.prefixed("mu").merge(v.prefixed("nu"));
  CHECK(state.unprefixed("nu").paths() == v.paths());
  CHECK(state.unprefixed("nu").node_identity("params") == v.node_identity("params"));

  check_throws_with<ValueError>([&] { (void)v.prefixed(""); }, {"prefixed", "empty"});
  check_throws_with<ValueError>([&] { (void)v.prefixed("a//b"); }, {"prefixed", "\"a//b\""});
  check_throws_with<ValueError>([&] { (void)v.prefixed("a/"); }, {"prefixed"});
  check_throws_with<ValueError>([&] { (void)v.unprefixed("params/Dense_0"); },
                                {"unprefixed", "\"params/Dense_0/bias\"", "one-segment path \"bias\""});
  check_throws_with<ValueError>([&] { (void)v.unprefixed("params/Dense_0/bias"); }, {"unprefixed", "is a leaf"});
}

TEST_CASE("tree_map: one tree, several trees, paths, and structure mismatches") {
  const Variables v = mlp_variables();
  const Variables doubled = tree_map([](const Tensor& t) { return t * 2.f; }, v);
  CHECK(doubled.paths() == v.paths());
  check_close(doubled.at("params/Dense_0/bias"), {0.2f, 0.4f, 0.6f}, Shape{3});
  check_close(doubled.at("params/Dense_1/kernel"), pattern(Shape{3, 2}, -1, 1, 3) * 2.f);
  check_close(v.at("params/Dense_0/bias"), {0.1f, 0.2f, 0.3f}, Shape{3});  // unchanged
  // The result may change shapes (e.g. per-leaf norms).
  const Variables sums = tree_map([](const Tensor& t) { return sum(t); }, v);
  check_close(sums.at("batch_stats/BatchNorm_0/var"), {3}, Shape{});

  // Path-aware f: e.g. weight decay on kernels only.
  Strings seen;
  const Variables decayed = tree_map(
      [&seen](std::string_view path, const Tensor& t) {
        seen.emplace_back(path);
        return path.ends_with("/kernel") ? t * 0.5f : t;
      },
      v);
  CHECK(seen == v.paths());
  check_close(decayed.at("params/Dense_0/kernel"), pattern(Shape{4, 3}, -1, 1, 1) * 0.5f);
  CHECK(data_of(decayed.at("params/Dense_0/bias")) == data_of(v.at("params/Dense_0/bias")));

  // Two and three trees.
  const Variables sum2 = tree_map([](const Tensor& a, const Tensor& b) { return a + b; }, v, doubled);
  check_close(sum2.at("params/Dense_0/bias"), {0.3f, 0.6f, 0.9f}, Shape{3}, 1e-6f);
  const Variables fma = tree_map([](const Tensor& a, const Tensor& b, const Tensor& c) { return a * b + c; },
                                 v, doubled, v);
  check_close(fma.at("params/Dense_1/bias"), {1, 3}, Shape{2});  // b * 2b + b
  const Variables masked = tree_map(
      [](std::string_view path, const Tensor& a, const Tensor& b) { return path.starts_with("params/") ? b : a; },
      v, doubled);
  check_close(masked.at("params/Dense_1/bias"), {-2, 2}, Shape{2});
  check_close(masked.at("batch_stats/BatchNorm_0/var"), {1, 1, 1}, Shape{3});
  CHECK(tree_map([](const Tensor& t) { return t; }, Variables()).empty());

  // Mismatched structure: the first path (in sorted order) in one tree and not the other.
  const Variables fewer = v.without("batch_stats");
  check_throws_with<KeyError>([&] { (void)tree_map([](const Tensor& a, const Tensor& b) { return a + b; }, v, fewer); },
                              {"weft::tree_map", "\"batch_stats/BatchNorm_0/mean\" is in tree 1 but not in tree 2"});
  const Variables more = v.set("params/Dense_0/scale", ones(Shape{3}));
  check_throws_with<KeyError>([&] { (void)tree_map([](const Tensor& a, const Tensor& b) { return a + b; }, v, more); },
                              {"\"params/Dense_0/scale\" is in tree 2 but not in tree 1"});
  // A leaf in one tree is a module in the other.
  const Tensor t = ones(Shape{1});
  const Variables odd = v.without("params").merge(Variables::from_leaves(
      {{"params/Dense_0/bias/x", t}, {"params/Dense_0/kernel", t}, {"params/Dense_1/bias", t}, {"params/Dense_1/kernel", t}}));
  CHECK(odd.size() == v.size());
  CHECK_FALSE(same_structure(v, odd));
  CHECK(structure_difference(v, odd) == "params/Dense_0/bias");
  CHECK(structure_difference(odd, v) == "params/Dense_0/bias");
  CHECK(structure_difference(v, more) == "params/Dense_0/scale");
  CHECK_FALSE(structure_difference(v, doubled).has_value());
  CHECK(same_structure(v, doubled));
  check_throws_with<KeyError>(
      [&] {
        (void)tree_map([](const Tensor& a, const Tensor& b, const Tensor& c) { return a + b + c; }, v, doubled, odd);
      },
      {"\"params/Dense_0/bias\" is in tree 1 but not in tree 3"});
  check_throws_with<ValueError>([&] { (void)tree_map([](const Tensor&) { return Tensor{}; }, v); },
                                {"empty Tensor", "\"batch_stats/BatchNorm_0/mean\""});
}

TEST_CASE("Variables: printing lists every leaf and the totals per collection") {
  const Variables v = mlp_variables();
  const std::string expected =
      "batch_stats/BatchNorm_0/mean  (3,)    float32\n"
      "batch_stats/BatchNorm_0/var   (3,)    float32\n"
      "params/Dense_0/bias           (3,)    float32\n"
      "params/Dense_0/kernel         (4, 3)  float32\n"
      "params/Dense_1/bias           (2,)    float32\n"
      "params/Dense_1/kernel         (3, 2)  float32\n"
      "batch_stats: 2 leaves, 6 parameters\n"
      "params:      4 leaves, 23 parameters\n"
      "total:       6 leaves, 29 parameters";
  CHECK(v.str() == expected);
  std::ostringstream os;
  os << v;
  CHECK(os.str() == expected);
  CHECK(Variables::from_leaves({{"state/step", Tensor({3}, Shape{})}}).str() ==
        "state/step  ()  int32\n"
        "state: 1 leaf, 1 parameter\n"
        "total: 1 leaf, 1 parameter");
  CHECK(Variables().str() == "(no variables)\ntotal: 0 leaves, 0 parameters");
}

TEST_CASE("value_and_grad of a function of Variables: params only, batch_stats constant") {
  // f = sum(w * x) + mean(m) * sum(b^2): df/dw = x, df/db = 2 b mean(m); m is not differentiated.
  const Tensor x({1.f, -2.f, 3.f}, Shape{3});
  const Variables v = Variables::from_leaves({
      {"params/lin/w", Tensor({0.5f, 1.f, -1.f}, Shape{3})},
      {"params/lin/b", Tensor({2.f, -3.f}, Shape{2})},
      {"params/unused/u", ones(Shape{2, 2})},
      {"batch_stats/bn/m", Tensor({1.f, 3.f}, Shape{2})},
  });
  bool stats_tracked = true, params_tracked = false;
  const auto f = [&](const Variables& vars, const Tensor& input) {
    params_tracked = vars.at("params/lin/w").is_tracked() && vars.at("params/lin/b").is_tracked();
    stats_tracked = vars.at("batch_stats/bn/m").is_tracked();
    return sum(vars.at("params/lin/w") * input) + mean(vars.at("batch_stats/bn/m")) * sum(square(vars.at("params/lin/b")));
  };
  const auto [value, g] = value_and_grad(f)(v, x);
  CHECK(params_tracked);
  CHECK_FALSE(stats_tracked);
  // 0.5 - 2 - 3 + 2 * (4 + 9) = 21.5
  CHECK(value.item() == doctest::Approx(21.5));
  CHECK_FALSE(value.is_tracked());
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(g)>, Variables>);
  CHECK(g.collections() == Strings{"params"});
  CHECK(g.paths() == Strings{"params/lin/b", "params/lin/w", "params/unused/u"});
  check_close(g.at("params/lin/w"), {1, -2, 3}, Shape{3});
  check_close(g.at("params/lin/b"), {8, -12}, Shape{2});
  check_close(g.at("params/unused/u"), {0, 0, 0, 0}, Shape{2, 2});
  CHECK_FALSE(g.at("params/lin/w").is_tracked());
  // The input is unchanged.
  CHECK_FALSE(v.at("params/lin/w").is_tracked());
  check_close(v.at("params/lin/b"), {2, -3}, Shape{2});

  // One SGD step on the params, then merged back: batch_stats are kept as they were.
  const Variables stepped =
      v.merge(tree_map([](const Tensor& p, const Tensor& d) { return p - 0.5f * d; }, v.collection("params"), g));
  check_close(stepped.at("params/lin/w"), {0, 2, -2.5f}, Shape{3});
  check_close(stepped.at("params/lin/b"), {-2, 3}, Shape{2});
  CHECK(stepped.node_identity("batch_stats") == v.node_identity("batch_stats"));

  // grad and value_and_grad_with_aux (aux: updated statistics, as a training step returns them).
  check_close(grad(f)(v, x).at("params/lin/b"), {8, -12}, Shape{2});
  const auto with_aux = value_and_grad_with_aux([](const Variables& vars) {
    const Tensor loss = sum(square(vars.at("params/lin/w")));
    return std::pair{loss, Variables::from_leaves({{"batch_stats/bn/m", stop_gradient(vars.at("params/lin/b"))}})};
  })(v);
  CHECK(with_aux.value.item() == doctest::Approx(2.25));
  check_close(with_aux.grad.at("params/lin/w"), {1, 2, -2}, Shape{3});
  check_close(v.merge(with_aux.aux).at("batch_stats/bn/m"), {2, -3}, Shape{2});
}

TEST_CASE("value_and_grad of Variables: a clear error without params, or with integer params") {
  const Variables stats_only = Variables::from_leaves({{"batch_stats/bn/m", ones(Shape{2})}});
  const auto f = [](const Variables& vars) { return sum(vars.at("batch_stats/bn/m")); };
  check_throws_with<ValueError>([&] { (void)value_and_grad(f)(stats_only); },
                                {"has no 'params' collection", "\"batch_stats\""});
  check_throws_with<ValueError>([&] { (void)grad(f)(Variables()); }, {"has no 'params' collection", "empty"});
  const Variables int_params = Variables::from_leaves({{"params/emb/ids", Tensor({1, 2}, Shape{2})}});
  check_throws_with<DTypeError>([&] { (void)grad([](const Variables&) { return Tensor(0.f); })(int_params); },
                                {"\"params/emb/ids\"", "int32", "float32"});
}
