// weft::jit's plans: what a trace recorded, reduced to the steps that depend on the inputs, with
// the values each step frees; and the cache of plans per signature.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "../buffer.hpp"
#include "../parallel.hpp"
#include "trace.hpp"
#include "weft/jit.hpp"

namespace weft::detail {

namespace {

struct JitStep {
  enum class Kind { closure, kernel, vjp };
  Kind kind = Kind::closure;
  const char* op = "";
  std::vector<int> in, out;  // slots
  JitReplay replay;          // a closure: the op's body
  JitKernel kernel;          // a kernel: the op lowered, and the outputs it writes
  std::vector<Shape> out_shapes;
  std::vector<DType> out_dtypes;
  std::vector<bool> last_read;  // a kernel: per input, whether this step is its slot's last use
  std::vector<std::size_t> in_bytes;  // a kernel: the bytes of each input
  std::vector<bool> tracked;  // an op whose graph a vjp step reads: the inputs to track
  int keep = -1;              // an op: its first kept output; a vjp step: the kept output it reads
  std::vector<int> grad_of;   // a vjp step
  std::size_t forward_inputs = 0;
  std::vector<int> release, release_kept;
  std::size_t fused = 0;  // a fused chain: the ops it runs
};

}  // namespace

struct JitPlan {
  std::size_t slots = 0, kept = 0;
  // Values that only kernels read and write live in one arena, at offsets assigned by liveness;
  // -1 for a slot held as a Tensor. The plan keeps one arena for the call that takes it first;
  // a concurrent call allocates its own.
  std::vector<std::ptrdiff_t> arena_offset;
  std::size_t arena_bytes = 0;
  std::shared_ptr<void> arena;
  // The vectors a call works in, kept between calls so that a call allocates none of them; taken
  // with the arena.
  struct Scratch {
    std::vector<Tensor> values, kept, in, out;
    std::vector<const void*> in_data;
    std::vector<void*> out_data;
  };
  mutable Scratch scratch;
  mutable std::atomic<bool> busy{false};
  std::vector<std::pair<int, Tensor>> constants;
  std::vector<int> tensor_inputs, key_inputs;
  std::vector<JitStep> steps;
  std::vector<int> tensor_outputs, key_outputs;
  std::vector<ThreefryLayout> output_layouts;
  std::vector<std::shared_ptr<autodiff::Node>> leaves;
  std::size_t recorded = 0, merged = 0;
};

namespace {

/// Sets both thread-local pointers for the trace and restores them on exit, also on an exception.
class TraceScope {
 public:
  explicit TraceScope(Tracer& t) noexcept : recording_(recording_tracer), active_(active_tracer) {
    recording_tracer = &t;
    active_tracer = &t;
  }
  ~TraceScope() {
    recording_tracer = recording_;
    active_tracer = active_;
  }
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  TraceChecks* recording_;
  Tracer* active_;
};

/// The key that stands for input key i while tracing: a fresh value, so that a key the function
/// makes itself (often Key(0), as the caller's) is never mistaken for the input.
Key trace_key(std::size_t i, ThreefryLayout layout) {
  return Key::from_words(threefry2x32({0x6a09e667u, 0xbb67ae85u}, {0x3c6ef372u, static_cast<std::uint32_t>(i)}),
                         layout);
}

void assign_arena(JitPlan& plan, const std::vector<int>& last_use);

/// A kernel whose output's only reader is an `adds` kernel (Adam's update, then apply_updates)
/// becomes the kernel's fuse_add variant, which writes the sum in the same pass; the addition goes.
void fuse_adds(JitPlan& plan) {
  std::vector<int> readers(plan.slots, 0), producer(plan.slots, -1), output_of(plan.slots, -1);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    for (int s : plan.steps[i].in)
      if (s >= 0) ++readers[static_cast<std::size_t>(s)];
    for (std::size_t j = 0; j < plan.steps[i].out.size(); ++j) {
      producer[static_cast<std::size_t>(plan.steps[i].out[j])] = static_cast<int>(i);
      output_of[static_cast<std::size_t>(plan.steps[i].out[j])] = static_cast<int>(j);
    }
  }
  for (int s : plan.tensor_outputs) readers[static_cast<std::size_t>(s)] += 2;  // a result stays
  for (int s : plan.key_outputs) readers[static_cast<std::size_t>(s)] += 2;
  std::vector<bool> removed(plan.steps.size(), false);
  for (std::size_t b = 0; b < plan.steps.size(); ++b) {
    JitStep& add = plan.steps[b];
    if (add.kind != JitStep::Kind::kernel || !add.kernel.adds) continue;
    for (std::size_t k = 0; k < 2; ++k) {
      const int u = add.in[k], addend = add.in[1 - k];
      if (u < 0 || addend < 0 || readers[static_cast<std::size_t>(u)] != 1) continue;
      const int a = producer[static_cast<std::size_t>(u)];
      if (a < 0 || removed[static_cast<std::size_t>(a)]) continue;
      JitStep& first = plan.steps[static_cast<std::size_t>(a)];
      // The addend must exist when the first kernel runs.
      if (first.kind != JitStep::Kind::kernel || !first.kernel.fuse_add ||
          producer[static_cast<std::size_t>(addend)] >= a)
        continue;
      const int j = output_of[static_cast<std::size_t>(u)];
      if (first.out_shapes[static_cast<std::size_t>(j)] != add.out_shapes[0]) continue;
      JitKernel fused = first.kernel.fuse_add(j);
      if (!fused.run) continue;
      first.kernel = std::move(fused);
      first.in.push_back(addend);
      first.in_bytes.push_back(add.in_bytes[1 - k]);
      first.out[static_cast<std::size_t>(j)] = add.out[0];
      producer[static_cast<std::size_t>(add.out[0])] = a;
      removed[b] = true;
      break;
    }
  }
  std::size_t i = 0;
  std::erase_if(plan.steps, [&](const JitStep&) { return removed[i++]; });
}

/// A chain of elementwise kernels fused into one: per block of kBlock elements, each member
/// runs on the block in turn, reading the chain's intermediates from block buffers on the stack
/// (in cache) and writing to memory only the values read outside the chain.
struct FusedChain {
  static constexpr std::int64_t kBlock = 512;
  static constexpr std::size_t kMaxMembers = 8;
  struct Operand {
    bool member = false;  // the output of an earlier member, else input `index` of the fused kernel
    int index = 0;
    bool aligned = true;
  };
  struct Member {
    std::function<void(const float* const*, float*, std::int64_t, std::int64_t)> block;
    std::vector<Operand> in;
    int out = -1;  // the fused kernel's output it writes, or -1: a block buffer only
  };
  std::vector<Member> members;
  std::int64_t size = 0;

  void operator()(const void* const* in, void* const* out) const {
    parallel_for(size, kParallelGrain, [&](std::int64_t b0, std::int64_t e0) {
      alignas(64) float buffers[kMaxMembers][kBlock];
      std::array<const float*, 4> args{};
      for (std::int64_t begin = b0; begin < e0; begin += kBlock) {
        const std::int64_t n = std::min(kBlock, e0 - begin);
        for (std::size_t m = 0; m < members.size(); ++m) {
          const Member& x = members[m];
          for (std::size_t k = 0; k < x.in.size(); ++k) {
            const Operand& o = x.in[k];
            const auto i = static_cast<std::size_t>(o.index);
            if (!o.member)
              args[k] = static_cast<const float*>(in[i]) + (o.aligned ? begin : 0);
            else if (members[i].out >= 0)  // written to memory already, this block included
              args[k] = static_cast<const float*>(out[members[i].out]) + begin;
            else
              args[k] = buffers[i];
          }
          float* dest = x.out >= 0 ? static_cast<float*>(out[x.out]) + begin : buffers[m];
          x.block(args.data(), dest, begin, n);
        }
      }
    });
  }
};

/// Runs of consecutive elementwise kernels over outputs of one size become one FusedChain step: the
/// values read only inside the run are never written to memory, and the run makes one pass.
/// Bit for bit the same results: each member does its own arithmetic, element by element.
void fuse_elementwise(JitPlan& plan) {
  std::vector<int> outside_reads(plan.slots, 0);
  for (int s : plan.tensor_outputs) outside_reads[static_cast<std::size_t>(s)] += 1;
  for (int s : plan.key_outputs) outside_reads[static_cast<std::size_t>(s)] += 1;
  for (const JitStep& step : plan.steps)
    for (int s : step.in)
      if (s >= 0) ++outside_reads[static_cast<std::size_t>(s)];
  const auto fusable = [](const JitStep& s) {
    return s.kind == JitStep::Kind::kernel && s.kernel.block && s.out.size() == 1 &&
           s.out_dtypes[0] == DType::float32 && s.in.size() <= 4 &&
           std::ranges::none_of(s.in, [](int i) { return i < 0; });
  };
  std::vector<JitStep> steps;
  for (std::size_t i = 0; i < plan.steps.size();) {
    std::size_t end = i + 1;
    if (fusable(plan.steps[i]))
      while (end < plan.steps.size() && end - i < FusedChain::kMaxMembers && fusable(plan.steps[end]) &&
             plan.steps[end].out_shapes[0].numel() == plan.steps[i].out_shapes[0].numel())
        ++end;
    if (end - i < 2) {
      steps.push_back(std::move(plan.steps[i++]));
      continue;
    }
    // Reads by the run's own members do not count as reads from outside.
    std::vector<int> produced_at(plan.slots, -1);
    for (std::size_t m = i; m < end; ++m) {
      for (int s : plan.steps[m].in)
        if (produced_at[static_cast<std::size_t>(s)] >= 0) --outside_reads[static_cast<std::size_t>(s)];
      produced_at[static_cast<std::size_t>(plan.steps[m].out[0])] = static_cast<int>(m - i);
    }
    JitStep fused;
    fused.kind = JitStep::Kind::kernel;
    fused.op = "fused_elementwise";
    fused.fused = end - i;
    auto chain = std::make_shared<FusedChain>();
    chain->size = plan.steps[i].out_shapes[0].numel();
    std::vector<std::size_t> last_reader;  // per fused input: the last member that reads it
    std::vector<bool> aligned_only;        // per fused input: whether every member reads it aligned
    for (std::size_t m = i; m < end; ++m) {
      const JitStep& x = plan.steps[m];
      FusedChain::Member member{x.kernel.block, {}, -1};
      for (std::size_t k = 0; k < x.in.size(); ++k) {
        const int s = x.in[k];
        const int at = produced_at[static_cast<std::size_t>(s)];
        if (at >= 0 && at < static_cast<int>(m - i)) {
          member.in.push_back({true, at, true});
          continue;
        }
        auto found = std::ranges::find(fused.in, s);
        if (found == fused.in.end()) {
          fused.in.push_back(s);
          fused.in_bytes.push_back(x.in_bytes[k]);
          last_reader.push_back(0);
          aligned_only.push_back(true);
          found = fused.in.end() - 1;
        }
        const auto e = static_cast<std::size_t>(found - fused.in.begin());
        last_reader[e] = m - i;
        aligned_only[e] = aligned_only[e] && x.kernel.aligned[k];
        member.in.push_back({false, static_cast<int>(e), x.kernel.aligned[k]});
      }
      if (outside_reads[static_cast<std::size_t>(x.out[0])] > 0) {
        member.out = static_cast<int>(fused.out.size());
        fused.out.push_back(x.out[0]);
        fused.out_shapes.push_back(x.out_shapes[0]);
        fused.out_dtypes.push_back(x.out_dtypes[0]);
      }
      chain->members.push_back(std::move(member));
    }
    // An output may overwrite an input that only earlier members (or its own) read, element by
    // element: each block is read before it is written.
    for (std::size_t m = 0; m < chain->members.size(); ++m) {
      const int out = chain->members[m].out;
      if (out < 0) continue;
      for (std::size_t e = 0; e < fused.in.size(); ++e)
        if (aligned_only[e] && last_reader[e] <= m) fused.kernel.in_place.emplace_back(out, static_cast<int>(e));
    }
    fused.kernel.run = [chain](const void* const* in, void* const* out) { (*chain)(in, out); };
    steps.push_back(std::move(fused));
    i = end;
  }
  plan.steps = std::move(steps);
}

void build_plan(JitPlan& plan, Tracer& tracer, const std::vector<int>& tensor_inputs,
                const std::vector<int>& key_inputs, const std::vector<int>& tensor_outputs,
                const std::vector<int>& key_outputs, std::vector<ThreefryLayout> output_layouts) {
  const auto& ins = tracer.instructions;
  const std::size_t n_values = tracer.value_count(), n_ins = ins.size();
  std::vector<bool> needed_value(n_values, false), needed(n_ins, false), node_needed(n_ins, false), run(n_ins, false);
  for (int o : tensor_outputs) needed_value[static_cast<std::size_t>(o)] = true;
  for (int o : key_outputs) needed_value[static_cast<std::size_t>(o)] = true;
  // Dead code: an instruction runs only when a result, or a running vjp step, needs it; one that
  // reads constants only is folded (its trace-time value is a constant of the plan).
  for (std::size_t i = n_ins; i-- > 0;) {
    const JitInstruction& x = ins[i];
    const bool need = node_needed[i] || std::ranges::any_of(x.outputs, [&](int o) {
                        return needed_value[static_cast<std::size_t>(o)];
                      });
    if (!need) continue;
    needed[i] = true;
    run[i] = run[i] || x.dynamic;
    for (int in : x.inputs)
      if (in >= 0) needed_value[static_cast<std::size_t>(in)] = true;
    if (x.is_vjp() && run[i]) {
      node_needed[static_cast<std::size_t>(x.forward)] = true;
      run[static_cast<std::size_t>(x.forward)] = true;
    }
  }

  plan.recorded = n_ins;
  plan.leaves = tracer.leaves();
  plan.output_layouts = std::move(output_layouts);
  std::vector<int> slot(n_values, -1);
  auto new_slot = [&](int value) {
    slot[static_cast<std::size_t>(value)] = static_cast<int>(plan.slots++);
    return slot[static_cast<std::size_t>(value)];
  };
  for (int v : tensor_inputs) plan.tensor_inputs.push_back(new_slot(v));
  for (int v : key_inputs) plan.key_inputs.push_back(new_slot(v));
  // A value no running step computes (a constant, or computed from constants) has its trace-time
  // tensor as a constant of the plan.
  auto read_slot = [&](int value) {
    if (value < 0) return -1;
    const auto v = static_cast<std::size_t>(value);
    if (slot[v] < 0) {
      new_slot(value);
      plan.constants.emplace_back(slot[v], tracer.constant(value));
    }
    return slot[v];
  };

  // Common subexpressions: a kernel with the op, identity and inputs of an earlier one reads its
  // outputs instead of running again.
  std::vector<int> same_as(n_values);
  std::iota(same_as.begin(), same_as.end(), 0);
  const auto resolve = [&](int value) { return value < 0 ? value : same_as[static_cast<std::size_t>(value)]; };
  std::unordered_map<std::string, std::size_t> computed;
  std::vector<int> keep_of(n_ins, -1);
  for (std::size_t i = 0; i < n_ins; ++i) {
    if (!run[i]) continue;
    const JitInstruction& x = ins[i];
    if (x.kernel.run && !x.kernel.identity.empty() && !node_needed[i]) {
      std::string key = fmt::format("{}/{}", x.op, x.kernel.identity);
      for (int in : x.inputs) key += fmt::format("/{}", resolve(in));
      const auto [it, first] = computed.try_emplace(std::move(key), i);
      if (!first) {
        const JitInstruction& earlier = ins[it->second];
        for (std::size_t o = 0; o < x.outputs.size(); ++o)
          same_as[static_cast<std::size_t>(x.outputs[o])] = earlier.outputs[o];
        ++plan.merged;
        continue;
      }
    }
    JitStep s;
    s.kind = x.is_vjp() ? JitStep::Kind::vjp : JitStep::Kind::closure;
    s.op = x.op;
    for (int in : x.inputs) s.in.push_back(read_slot(resolve(in)));
    for (int o : x.outputs) s.out.push_back(new_slot(o));
    if (s.kind == JitStep::Kind::vjp) {
      s.keep = keep_of[static_cast<std::size_t>(x.forward)] + x.forward_output;
      s.grad_of = x.grad_of;
      s.forward_inputs = ins[static_cast<std::size_t>(x.forward)].inputs.size();
    } else if (x.kernel.run && !node_needed[i]) {
      s.kind = JitStep::Kind::kernel;
      s.kernel = x.kernel;
      for (int in : x.inputs)
        s.in_bytes.push_back(in < 0 ? 0 : byte_size(tracer.shape(in), tracer.dtype(in)));
      for (int o : x.outputs) {
        s.out_shapes.push_back(tracer.shape(o));
        s.out_dtypes.push_back(tracer.dtype(o));
      }
    } else {
      s.replay = x.replay;
      if (node_needed[i] && !x.tracked.empty()) {
        s.tracked = x.tracked;
        s.keep = keep_of[i] = static_cast<int>(plan.kept);
        plan.kept += x.outputs.size();
      }
    }
    plan.steps.push_back(std::move(s));
  }
  for (int v : tensor_outputs) plan.tensor_outputs.push_back(read_slot(resolve(v)));
  for (int v : key_outputs) plan.key_outputs.push_back(read_slot(resolve(v)));
  fuse_adds(plan);
  fuse_elementwise(plan);

  // Liveness: each slot is freed after the last step that reads it, unless it is a result; so a
  // replay holds no more intermediates than eager mode does.
  std::vector<int> last_use(plan.slots, -1), last_kept(plan.kept, -1);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    for (int s : plan.steps[i].in)
      if (s >= 0) last_use[static_cast<std::size_t>(s)] = static_cast<int>(i);
    if (plan.steps[i].kind == JitStep::Kind::vjp)
      last_kept[static_cast<std::size_t>(plan.steps[i].keep)] = static_cast<int>(i);
  }
  for (int s : plan.tensor_outputs) last_use[static_cast<std::size_t>(s)] = -2;
  for (int s : plan.key_outputs) last_use[static_cast<std::size_t>(s)] = -2;
  for (std::size_t s = 0; s < plan.slots; ++s)
    if (last_use[s] >= 0) plan.steps[static_cast<std::size_t>(last_use[s])].release.push_back(static_cast<int>(s));
  for (std::size_t s = 0; s < plan.kept; ++s)
    if (last_kept[s] >= 0)
      plan.steps[static_cast<std::size_t>(last_kept[s])].release_kept.push_back(static_cast<int>(s));
  for (JitStep& step : plan.steps)
    if (step.kind == JitStep::Kind::kernel)
      for (int s : step.in) step.last_read.push_back(std::ranges::find(step.release, s) != step.release.end());
  assign_arena(plan, last_use);
}

/// Arena offsets for the values that kernels alone write and read (none is a result): first fit
/// among the values still live, so values whose lifetimes do not overlap share bytes. A kernel's
/// output shares an input's bytes only where the kernel may write over it (a GEMM cannot).
void assign_arena(JitPlan& plan, const std::vector<int>& last_use) {
  plan.arena_offset.assign(plan.slots, -1);
  std::vector<bool> kernel_only(plan.slots, false), read(plan.slots, false);
  std::vector<int> produced_by(plan.slots, -1);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const JitStep& s = plan.steps[i];
    for (int o : s.out) {
      produced_by[static_cast<std::size_t>(o)] = static_cast<int>(i);
      kernel_only[static_cast<std::size_t>(o)] = s.kind == JitStep::Kind::kernel;
    }
  }
  for (const JitStep& s : plan.steps)
    for (int in : s.in) {
      if (in < 0) continue;
      read[static_cast<std::size_t>(in)] = true;
      if (s.kind != JitStep::Kind::kernel) kernel_only[static_cast<std::size_t>(in)] = false;
    }
  struct Live {
    std::size_t offset, bytes;
    int last, slot;
  };
  std::vector<Live> live;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const JitStep& s = plan.steps[i];
    std::erase_if(live, [&](const Live& l) { return l.last < static_cast<int>(i); });
    for (std::size_t j = 0; j < s.out.size(); ++j) {
      const auto slot = static_cast<std::size_t>(s.out[j]);
      if (!kernel_only[slot] || !read[slot] || last_use[slot] < 0) continue;  // a result, or held as a tensor
      const std::size_t bytes = (byte_size(s.out_shapes[j], s.out_dtypes[j]) + kDataAlignment - 1) &
                                ~(kDataAlignment - 1);
      // In place: the bytes of an arena value that dies here (still live: no other output took
      // them), of the output's shape and dtype, where the kernel may write over it (an elementwise
      // op); as take_dying_input does for tensors.
      auto dying = live.end();
      for (const auto& [o, k] : s.kernel.in_place) {
        const int u = o == static_cast<int>(j) ? s.in[static_cast<std::size_t>(k)] : -1;
        if (u < 0 || last_use[static_cast<std::size_t>(u)] != static_cast<int>(i)) continue;
        const auto l = std::ranges::find(live, u, &Live::slot);
        if (l == live.end()) continue;
        const JitStep& producer = plan.steps[static_cast<std::size_t>(produced_by[static_cast<std::size_t>(u)])];
        const auto at = static_cast<std::size_t>(std::ranges::find(producer.out, u) - producer.out.begin());
        if (producer.out_shapes[at] == s.out_shapes[j] && producer.out_dtypes[at] == s.out_dtypes[j]) {
          dying = l;
          break;
        }
      }
      if (dying != live.end()) {
        plan.arena_offset[slot] = plan.arena_offset[static_cast<std::size_t>(dying->slot)];
        dying->slot = static_cast<int>(slot);
        dying->last = last_use[slot];
        continue;
      }
      std::ranges::sort(live, {}, &Live::offset);
      std::size_t offset = 0;
      for (const Live& l : live) {
        if (offset + bytes <= l.offset) break;
        offset = std::max(offset, l.offset + l.bytes);
      }
      live.push_back({offset, bytes, last_use[slot], static_cast<int>(slot)});
      plan.arena_offset[slot] = static_cast<std::ptrdiff_t>(offset);
      plan.arena_bytes = std::max(plan.arena_bytes, offset + bytes);
    }
  }
  if (plan.arena_bytes > 0) plan.arena = allocate_buffer(plan.arena_bytes);
}

/// For output j of a kernel step that may overwrite an input (JitKernel::in_place): that input's
/// tensor, when this step is its last use, it has the output's shape and dtype, and nothing outside
/// this call holds its elements (a donated argument, or an intermediate): the update is in place.
/// Else an empty tensor. A constant of the plan is never taken: the plan holds it too.
Tensor take_dying_input(const JitStep& step, int j, std::vector<Tensor>& values) {
  for (const auto& [out, in] : step.kernel.in_place) {
    if (out != j || !step.last_read[static_cast<std::size_t>(in)]) continue;
    const int s = step.in[static_cast<std::size_t>(in)];
    if (s < 0) continue;
    Tensor& t = values[static_cast<std::size_t>(s)];
    if (!t.defined()) continue;
    const auto& impl = TensorAccess::impl(t);
    if (impl.use_count() != 1 || (impl->owner != nullptr && impl->owner.use_count() != 1)) continue;
    if (impl->dtype != step.out_dtypes[static_cast<std::size_t>(j)] ||
        impl->shape != step.out_shapes[static_cast<std::size_t>(j)])
      continue;
    return std::move(t);
  }
  return {};
}

/// The plan's arena and scratch vectors while this call holds them, or a call's own when another
/// call (on another thread) holds the plan's. Leaves the slots empty on exit, also on an exception.
class CallState {
 public:
  explicit CallState(const JitPlan& plan) : plan_(plan) {
    bool expected = false;
    if (plan.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      held_ = true;
      scratch_ = &plan.scratch;
      base_ = static_cast<char*>(plan.arena.get());
    } else {
      own_scratch_ = std::make_unique<JitPlan::Scratch>();
      scratch_ = own_scratch_.get();
      if (plan.arena_bytes > 0) own_arena_ = allocate_buffer(plan.arena_bytes);
      base_ = static_cast<char*>(own_arena_.get());
    }
    scratch_->values.resize(plan.slots);
    scratch_->kept.resize(plan.kept);
  }
  ~CallState() {
    std::ranges::fill(scratch_->values, Tensor());
    std::ranges::fill(scratch_->kept, Tensor());
    scratch_->in.clear();
    scratch_->out.clear();
    if (held_) plan_.busy.store(false, std::memory_order_release);
  }
  CallState(const CallState&) = delete;
  CallState& operator=(const CallState&) = delete;
  [[nodiscard]] char* arena() const noexcept { return base_; }
  [[nodiscard]] JitPlan::Scratch& scratch() const noexcept { return *scratch_; }

 private:
  const JitPlan& plan_;
  JitPlan::Scratch* scratch_ = nullptr;
  std::unique_ptr<JitPlan::Scratch> own_scratch_;
  std::shared_ptr<void> own_arena_;
  char* base_ = nullptr;
  bool held_ = false;
};

}  // namespace

std::shared_ptr<const JitPlan> jit_trace(const JitFlat& inputs, const std::function<JitFlat(const JitFlat&)>& f) {
  Tracer tracer;
  JitFlat traced;
  std::vector<int> tensor_inputs, key_inputs;
  // Each input tensor as a value of its own, even where the caller passes one tensor twice or
  // f also captures it: the plan must not assume later calls do the same.
  for (const Tensor& t : inputs.tensors) {
    traced.tensors.push_back(alias(t, t.shape()));
    tensor_inputs.push_back(tracer.add_value(traced.tensors.back(), true, nullptr));
  }
  for (std::size_t i = 0; i < inputs.keys.size(); ++i) {
    const Key k = trace_key(i, inputs.keys[i].layout());
    traced.keys.push_back(k);
    key_inputs.push_back(tracer.add_value(key_tensor(k), true, nullptr));
    tracer.name_key(k, key_inputs.back());
  }
  TraceScope scope(tracer);
  const JitFlat out = f(traced);
  std::vector<int> tensor_outputs, key_outputs;
  std::vector<ThreefryLayout> layouts;
  for (const Tensor& t : out.tensors) tensor_outputs.push_back(tracer.value_of(t));
  for (const Key& k : out.keys) {
    key_outputs.push_back(tracer.key_value(k));
    layouts.push_back(k.layout());
  }
  auto plan = std::make_shared<JitPlan>();
  build_plan(*plan, tracer, tensor_inputs, key_inputs, tensor_outputs, key_outputs, std::move(layouts));
  release_cached_blocks();
  return plan;
}

JitFlat jit_run(const JitPlan& plan, JitFlat inputs) {
  const CallState call(plan);
  JitPlan::Scratch& scratch = call.scratch();
  std::vector<Tensor>& values = scratch.values;
  std::vector<Tensor>& kept = scratch.kept;
  std::vector<Tensor>& in = scratch.in;
  std::vector<Tensor>& out = scratch.out;
  std::vector<const void*>& in_data = scratch.in_data;
  std::vector<void*>& out_data = scratch.out_data;
  for (std::size_t i = 0; i < plan.tensor_inputs.size(); ++i)
    values[static_cast<std::size_t>(plan.tensor_inputs[i])] = std::move(inputs.tensors[i]);
  for (std::size_t i = 0; i < plan.key_inputs.size(); ++i)
    values[static_cast<std::size_t>(plan.key_inputs[i])] = key_tensor(inputs.keys[i]);
  for (const auto& [s, t] : plan.constants) values[static_cast<std::size_t>(s)] = t;

  for (const JitStep& step : plan.steps) {
    if (step.kind == JitStep::Kind::kernel) {
      in_data.clear();
      for (int s : step.in) {
        const auto u = static_cast<std::size_t>(s);
        in_data.push_back(s < 0                        ? nullptr
                          : plan.arena_offset[u] >= 0 ? call.arena() + plan.arena_offset[u]
                                                      : TensorAccess::impl(values[u])->data);
      }
      out_data.clear();
      for (std::size_t j = 0; j < step.out.size(); ++j) {
        const auto u = static_cast<std::size_t>(step.out[j]);
        if (plan.arena_offset[u] >= 0) {
          out_data.push_back(call.arena() + plan.arena_offset[u]);
        } else {
          Tensor reused = take_dying_input(step, static_cast<int>(j), values);
          values[u] = reused.defined() ? std::move(reused) : empty(step.out_shapes[j], step.out_dtypes[j]);
          out_data.push_back(TensorAccess::impl(values[u])->data);
        }
      }
      step.kernel.run(in_data.data(), out_data.data());
    } else if (step.kind == JitStep::Kind::closure) {
      in.clear();
      for (std::size_t k = 0; k < step.in.size(); ++k) {
        Tensor v = step.in[k] < 0 ? Tensor() : values[static_cast<std::size_t>(step.in[k])];
        if (!step.tracked.empty() && step.tracked[k]) set_node(v, plan.leaves[k]);
        in.push_back(std::move(v));
      }
      out.assign(step.out.size(), Tensor());
      step.replay(in, out);
      for (std::size_t j = 0; j < step.out.size(); ++j) {
        if (step.keep >= 0) kept[static_cast<std::size_t>(step.keep) + j] = out[j];
        values[static_cast<std::size_t>(step.out[j])] = detach(out[j]);
      }
    } else {
      std::vector<Tensor> grads = autodiff::backpropagate(kept[static_cast<std::size_t>(step.keep)],
                                                          values[static_cast<std::size_t>(step.in[0])],
                                                          step.forward_inputs);
      for (std::size_t i = 0; i < step.out.size(); ++i) {
        Tensor& g = grads[static_cast<std::size_t>(step.grad_of[i])];
        if (!g.defined())
          throw Error(fmt::format("weft::jit: the gradient of '{}' did not reach an input it reached when the "
                                  "function was traced",
                                  step.op));
        values[static_cast<std::size_t>(step.out[i])] = std::move(g);
      }
    }
    for (int s : step.release) values[static_cast<std::size_t>(s)] = Tensor();
    for (int s : step.release_kept) kept[static_cast<std::size_t>(s)] = Tensor();
  }

  JitFlat result;
  result.tensors.reserve(plan.tensor_outputs.size());
  for (int s : plan.tensor_outputs) result.tensors.push_back(values[static_cast<std::size_t>(s)]);
  for (std::size_t i = 0; i < plan.key_outputs.size(); ++i)
    result.keys.push_back(
        key_from_tensor(values[static_cast<std::size_t>(plan.key_outputs[i])], plan.output_layouts[i]));
  return result;
}

JitPlanStats jit_stats(const JitPlan& plan) {
  JitPlanStats s{plan.recorded, plan.steps.size(), plan.constants.size(), 0, 0, plan.merged, plan.arena_bytes};
  for (const JitStep& step : plan.steps) {
    s.gemms += step.kind == JitStep::Kind::kernel && step.kernel.gemm ? 1 : 0;
    s.fused_ops += step.fused;
    s.vjp_steps += step.kind == JitStep::Kind::vjp ? 1 : 0;
  }
  return s;
}

std::function<void()> jit_gemm_floor(const JitPlan& plan) {
  std::vector<JitKernel> gemms;
  std::size_t bytes = kDataAlignment;
  for (const JitStep& step : plan.steps) {
    if (step.kind != JitStep::Kind::kernel || (!step.kernel.gemm && !step.kernel.products)) continue;
    gemms.push_back(step.kernel);
    for (std::size_t b : step.in_bytes) bytes = std::max(bytes, b);
    bytes = std::max({bytes, byte_size(step.out_shapes[0], step.out_dtypes[0]), step.kernel.product_bytes});
  }
  // Zeros: a product's time does not depend on its values, and no denormal slows it.
  auto a = allocate_buffer(bytes), b = allocate_buffer(bytes), c = allocate_buffer(bytes);
  std::memset(a.get(), 0, bytes);
  std::memset(b.get(), 0, bytes);
  std::memset(c.get(), 0, bytes);
  return [gemms = std::move(gemms), a, b, c] {
    const void* in[2] = {a.get(), b.get()};
    void* out[1] = {c.get()};
    for (const JitKernel& k : gemms) {
      if (k.products)
        k.products(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]), static_cast<float*>(out[0]));
      else
        k.run(in, out);
    }
  };
}

Tensor jit_placeholder() {
  static const Tensor placeholder = zeros(Shape{0});  // immutable; shared by every cache
  return placeholder;
}

// ---------------------------------------------------------------- the cache

JitCache::JitCache(JitOptions options) : options_(std::move(options)) {
  if (options_.cache_size == 0) options_.cache_size = 1;
}

namespace {

bool same_trees(const std::vector<Variables>& traced, std::span<const Variables* const> trees) noexcept {
  if (traced.size() != trees.size()) return false;
  for (std::size_t i = 0; i < trees.size(); ++i)
    if (!same_structure(traced[i], *trees[i])) return false;
  return true;
}

}  // namespace

JitCache::Entry JitCache::find(const std::string& signature, std::span<const Variables* const> trees) {
  const std::lock_guard lock(mutex_);
  const auto it = std::ranges::find_if(
      slots_, [&](const Slot& s) { return s.signature == signature && same_trees(s.trees, trees); });
  if (it == slots_.end()) return {};
  std::rotate(slots_.begin(), it, it + 1);
  return slots_.front().entry;
}

JitCache::Entry JitCache::insert(const std::string& signature, std::span<const Variables* const> trees,
                                 std::span<const std::shared_ptr<const void>> objects, Entry entry,
                                 const std::string& description) {
  const std::lock_guard lock(mutex_);
  ++traces_;
  if (options_.log_compiles) {
    const JitPlanStats s = jit_stats(*entry.plan);
    fmt::print(stderr, "weft::jit: traced {} ({}): {} ops recorded, {} steps ({} elementwise ops fused)\n",
               options_.name, description, s.recorded_ops, s.steps, s.fused_ops);
  }
  std::vector<Variables> structures;
  for (const Variables* t : trees)
    structures.push_back(with_leaves(*t, std::vector<Tensor>(t->size(), jit_placeholder())));
  if (const auto it = std::ranges::find_if(
          slots_, [&](const Slot& s) { return s.signature == signature && same_trees(s.trees, trees); });
      it != slots_.end())
    slots_.erase(it);
  slots_.insert(slots_.begin(), Slot{signature, std::move(structures), {objects.begin(), objects.end()}, entry});
  if (slots_.size() > options_.cache_size) slots_.pop_back();
  return entry;
}

std::size_t JitCache::trace_count() const {
  const std::lock_guard lock(mutex_);
  return traces_;
}

std::shared_ptr<const JitPlan> JitCache::latest() const {
  const std::lock_guard lock(mutex_);
  return slots_.empty() ? nullptr : slots_.front().entry.plan;
}

std::size_t JitCache::size() const {
  const std::lock_guard lock(mutex_);
  return slots_.size();
}

}  // namespace weft::detail
