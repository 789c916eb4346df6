#pragma once
// weft::jit: a pure function traced once per input signature and replayed as a compiled plan, as
// jax.jit.
//
//   const auto step = weft::jit([&](const Variables& params, const Variables& opt_state,
//                                   const Tensor& x, const Tensor& labels, Key key) { ... });
//   auto [params2, opt_state2, loss] = step(params, opt_state, x, labels, key);
//
// The first call with a given signature (the shapes and dtypes of the tensor arguments, the
// structure of Variables and other containers, the values of non-tensor arguments such as
// `bool train`) runs f once on recording tensors and keeps the ops it ran, its gradient
// (value_and_grad inside f) and its optimizer update included. Later calls of that signature
// replay the plan: none of f's own code runs again, so no scopes, names or parameter lookups;
// only the ops, on the new values. A new signature traces again; trace_count() says how often
// that happened, and JitOptions::log_compiles prints a line each time (jax.log_compiles).
//
// What this means for f, as for jax.jit:
//  - f must be pure. C++ side effects in f (printing, counting, pushing to a vector) happen only
//    while it is traced, not on the calls that replay it.
//  - Tensors that f captures instead of taking them as arguments are constants: the plan keeps
//    the value they had when f was traced. Changing a captured tensor afterwards (assigning a
//    new value to a variable captured by reference) does not reach the plan: pass it as an
//    argument instead.
//  - Code between ops must not depend on values: a shape, a branch or a host computation that
//    reads a tensor computed from the inputs (item(), to_vector(), values()) is a weft::Error at
//    trace time that names the op that computed it.
//  - Keys are ordinary inputs: dropout masks and other draws follow the key of each call, as in
//    eager mode. A key f makes itself (Key(0)) is a constant, as in JAX.
//  - Results equal eager mode's bit for bit: the plan runs each op's own arithmetic in the same
//    order (elementwise ops fused into one pass keep theirs, element by element).
//  - A jitted function called while another is traced is inlined into that trace; called with
//    tensors that are being differentiated (inside weft::grad), it runs f eagerly.
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "weft/jit/traceable.hpp"

namespace weft {

struct JitOptions {
  /// Plans kept, one per signature; the least recently used is dropped beyond this (at least 1).
  std::size_t cache_size = 8;
  /// One line on stderr per trace: the function's name and the signature traced.
  bool log_compiles = false;
  /// The name in that line and in errors.
  std::string name = "function";
};

namespace detail {

struct JitPlan;

/// Runs f on recording copies of `inputs` (each tensor a distinct value, each key replaced by a
/// fresh one so that keys f makes itself are told apart) and compiles what it recorded.
std::shared_ptr<const JitPlan> jit_trace(const JitFlat& inputs, const std::function<JitFlat(const JitFlat&)>& f);
/// The plan run on new inputs of the traced signature. An input that only `inputs` holds (a donated
/// argument) may have its elements overwritten by a result computed in place.
JitFlat jit_run(const JitPlan& plan, JitFlat inputs);
/// True while a trace is being recorded on this thread.
bool jit_tracing() noexcept;
/// True when a tensor of `flat` is being differentiated (weft::jit then runs f eagerly).
bool jit_any_tracked(const JitFlat& flat) noexcept;
/// A zero-element placeholder for the tensors of the result kept as a template (so that the
/// cache does not keep the first call's tensors alive).
Tensor jit_placeholder();

/// What a plan holds, for tests and logs: ops recorded at trace time, steps it runs.
struct JitPlanStats {
  std::size_t recorded_ops = 0, steps = 0, constants = 0, gemms = 0;
  std::size_t fused_ops = 0;   // elementwise ops that run inside fused chains
  std::size_t merged_ops = 0;  // ops that repeat an earlier one (common subexpressions), not run
  std::size_t arena_bytes = 0;  // the buffer that holds the values only kernels read and write
  std::size_t vjp_steps = 0;    // gradients replayed through an op's recorded graph, not as ops
};
JitPlanStats jit_stats(const JitPlan& plan);
/// The plan's products on the GEMM backend alone, back to back on zeroed buffers of their shapes:
/// the floor weft-bench compares a jitted step with.
std::function<void()> jit_gemm_floor(const JitPlan& plan);

/// The plans of one jitted function, most recently used first; shared by its copies.
class JitCache {
 public:
  explicit JitCache(JitOptions options);
  struct Entry {
    std::shared_ptr<const JitPlan> plan;
    std::shared_ptr<const void> result;  // the result's structure (a template of f's return type)
  };
  /// The entry for `signature` whose Variables have the structures of `trees`, moved to the front;
  /// a null plan when there is none.
  Entry find(const std::string& signature, std::span<const Variables* const> trees);
  /// Adds an entry after a trace (dropping the least recently used) and logs it; the entry keeps
  /// `objects` (JitFlattener::static_object) alive.
  Entry insert(const std::string& signature, std::span<const Variables* const> trees,
               std::span<const std::shared_ptr<const void>> objects, Entry entry, const std::string& description);
  [[nodiscard]] std::size_t trace_count() const;
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::shared_ptr<const JitPlan> latest() const;
  [[nodiscard]] const JitOptions& options() const noexcept { return options_; }

 private:
  struct Slot {
    std::string signature;
    std::vector<Variables> trees;  // the structures traced (placeholder leaves)
    std::vector<std::shared_ptr<const void>> objects;  // whose addresses the signature holds
    Entry entry;
  };
  JitOptions options_;
  mutable std::mutex mutex_;
  std::vector<Slot> slots_;  // most recently used first
  std::size_t traces_ = 0;
};

}  // namespace detail

/// The callable weft::jit returns; copies share one cache of plans.
template <class F>
class Jitted {
 public:
  Jitted(F f, JitOptions options)
      : f_(std::move(f)), cache_(std::make_shared<detail::JitCache>(std::move(options))) {}

  /// f(args...). An argument passed as an rvalue (std::move(params)) is donated, as jax.jit's
  /// donate_argnums: the plan may compute a result in the buffers of its tensors where nothing else
  /// holds them, so an optimizer step updates params and moments in place. The moved-from argument
  /// is left empty. An lvalue argument is never written.
  template <class... A>
  auto operator()(A&&... a) const {
    return call<std::decay_t<A>...>(std::forward<A>(a)...);
  }

  /// How many times f has been traced (once per new signature, again after one was dropped).
  [[nodiscard]] std::size_t trace_count() const { return cache_->trace_count(); }
  /// The plan of the most recent call (null before the first), for benchmarks and tests.
  [[nodiscard]] std::shared_ptr<const detail::JitPlan> latest_plan() const { return cache_->latest(); }
  /// Plans in the cache now.
  [[nodiscard]] std::size_t cache_size() const { return cache_->size(); }
  [[nodiscard]] const F& function() const noexcept { return f_; }

 private:
  template <class... Args, class... A>
  auto call(A&&... args) const {
    static_assert((JitTraceable<Args> && ...),
                  "weft::jit: an argument type is not traceable; weft::Traceable<T> lists the types weft::jit "
                  "takes (Tensor, Key, Variables, numbers, containers and WEFT_RECORD aggregates of them)");
    using R = std::decay_t<std::invoke_result_t<const F&, const Args&...>>;
    static_assert(JitTraceable<R>, "weft::jit: the function's result type is not traceable (see weft::Traceable)");
    if (detail::jit_tracing()) return R(std::invoke(f_, std::as_const(args)...));  // inlined into the outer trace
    JitFlattener in;
    in.signature.reserve(512);
    in.flat.tensors.reserve(64);
    static const std::size_t type = typeid(std::tuple<Args...>).hash_code();  // hashed once per type
    in.static_bytes(&type, sizeof type, {});
    (Traceable<Args>::flatten(args, in), ...);
    if (detail::jit_any_tracked(in.flat)) return R(std::invoke(f_, std::as_const(args)...));
    detail::JitCache::Entry entry = cache_->find(in.signature, in.trees);
    if (entry.plan == nullptr) entry = trace<R, Args...>(in, args...);
    (donate(std::forward<A>(args)), ...);  // the flat list then holds the only references
    const detail::JitFlat out = detail::jit_run(*entry.plan, std::move(in.flat));
    JitUnflattener u(out);
    return Traceable<R>::unflatten(*static_cast<const R*>(entry.result.get()), u);
  }

  template <class T>
  static void donate(T&& arg) {
    if constexpr (!std::is_lvalue_reference_v<T>) [[maybe_unused]] const std::decay_t<T> gone = std::move(arg);
  }

  template <class R, class... Args>
  detail::JitCache::Entry trace(const JitFlattener& in, const Args&... args) const {
    std::shared_ptr<const R> result;
    auto plan = detail::jit_trace(in.flat, [&](const detail::JitFlat& traced) {
      JitUnflattener u(traced);
      std::tuple<Args...> rebuilt{Traceable<Args>::unflatten(args, u)...};
      const R r = std::apply(f_, rebuilt);
      JitFlattener out;
      Traceable<R>::flatten(r, out);
      detail::JitFlat placeholders{std::vector<Tensor>(out.flat.tensors.size(), detail::jit_placeholder()),
                                   out.flat.keys};
      JitUnflattener p(placeholders);
      result = std::make_shared<const R>(Traceable<R>::unflatten(r, p));
      return out.flat;
    });
    std::string description;
    if (cache_->options().log_compiles) {
      JitFlattener d(/*describe=*/true);
      (Traceable<Args>::flatten(args, d), ...);
      description = std::move(d.description);
    }
    return cache_->insert(in.signature, in.trees, in.objects, {std::move(plan), std::move(result)}, description);
  }

  F f_;
  std::shared_ptr<detail::JitCache> cache_;
};

/// f traced once per input signature and replayed as a compiled plan (see the top of this file).
template <class F>
[[nodiscard]] Jitted<std::decay_t<F>> jit(F&& f, JitOptions options = {}) {
  return Jitted<std::decay_t<F>>(std::forward<F>(f), std::move(options));
}

}  // namespace weft
