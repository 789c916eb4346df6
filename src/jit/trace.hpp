#pragma once
// Internal: how weft's ops take part in the traces of weft::jit (include/weft/jit.hpp).
//
// While a function is traced, each op wrapped in `traced` runs as usual and records itself once:
// its name, the values it reads and writes, and a replay closure that runs the same body on new
// values. Everything between ops (the function's own code, scopes and path lookups, the autodiff
// engine's bookkeeping) runs at trace time only. Code between ops must not look at values that
// depend on the inputs: tensor_impl.hpp's element accessors report such a read as an error.
//
// Gradients: an op whose inputs carry autodiff nodes runs its body on copies tracked as leaves
// 0..n-1 of a graph of its own. When that graph is one node made by autodiff::record_ops (its
// backward runs only traced ops), the node is pointed at the op's real inputs and the trace
// records the ops its backward runs. Otherwise the output carries one "boundary" node over the
// real inputs whose backward is that graph's vector-Jacobian product: the engine's call of it is
// recorded as a vjp step, and at replay the op's body runs tracked again and the vjp step
// back-propagates through the graph it recorded. So every op's gradient replays. weft's own ops all
// record their gradients with record_ops (a gradient that needs more than the op's inputs and
// outputs is an op of its own over them, or the op returns what it needs as another output), so
// vjp steps remain for a graph of several nodes inside one op's body only.
#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../autodiff/engine.hpp"
#include "../autodiff/node.hpp"
#include "../tensor_impl.hpp"
#include "weft/random.hpp"

namespace weft::detail {

/// Runs a recorded op on new values: `in` holds its arguments in order (a key as its two words in
/// an int32 tensor of shape (2,)), `out` receives its results in order.
using JitReplay = std::function<void(std::span<const Tensor> in, std::span<Tensor> out)>;

/// An op lowered for a compiled plan: the same computation as its body, on raw buffers of the
/// traced shapes (`in[i]` the elements of input i, `out[j]` of output j, which the plan allocates
/// with the traced shape and dtype), with no checks, no tensors and no allocation. Only for ops
/// that are not differentiated at trace time; the results must be the body's, bit for bit.
struct JitKernel {
  std::function<void(const void* const* in, void* const* out)> run{};
  /// (output, input) pairs: the output may be written over that input, element by element (an
  /// elementwise kernel), which the plan does when the input dies here and nothing else holds it.
  std::vector<std::pair<int, int>> in_place{};
  /// A product on the GEMM backend (what weft-bench's floor lines time alone).
  bool gemm = false;
  /// An addition of two operands of the output's shape (in[0] + in[1]).
  bool adds = false;
  /// The kernel with output `output` replaced by addend + output, the addend an extra last input:
  /// what the plan runs instead of this kernel and an `adds` kernel that is that output's only
  /// reader (Adam's update and apply_updates in one pass). Empty where not offered.
  std::function<JitKernel(int output)> fuse_add{};
  /// An elementwise float kernel's form on a range, which lets the plan fuse a chain of them into
  /// one loop over blocks (the chain's intermediates then live in a block-sized buffer, in cache):
  /// writes elements [begin, begin + count) of its one output to `out`. `in[k]` points at element
  /// `begin` of input k where `aligned[k]` (an input of the output's shape), and at its start
  /// otherwise (a broadcast operand, which the kernel indexes itself). Empty where not offered.
  std::function<void(const float* const* in, float* out, std::int64_t begin, std::int64_t count)> block{};
  std::vector<bool> aligned{};
  /// What besides the op's name and its inputs decides its results (an attribute such as the
  /// function of a unary op's gradient): two kernels alike in all three compute the same values,
  /// and the plan keeps the first (common-subexpression elimination). Empty: never merged.
  std::string identity{};
  /// An op whose work includes products on the GEMM backend beside other passes (a convolution's
  /// im2col and col2im): those products alone, at the op's shapes, on buffers of `product_bytes`
  /// each; what weft-bench's floor lines time for it.
  std::function<void(const float* a, const float* b, float* c)> products{};
  std::size_t product_bytes = 0;
};

struct JitInstruction {
  const char* op = "";
  std::vector<int> inputs;   // value ids; -1 for an absent (empty) operand
  std::vector<int> outputs;  // value ids
  bool dynamic = false;      // reads a value that depends on the inputs
  // An op: its replay, and which inputs were tracked at trace time (the replay tracks them again
  // when a vjp step needs the op's graph).
  JitReplay replay;
  JitKernel kernel;  // optional: the op lowered
  std::vector<bool> tracked;
  // A vjp step: the op instruction and output whose gradient it propagates, and for each of its
  // outputs the index of the op input that output is the gradient of.
  int forward = -1;
  int forward_output = 0;
  std::vector<int> grad_of;
  [[nodiscard]] bool is_vjp() const noexcept { return forward >= 0; }
};

/// A key's words as an int32 tensor of shape (2,), and back.
Tensor key_tensor(Key key);
Key key_from_tensor(const Tensor& words, ThreefryLayout layout);

class Tracer final : public TraceChecks {
 public:
  Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  /// The id of `t`: its latest recorded value, or a new constant (a tensor made before the trace,
  /// or from constants only).
  int value_of(const Tensor& t);
  /// The id of a key: a value derived from an input key, or a new constant key.
  int key_value(Key key);
  /// A new value computed by `op` (or an input, op null).
  int add_value(const Tensor& t, bool dynamic, const char* op);
  /// Marks a key's words as the value `id` (an input key, or one derived from it).
  void name_key(Key key, int id);
  [[nodiscard]] bool dynamic(int id) const { return dynamic_[static_cast<std::size_t>(id)]; }
  /// True when `words` are those of a key derived from an input key (in either layout).
  [[nodiscard]] bool dynamic_key(std::array<std::uint32_t, 2> words) const;
  /// The op that computed a recorded value, for messages ("an input" for an input).
  [[nodiscard]] std::string producer(int id) const;
  /// The id of `t` when it is a recorded value that depends on the inputs, else -1.
  [[nodiscard]] int dynamic_value(const Tensor& t) const;

  /// Leaf i of the per-op graphs: shared by every op, as LeafNode is immutable.
  const std::shared_ptr<autodiff::Node>& leaf(std::size_t i);
  [[nodiscard]] const std::vector<std::shared_ptr<autodiff::Node>>& leaves() const noexcept;
  /// An op's boundary node, owned by output `output` of instruction `instruction`.
  void own_node(const std::shared_ptr<autodiff::Node>& node, int instruction, int output);
  void check_read(const Tensor& t, const char* what) override;
  void check_write(const Tensor& t) override;
  void check_key(std::array<std::uint32_t, 2> words, const char* what) override;

  /// The backward of `node` at trace time, recorded as a vjp step (weft::jit's error when the
  /// node is not the boundary of a traced op).
  void backward(autodiff::Node& node, const Tensor& grad, std::span<Tensor> input_grads);

  std::vector<JitInstruction> instructions;
  std::vector<int> producer_of;  // instruction index, -1 for an input, -2 for a constant

  [[nodiscard]] std::size_t value_count() const noexcept { return values_.size(); }
  /// The tensor of a value that does not depend on the inputs (the plan keeps it as a constant).
  /// A value that depends on them is held only by the code that uses it, as in eager mode, so
  /// that a trace frees what eager mode frees; its shape and dtype stay.
  [[nodiscard]] const Tensor& constant(int id) const { return values_[static_cast<std::size_t>(id)].constant; }
  [[nodiscard]] const Shape& shape(int id) const { return values_[static_cast<std::size_t>(id)].shape; }
  [[nodiscard]] DType dtype(int id) const { return values_[static_cast<std::size_t>(id)].dtype; }

 private:
  struct Value {
    Tensor constant;                  // a value that does not depend on the inputs
    std::weak_ptr<TensorImpl> impl;   // tells a live value from a dead one at the same address
    Shape shape;
    DType dtype = DType::float32;
  };
  /// The id recorded for `impl`, or -1 (none, or one that died and whose address was reused).
  [[nodiscard]] int find(const std::shared_ptr<TensorImpl>& impl) const;
  std::vector<Value> values_;
  std::vector<bool> dynamic_;
  std::unordered_map<const TensorImpl*, int> ids_;
  std::unordered_map<std::uint64_t, int> key_ids_;
  struct Owner {
    std::weak_ptr<autodiff::Node> node;  // tells the node from a later one at the same address
    int instruction, output;
  };
  std::unordered_map<const autodiff::Node*, Owner> node_owner_;
  std::vector<std::shared_ptr<autodiff::Node>> leaves_;
};

/// The trace active on this thread at any depth (nested weft::jit calls inline into it).
[[gnu::tls_model("initial-exec")]] extern thread_local Tracer* active_tracer;

/// The trace being recorded on this thread outside every traced op, or null.
inline Tracer* recording() noexcept { return static_cast<Tracer*>(recording_tracer); }

/// While alive, this thread records nothing: an op's body runs its kernels and nested ops freely.
class RecordingPause {
 public:
  RecordingPause() noexcept : saved_(recording_tracer) { recording_tracer = nullptr; }
  ~RecordingPause() { recording_tracer = saved_; }
  RecordingPause(const RecordingPause&) = delete;
  RecordingPause& operator=(const RecordingPause&) = delete;

 private:
  TraceChecks* saved_;
};

// ---------------------------------------------------------------- argument and result kinds

namespace jit_args {

inline constexpr std::size_t count(const Tensor&) { return 1; }
inline constexpr std::size_t count(const Key&) { return 1; }
inline std::size_t count(const std::vector<Tensor>& ts) { return ts.size(); }

/// Appends the ids of an argument and the real nodes of its tensors (null for untracked ones).
/// What flattening an op's arguments gathers: their ids (in the instruction), their real autodiff
/// nodes, the layouts of keys, and the values the body sees (untracked; keys as word tensors).
struct Flattened {
  std::vector<std::shared_ptr<autodiff::Node>> nodes;
  std::vector<ThreefryLayout> layouts;
  std::vector<Tensor> values;
};

inline void flatten(Tracer& tracer, const Tensor& t, JitInstruction& ins, Flattened& f) {
  if (!t.defined()) {  // an absent operand (a layer norm without scale): passed on as empty
    ins.inputs.push_back(-1);
    ins.tracked.push_back(false);
    f.nodes.push_back(nullptr);
    f.values.emplace_back();
    return;
  }
  const int id = tracer.value_of(t);
  ins.inputs.push_back(id);
  ins.dynamic = ins.dynamic || tracer.dynamic(id);
  ins.tracked.push_back(node_of(t) != nullptr);
  f.nodes.push_back(node_ptr(t));
  f.values.push_back(detach(t));
}
inline void flatten(Tracer& tracer, const Key& k, JitInstruction& ins, Flattened& f) {
  const int id = tracer.key_value(k);
  ins.inputs.push_back(id);
  ins.dynamic = ins.dynamic || tracer.dynamic(id);
  ins.tracked.push_back(false);
  f.nodes.push_back(nullptr);
  f.layouts.push_back(k.layout());
  f.values.push_back(key_tensor(k));
}
inline void flatten(Tracer& tracer, const std::vector<Tensor>& ts, JitInstruction& ins, Flattened& f) {
  for (const Tensor& t : ts) flatten(tracer, t, ins, f);
}

/// The argument rebuilt from replay values `in` from position `pos` on; `tracked` copies are
/// leaves `pos`... of the op's own graph (trace time), none at replay.
struct Source {
  std::span<const Tensor> in;
  const std::vector<ThreefryLayout>& layouts;
  std::size_t pos = 0, key = 0;
};
template <class T>
T rebuild(Source& s, std::size_t n);
template <>
inline Tensor rebuild<Tensor>(Source& s, std::size_t) {
  return s.in[s.pos++];
}
template <>
inline Key rebuild<Key>(Source& s, std::size_t) {
  return key_from_tensor(s.in[s.pos++], s.layouts[s.key++]);
}
template <>
inline std::vector<Tensor> rebuild<std::vector<Tensor>>(Source& s, std::size_t n) {
  std::vector<Tensor> out(s.in.begin() + static_cast<std::ptrdiff_t>(s.pos),
                          s.in.begin() + static_cast<std::ptrdiff_t>(s.pos + n));
  s.pos += n;
  return out;
}

/// Results: a Tensor, a Key, or a fixed-size list of either.
template <class R>
struct Result;
template <>
struct Result<Tensor> {
  static void slots(Tensor& r, std::vector<Tensor*>& ts, std::vector<Key*>&) { ts.push_back(&r); }
};
template <>
struct Result<Key> {
  static void slots(Key& r, std::vector<Tensor*>&, std::vector<Key*>& ks) { ks.push_back(&r); }
};
template <>
struct Result<std::vector<Tensor>> {
  static void slots(std::vector<Tensor>& r, std::vector<Tensor*>& ts, std::vector<Key*>&) {
    for (Tensor& t : r) ts.push_back(&t);
  }
};
template <>
struct Result<std::vector<Key>> {
  static void slots(std::vector<Key>& r, std::vector<Tensor*>&, std::vector<Key*>& ks) {
    for (Key& k : r) ks.push_back(&k);
  }
};
template <std::size_t N>
struct Result<std::array<Tensor, N>> {
  static void slots(std::array<Tensor, N>& r, std::vector<Tensor*>& ts, std::vector<Key*>&) {
    for (Tensor& t : r) ts.push_back(&t);
  }
};

}  // namespace jit_args

/// When `out`'s node records its backward as ops (Node::backward_is_ops) and reads only the op's
/// own leaves, points its inputs at the op's real input nodes, so that the trace records that
/// backward as the ops it runs; false (and nothing changed) otherwise.
bool adopt_inputs(Tracer& tracer, Tensor& out, const std::vector<std::shared_ptr<autodiff::Node>>& inputs);

/// Output `output` of the op `instruction` carries a boundary node over `inputs` whose backward
/// back-propagates through the op's own graph (the node `out` carries now) to its n inputs.
void attach_boundary(Tracer& tracer, Tensor& out, const char* op, std::vector<std::shared_ptr<autodiff::Node>> inputs,
                     int instruction, int output);

template <class Body, class... Args>
auto trace_call(Tracer& tracer, const char* op, const Body& body, const Args&... args) {
  using R = std::invoke_result_t<const Body&, const Args&...>;
  JitInstruction ins;
  ins.op = op;
  jit_args::Flattened flat;
  (jit_args::flatten(tracer, args, ins, flat), ...);
  const std::array<std::size_t, sizeof...(Args)> counts{jit_args::count(args)...};
  std::vector<std::shared_ptr<autodiff::Node>>& nodes = flat.nodes;
  const std::vector<ThreefryLayout>& layouts = flat.layouts;

  // The values the body sees: the arguments, tracked as leaves of the op's own graph.
  std::vector<Tensor>& in = flat.values;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (ins.tracked[i]) set_node(in[i], tracer.leaf(i));
  auto call = [body, counts, layouts](std::span<const Tensor> values) -> R {
    jit_args::Source source{values, layouts};
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> R {
      // Braced initialisation reads the arguments left to right.
      std::tuple<std::decay_t<Args>...> rebuilt{jit_args::rebuild<std::decay_t<Args>>(source, counts[I])...};
      return std::apply(body, rebuilt);
    }(std::index_sequence_for<Args...>{});
  };
  R result = [&] {
    RecordingPause pause;
    return call(in);
  }();
  ins.replay = [call](std::span<const Tensor> values, std::span<Tensor> out) {
    R r = call(values);
    std::vector<Tensor*> ts;
    std::vector<Key*> ks;
    jit_args::Result<R>::slots(r, ts, ks);
    std::size_t o = 0;
    for (Tensor* t : ts) out[o++] = std::move(*t);
    for (Key* k : ks) out[o++] = key_tensor(*k);
  };

  const int index = static_cast<int>(tracer.instructions.size());
  std::vector<Tensor*> ts;
  std::vector<Key*> ks;
  jit_args::Result<R>::slots(result, ts, ks);
  bool needs_graph = false;
  for (std::size_t j = 0; j < ts.size(); ++j) {
    if (node_of(*ts[j]) != nullptr && !adopt_inputs(tracer, *ts[j], nodes)) {
      attach_boundary(tracer, *ts[j], op, nodes, index, static_cast<int>(j));
      needs_graph = true;
    }
    ins.outputs.push_back(tracer.add_value(*ts[j], ins.dynamic, op));
  }
  // An op whose gradient is recorded as ops replays without tracking (and may be lowered).
  if (!needs_graph) ins.tracked.clear();
  for (Key* k : ks) {
    const int id = tracer.add_value(key_tensor(*k), ins.dynamic, op);
    if (ins.dynamic) tracer.name_key(*k, id);
    ins.outputs.push_back(id);
  }
  tracer.instructions.push_back(std::move(ins));
  return result;
}

/// body(args...), recorded as op `op` when a weft::jit trace is being recorded on this thread.
/// Arguments are Tensors, Keys and std::vector<Tensor>; the result a Tensor, a Key, or a
/// std::vector or std::array of them. `body` must be a pure function of its arguments (it is
/// replayed on new ones) and capture only attributes, by value.
template <class Body, class... Args>
auto traced(const char* op, const Body& body, const Args&... args) {
  if (Tracer* tracer = recording(); tracer != nullptr) [[unlikely]]
    return trace_call(*tracer, op, body, args...);
  return body(args...);
}

/// `traced` for an op that can be lowered: when the trace records it untracked, `lower(args...,
/// result)` (the traced values, so their shapes) returns its JitKernel, or one without `run` to
/// decline (a dtype or a layout the kernel does not cover).
template <class Body, class Lower, class... Args>
auto traced_lowered(const char* op, const Body& body, const Lower& lower, const Args&... args) {
  if (Tracer* tracer = recording(); tracer != nullptr) [[unlikely]] {
    auto result = trace_call(*tracer, op, body, args...);
    JitInstruction& ins = tracer->instructions.back();
    if (ins.tracked.empty()) ins.kernel = lower(args..., result);
    return result;
  }
  return body(args...);
}

}  // namespace weft::detail
