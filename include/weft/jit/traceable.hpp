#pragma once
// weft::Traceable<T>: how weft::jit takes an argument or a result apart into the tensors and
// keys that vary from call to call, and the static rest that picks the compiled plan (shapes,
// dtypes, tree structure, the values of non-tensor arguments), as jax.jit flattens pytrees.
//
// Provided for Tensor, Key, Variables, arithmetic types and enums (static values), std::string,
// std::vector, std::array, std::pair, std::tuple, std::optional, ValueAndGrad, ValueAuxAndGrad
// and every aggregate reflected with WEFT_RECORD or BOOST_HANA_ADAPT_STRUCT whose fields are
// traceable; weft/training/train_state.hpp adds training::TrainState. Specialise Traceable for
// another type with the same two functions.
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>

#include "weft/autodiff.hpp"
#include "weft/random.hpp"
#include "weft/tensor.hpp"
#include "weft/variables.hpp"

namespace weft {

namespace detail {
/// The tensors and keys of a flattened argument list or result, in order.
struct JitFlat {
  std::vector<Tensor> tensors;
  std::vector<Key> keys;
};
}  // namespace detail

/// Collects what varies (tensors, keys) and the signature: bytes that equal those of another call
/// exactly when that call can replay the same plan. `describe` adds readable text for the log.
class JitFlattener {
 public:
  explicit JitFlattener(bool describe = false) : describe_(describe) {}

  void tensor(const Tensor& t);
  void key(Key k);
  /// A static value: its bytes decide the signature; `text` is how the log shows it.
  void static_bytes(const void* bytes, std::size_t n, std::string_view text);
  /// A static object compared by identity (a TrainState's optimizer): its address decides the
  /// signature, and the cache keeps the object alive with the plan, so that no other object
  /// takes that address while the plan can be found by it.
  void static_object(std::shared_ptr<const void> object, std::string_view text);
  /// Structure: a tag character and a count (the size of a list, the leaves of a tree).
  void structure(char tag, std::size_t count);
  /// A Variables: its leaves, and its structure, which the cache compares with the traced one's
  /// (the signature holds the leaves' shapes; the paths are compared apart, node by node).
  void tree(const Variables& v);
  /// Separators for the description only.
  void open(std::string_view text);
  void close(std::string_view text);

  detail::JitFlat flat;
  std::string signature;
  std::string description;
  std::vector<const Variables*> trees;  // the Variables flattened, in order (valid during the call)
  std::vector<std::shared_ptr<const void>> objects;  // the static objects, in order

 private:
  bool describe_;
};

/// Hands out the tensors and keys of a JitFlat in order, to rebuild values of the traced types.
class JitUnflattener {
 public:
  explicit JitUnflattener(const detail::JitFlat& flat) noexcept : flat_(flat) {}
  Tensor tensor();
  Key key();
  std::span<const Tensor> tensors(std::size_t n);

 private:
  const detail::JitFlat& flat_;
  std::size_t tensor_ = 0, key_ = 0;
};

template <class T>
struct Traceable;

/// A type weft::jit can take as an argument or return: Traceable<T> is specialised for it.
template <class T>
concept JitTraceable = requires(const T& t, JitFlattener& f, JitUnflattener& u) {
  Traceable<T>::flatten(t, f);
  { Traceable<T>::unflatten(t, u) } -> std::same_as<T>;
};

template <>
struct Traceable<Tensor> {
  static void flatten(const Tensor& t, JitFlattener& f) { f.tensor(t); }
  /// An empty Tensor stays empty (it has no tensor in the flat list).
  static Tensor unflatten(const Tensor& like, JitUnflattener& u) { return like.defined() ? u.tensor() : Tensor(); }
};

template <>
struct Traceable<Key> {
  static void flatten(const Key& k, JitFlattener& f) { f.key(k); }
  static Key unflatten(const Key&, JitUnflattener& u) { return u.key(); }
};

template <>
struct Traceable<Variables> {
  static void flatten(const Variables& v, JitFlattener& f) { f.tree(v); }
  static Variables unflatten(const Variables& like, JitUnflattener& u) {
    return detail::with_leaves(like, u.tensors(like.size()));
  }
};

/// Arithmetic values and enums are static: each value traces its own plan (as jax.jit's
/// static_argnums; a `bool train` picks the training or the evaluation step).
template <class T>
  requires(std::is_arithmetic_v<T> || std::is_enum_v<T>)
struct Traceable<T> {
  static void flatten(const T& v, JitFlattener& f) {
    std::string text;
    if constexpr (std::is_same_v<T, bool>)
      text = v ? "true" : "false";
    else if constexpr (std::is_enum_v<T>)
      text = std::to_string(static_cast<std::underlying_type_t<T>>(v));
    else
      text = std::to_string(v);
    f.static_bytes(&v, sizeof(T), text);
  }
  static T unflatten(const T& like, JitUnflattener&) { return like; }
};

template <>
struct Traceable<std::string> {
  static void flatten(const std::string& s, JitFlattener& f) {
    f.structure('s', s.size());
    f.static_bytes(s.data(), s.size(), "\"" + s + "\"");
  }
  static std::string unflatten(const std::string& like, JitUnflattener&) { return like; }
};

template <JitTraceable T>
struct Traceable<std::vector<T>> {
  static void flatten(const std::vector<T>& xs, JitFlattener& f) {
    f.structure('L', xs.size());
    f.open("[");
    for (const T& x : xs) Traceable<T>::flatten(x, f);
    f.close("]");
  }
  static std::vector<T> unflatten(const std::vector<T>& like, JitUnflattener& u) {
    std::vector<T> out;
    out.reserve(like.size());
    for (const T& x : like) out.push_back(Traceable<T>::unflatten(x, u));
    return out;
  }
};

template <JitTraceable T, std::size_t N>
struct Traceable<std::array<T, N>> {
  static void flatten(const std::array<T, N>& xs, JitFlattener& f) {
    f.open("[");
    for (const T& x : xs) Traceable<T>::flatten(x, f);
    f.close("]");
  }
  static std::array<T, N> unflatten(const std::array<T, N>& like, JitUnflattener& u) {
    std::array<T, N> out = like;
    for (std::size_t i = 0; i < N; ++i) out[i] = Traceable<T>::unflatten(like[i], u);
    return out;
  }
};

template <JitTraceable... Ts>
struct Traceable<std::tuple<Ts...>> {
  static void flatten(const std::tuple<Ts...>& t, JitFlattener& f) {
    f.open("(");
    std::apply([&f](const Ts&... xs) { (Traceable<Ts>::flatten(xs, f), ...); }, t);
    f.close(")");
  }
  static std::tuple<Ts...> unflatten(const std::tuple<Ts...>& like, JitUnflattener& u) {
    // Braced initialisation rebuilds the elements left to right, in flattening order.
    return std::apply([&u](const Ts&... xs) { return std::tuple<Ts...>{Traceable<Ts>::unflatten(xs, u)...}; }, like);
  }
};

template <JitTraceable A, JitTraceable B>
struct Traceable<std::pair<A, B>> {
  static void flatten(const std::pair<A, B>& p, JitFlattener& f) {
    f.open("(");
    Traceable<A>::flatten(p.first, f);
    Traceable<B>::flatten(p.second, f);
    f.close(")");
  }
  static std::pair<A, B> unflatten(const std::pair<A, B>& like, JitUnflattener& u) {
    return std::pair<A, B>{Traceable<A>::unflatten(like.first, u), Traceable<B>::unflatten(like.second, u)};
  }
};

template <JitTraceable T>
struct Traceable<std::optional<T>> {
  static void flatten(const std::optional<T>& o, JitFlattener& f) {
    f.structure('O', o.has_value() ? 1 : 0);
    if (o) Traceable<T>::flatten(*o, f);
    else f.open("nullopt");
  }
  static std::optional<T> unflatten(const std::optional<T>& like, JitUnflattener& u) {
    if (!like) return std::nullopt;
    return Traceable<T>::unflatten(*like, u);
  }
};

template <JitTraceable G>
struct Traceable<ValueAndGrad<G>> {
  static void flatten(const ValueAndGrad<G>& v, JitFlattener& f) {
    Traceable<Tensor>::flatten(v.value, f);
    Traceable<G>::flatten(v.grad, f);
  }
  static ValueAndGrad<G> unflatten(const ValueAndGrad<G>& like, JitUnflattener& u) {
    Tensor value = Traceable<Tensor>::unflatten(like.value, u);
    return {std::move(value), Traceable<G>::unflatten(like.grad, u)};
  }
};

template <JitTraceable G, JitTraceable Aux>
struct Traceable<ValueAuxAndGrad<G, Aux>> {
  static void flatten(const ValueAuxAndGrad<G, Aux>& v, JitFlattener& f) {
    Traceable<Tensor>::flatten(v.value, f);
    Traceable<Aux>::flatten(v.aux, f);
    Traceable<G>::flatten(v.grad, f);
  }
  static ValueAuxAndGrad<G, Aux> unflatten(const ValueAuxAndGrad<G, Aux>& like, JitUnflattener& u) {
    Tensor value = Traceable<Tensor>::unflatten(like.value, u);
    Aux aux = Traceable<Aux>::unflatten(like.aux, u);
    return {std::move(value), std::move(aux), Traceable<G>::unflatten(like.grad, u)};
  }
};

/// A reflected aggregate (WEFT_RECORD, BOOST_HANA_ADAPT_STRUCT): its fields in declaration order.
template <class T>
  requires(std::is_class_v<T> && boost::hana::Struct<T>::value)
struct Traceable<T> {
  static void flatten(const T& x, JitFlattener& f) {
    f.open("{");
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto accessor) {
      const auto& field = boost::hana::second(accessor)(x);
      using Field = std::decay_t<decltype(field)>;
      static_assert(JitTraceable<Field>, "weft::jit: a field of this record is not traceable (see Traceable)");
      Traceable<Field>::flatten(field, f);
    });
    f.close("}");
  }
  static T unflatten(const T& like, JitUnflattener& u) {
    T out = like;
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto accessor) {
      auto& field = boost::hana::second(accessor)(out);
      using Field = std::decay_t<decltype(field)>;
      field = Traceable<Field>::unflatten(boost::hana::second(accessor)(like), u);
    });
    return out;
  }
};

}  // namespace weft
