// The tracer of weft::jit: values by identity, the ops and vjp steps recorded, and the checks
// that code between ops does not read the values being traced.
#include "trace.hpp"

#include <bit>

#include <fmt/format.h>

#include "weft/jit.hpp"

namespace weft {

namespace detail {

[[gnu::tls_model("initial-exec")]] thread_local Tracer* active_tracer = nullptr;

Tensor key_tensor(Key key) {
  const auto w = key.words();
  return Tensor(std::vector<std::int32_t>{std::bit_cast<std::int32_t>(w[0]), std::bit_cast<std::int32_t>(w[1])},
                Shape{2});
}

Key key_from_tensor(const Tensor& words, ThreefryLayout layout) {
  const std::int32_t* w = data<std::int32_t>(words);
  return Key::from_words({std::bit_cast<std::uint32_t>(w[0]), std::bit_cast<std::uint32_t>(w[1])}, layout);
}

namespace {

std::uint64_t key_id(Key key) noexcept {
  const auto w = key.words();
  return (std::uint64_t{w[0]} << 32 | w[1]) ^ (key.layout() == ThreefryLayout::classic ? 0x9e3779b97f4a7c15ull : 0);
}

}  // namespace

Tracer::Tracer() = default;

int Tracer::find(const std::shared_ptr<TensorImpl>& impl) const {
  const auto it = ids_.find(impl.get());
  if (it == ids_.end()) return -1;
  return values_[static_cast<std::size_t>(it->second)].impl.lock() == impl ? it->second : -1;
}

int Tracer::value_of(const Tensor& t) {
  require_defined(t, "jit");
  if (const int id = find(TensorAccess::impl(t)); id >= 0) return id;
  const int id = add_value(t, false, nullptr);
  producer_of.back() = -2;
  return id;
}

int Tracer::key_value(Key key) {
  if (auto it = key_ids_.find(key_id(key)); it != key_ids_.end()) return it->second;
  const int id = add_value(key_tensor(key), false, nullptr);
  producer_of.back() = -2;
  return id;
}

int Tracer::add_value(const Tensor& t, bool dynamic, const char* op) {
  const int id = static_cast<int>(values_.size());
  const auto& impl = TensorAccess::impl(t);
  values_.push_back({dynamic ? Tensor() : detach(t), impl, impl->shape, impl->dtype});
  dynamic_.push_back(dynamic);
  producer_of.push_back(op == nullptr ? -1 : static_cast<int>(instructions.size()));
  ids_[TensorAccess::impl(t).get()] = id;
  return id;
}

void Tracer::name_key(Key key, int id) { key_ids_[key_id(key)] = id; }

bool Tracer::dynamic_key(std::array<std::uint32_t, 2> words) const {
  for (const ThreefryLayout layout : {ThreefryLayout::partitionable, ThreefryLayout::classic}) {
    const auto it = key_ids_.find(key_id(Key::from_words(words, layout)));
    if (it != key_ids_.end() && dynamic_[static_cast<std::size_t>(it->second)]) return true;
  }
  return false;
}

std::string Tracer::producer(int id) const {
  const int p = producer_of[static_cast<std::size_t>(id)];
  if (p == -1) return "an input of the function";
  if (p == -2) return "a constant";
  const JitInstruction& ins = instructions[static_cast<std::size_t>(p)];
  return ins.is_vjp() ? fmt::format("the gradient of '{}'", ins.op) : fmt::format("the result of '{}'", ins.op);
}

int Tracer::dynamic_value(const Tensor& t) const {
  const auto& impl = TensorAccess::impl(t);
  if (impl == nullptr) return -1;
  const int id = find(impl);
  return id >= 0 && dynamic_[static_cast<std::size_t>(id)] ? id : -1;
}

const std::shared_ptr<autodiff::Node>& Tracer::leaf(std::size_t i) {
  while (leaves_.size() <= i) leaves_.push_back(std::make_shared<autodiff::LeafNode>(leaves_.size()));
  return leaves_[i];
}

void Tracer::own_node(const std::shared_ptr<autodiff::Node>& node, int instruction, int output) {
  node_owner_[node.get()] = {node, instruction, output};
}

void Tracer::backward(autodiff::Node& node, const Tensor& grad, std::span<Tensor> input_grads) {
  if (node.backward_is_ops) {  // its ops and backward passes record themselves
    node.backward(grad, input_grads);
    return;
  }
  const auto owner = node_owner_.find(&node);
  if (owner == node_owner_.end() || owner->second.node.lock().get() != &node)
    throw Error(fmt::format("weft::jit: the gradient flows through '{}', which weft::jit cannot trace; call the "
                            "function without weft::jit",
                            node.op()));
  JitInstruction v;
  v.op = node.op();
  v.forward = owner->second.instruction;
  v.forward_output = owner->second.output;
  const int g = value_of(grad);
  v.inputs.push_back(g);
  v.dynamic = dynamic(g) || instructions[static_cast<std::size_t>(v.forward)].dynamic;
  {
    RecordingPause pause;
    node.backward(grad, input_grads);
  }
  for (std::size_t k = 0; k < input_grads.size(); ++k) {
    if (!input_grads[k].defined()) continue;
    v.grad_of.push_back(static_cast<int>(k));
    v.outputs.push_back(add_value(input_grads[k], v.dynamic, v.op));
  }
  instructions.push_back(std::move(v));
}

const std::vector<std::shared_ptr<autodiff::Node>>& Tracer::leaves() const noexcept { return leaves_; }

bool adopt_inputs(Tracer& tracer, Tensor& out, const std::vector<std::shared_ptr<autodiff::Node>>& inputs) {
  autodiff::Node* node = node_of(out);
  if (!node->backward_is_ops) return false;
  const auto& leaves = tracer.leaves();
  std::vector<std::shared_ptr<autodiff::Node>> real;
  real.reserve(node->inputs.size());
  for (const auto& in : node->inputs) {
    if (in == nullptr) {
      real.push_back(nullptr);
      continue;
    }
    const auto* leaf = dynamic_cast<const autodiff::LeafNode*>(in.get());
    if (leaf == nullptr || leaf->index >= leaves.size() || leaves[leaf->index] != in) return false;
    real.push_back(inputs[leaf->index]);
  }
  node->inputs = std::move(real);
  return true;
}

void attach_boundary(Tracer& tracer, Tensor& out, const char* op, std::vector<std::shared_ptr<autodiff::Node>> inputs,
                     int instruction, int output) {
  const std::size_t n = inputs.size();
  auto boundary = std::make_shared<autodiff::FnNode<std::function<void(const Tensor&, std::span<Tensor>)>>>(
      op, [internal = out, n](const Tensor& g, std::span<Tensor> grads) {
        std::vector<Tensor> r = autodiff::backpropagate(internal, g, n);
        for (std::size_t k = 0; k < n; ++k) grads[k] = std::move(r[k]);
      });
  boundary->inputs = std::move(inputs);
  tracer.own_node(boundary, instruction, output);
  out = detach(out);
  set_node(out, std::move(boundary));
}

void Tracer::check_read(const Tensor& t, const char* what) {
  const int id = dynamic_value(t);
  if (id < 0) return;
  throw Error(fmt::format(
      "weft::jit: {} read the value of a tensor that the traced function computes from its inputs ({}). Under "
      "weft::jit the code between weft ops runs once, while the function is traced, so it cannot depend on values: "
      "a shape, a branch or a host computation that does would keep this call's value for every later call. Keep "
      "the computation in weft ops, or pass the value in as a non-tensor argument (each new value traces again)",
      what, producer(id)));
}

void Tracer::check_key(std::array<std::uint32_t, 2> words, const char* what) {
  if (!dynamic_key(words)) return;
  throw Error(fmt::format("weft::jit: {} drew random words from a key that the traced function derives from its "
                          "inputs, outside weft's traced ops; the trace would keep this call's words for every later "
                          "call. Draw with weft's random ops (uniform, normal, bernoulli, split, fold_in) instead",
                          what));
}

void Tracer::check_write(const Tensor& t) {
  const int id = dynamic_value(t);
  if (id < 0) return;
  throw Error(fmt::format("weft::jit: a kernel outside weft's traced ops writes into a tensor the trace holds ({}); "
                          "values are immutable under weft::jit",
                          producer(id)));
}

bool jit_tracing() noexcept { return active_tracer != nullptr; }

bool jit_any_tracked(const JitFlat& flat) noexcept {
  for (const Tensor& t : flat.tensors)
    if (t.is_tracked()) return true;
  return false;
}

}  // namespace detail

// ---------------------------------------------------------------- flattening

namespace {

bool opens_group(const std::string& d) noexcept {
  return d.empty() || d.back() == '{' || d.back() == '[' || d.back() == '(' || d.back() == ' ';
}

/// A tensor's dtype, rank and extents onto a signature. One fixed-size append per extent: a copy of
/// the variable-length run compiles to a string instruction whose start-up costs more than the
/// rest of a small call's flattening.
void append_shape(std::string& signature, DType dtype, const Shape& s) {
  signature += static_cast<char>(dtype);
  signature += static_cast<char>(s.rank());
  for (const std::int64_t extent : s) signature.append(reinterpret_cast<const char*>(&extent), sizeof extent);
}

}  // namespace

void JitFlattener::tensor(const Tensor& t) {
  if (!t.defined()) {
    signature += 'E';
    if (describe_) {
      if (!opens_group(description)) description += ", ";
      description += "empty";
    }
    return;
  }
  const detail::TensorImpl& impl = *detail::TensorAccess::impl(t);
  const Shape& s = impl.shape;
  signature += 'T';
  append_shape(signature, impl.dtype, s);
  flat.tensors.push_back(t);
  if (describe_) {
    if (!opens_group(description)) description += ", ";
    description += fmt::format("{}{}", weft::name(t.dtype()), s.str());
  }
}

void JitFlattener::key(Key k) {
  signature += 'K';
  signature += static_cast<char>(k.layout());
  flat.keys.push_back(k);
  if (describe_) {
    if (!opens_group(description)) description += ", ";
    description += k.layout() == ThreefryLayout::classic ? "Key(classic)" : "Key";
  }
}

void JitFlattener::static_bytes(const void* bytes, std::size_t n, std::string_view text) {
  signature += 'S';
  signature.append(static_cast<const char*>(bytes), n);
  if (describe_ && !text.empty()) {
    if (!opens_group(description)) description += ", ";
    description += text;
  }
}

void JitFlattener::static_object(std::shared_ptr<const void> object, std::string_view text) {
  const void* address = object.get();
  static_bytes(&address, sizeof address, text);
  objects.push_back(std::move(object));
}

void JitFlattener::structure(char tag, std::size_t count) {
  signature += tag;
  signature.append(reinterpret_cast<const char*>(&count), sizeof count);
}

void JitFlattener::tree(const Variables& v) {
  structure('V', v.size());
  trees.push_back(&v);
  if (describe_) {
    open("Variables{");
    detail::visit_leaves(v, [this](std::string_view path, const Tensor& t) {
      if (!opens_group(description)) description += ", ";
      description += path;
      description += ' ';
      tensor(t);
    });
    close("}");
    return;
  }
  const std::size_t first = flat.tensors.size();
  detail::append_leaves(v, flat.tensors);
  for (std::size_t i = first; i < flat.tensors.size(); ++i) {
    const detail::TensorImpl& impl = *detail::TensorAccess::impl(flat.tensors[i]);
    append_shape(signature, impl.dtype, impl.shape);
  }
}

void JitFlattener::open(std::string_view text) {
  if (!describe_) return;
  if (!opens_group(description)) description += ", ";
  description += text;
}

void JitFlattener::close(std::string_view text) {
  if (describe_) description += text;
}

Tensor JitUnflattener::tensor() {
  if (tensor_ >= flat_.tensors.size()) throw Error("weft::jit: a result has more tensors than the plan returns");
  return flat_.tensors[tensor_++];
}

Key JitUnflattener::key() {
  if (key_ >= flat_.keys.size()) throw Error("weft::jit: a result has more keys than the plan returns");
  return flat_.keys[key_++];
}

std::span<const Tensor> JitUnflattener::tensors(std::size_t n) {
  if (tensor_ + n > flat_.tensors.size()) throw Error("weft::jit: a result has more tensors than the plan returns");
  std::span<const Tensor> out(flat_.tensors.data() + tensor_, n);
  tensor_ += n;
  return out;
}

}  // namespace weft
