// Where a training step's time goes, per LibTorch operator: runs the bench_train model (same
// config and overrides) for a warm-up step, then records N steps with LibTorch's CPU profiler and
// writes one TSV line per operator call site class:
//   phase  top  op  shape  op_shape  calls  self_us
// phase: forward | loss | backward | clip | optimizer | zero_grad (scopes set here); top: the
// outermost profiled range the op ran under (an aten op, or the autograd node in backward);
// shape / op_shape: the input shapes of that outermost range / of the op; self_us: time in the op itself, children
// excluded. benchmarks/profile_families.py groups the lines into op families, and the PyTorch
// peer (benchmarks/peers/profile_peer.py) writes the same format, so both programs are read by
// one classifier (docs/benchmarks-profile.md).
//
//   profile_step [--profile.steps N] [--profile.out FILE|none] [--section.key=value ...]
// One rank, TP = 1 (the step below is Trainer::step's for that layout). Threads: OMP_NUM_THREADS.
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "bench_config.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "launch/config.h"

using namespace shardtune;
namespace prof = torch::autograd::profiler;
using Clock = std::chrono::steady_clock;

namespace {

std::string shapes_str(const std::vector<std::vector<int64_t>>& shapes) {
  std::string s;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i) s += ";";
    s += "[";
    for (size_t j = 0; j < shapes[i].size(); ++j) {
      if (j) s += ",";
      s += std::to_string(shapes[i][j]);
    }
    s += "]";
  }
  return s;
}

struct Key {
  std::string phase, top, op, shape, op_shape;
  bool operator<(const Key& o) const {
    return std::tie(phase, top, op, shape, op_shape) <
           std::tie(o.phase, o.top, o.op, o.shape, o.op_shape);
  }
};
struct Totals {
  int64_t calls = 0;
  double self_us = 0;
};

// Folds one thread's push/pop event list into per-(phase, top, op, shape) self times.
void fold(const std::vector<prof::LegacyEvent>& events, std::map<Key, Totals>& out) {
  struct Open {
    const prof::LegacyEvent* ev;
    double child_us;
  };
  std::vector<Open> stack;
  for (const auto& e : events) {
    const std::string name = e.name();
    if (e.kind() == prof::EventKind::PushRange) {
      stack.push_back({&e, 0.0});
    } else if (e.kind() == prof::EventKind::PopRange) {
      if (stack.empty()) continue;
      Open o = stack.back();
      stack.pop_back();
      const double total = o.ev->cpuElapsedUs(e);
      const std::string oname = o.ev->name();
      if (oname.rfind("phase::", 0) == 0) continue;  // scopes are not ops
      if (!stack.empty()) stack.back().child_us += total;
      // The outermost non-phase range on the stack (or this one).
      const prof::LegacyEvent* top = o.ev;
      std::string phase = "other";
      for (const auto& s : stack) {
        if (std::string(s.ev->name()).rfind("phase::", 0) == 0) {
          phase = std::string(s.ev->name()).substr(7);
          continue;
        }
        top = s.ev;
        break;
      }
      Key k{phase, top->name(), oname, shapes_str(top->shapes()), shapes_str(o.ev->shapes())};
      auto& t = out[k];
      t.calls += 1;
      t.self_us += total - o.child_us;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  launch::Config c = bench::llama30m_config("runs/profile", /*seq_len=*/256, /*micro_batch=*/8);
  int64_t steps = 3;
  std::string out_path = "profile_step.tsv";
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--profile.steps=", 0) == 0) {
      steps = std::atoll(a.c_str() + 16);
    } else if (a.rfind("--profile.out=", 0) == 0) {
      out_path = a.substr(14);
    } else {
      args.push_back(a);
    }
  }
  std::string help;
  if (!launch::parse_config(args, c, help)) {
    std::puts(help.c_str());
    return 0;
  }
  if (const char* t = std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::atoi(t));
  auto model = core::build_model(c.model, c.train.seed);
  model->train();
  // [train] kernels / dtype / recompute, as core::TrainingStep applies them.
  const core::ComputeOptions compute = c.train.compute();
  model->set_compute(compute);
  std::vector<core::NamedParameter> params;
  for (auto& kv : model->named_parameters()) params.push_back({kv.key(), kv.value()});
  core::AdamWOptions o;
  o.beta1 = c.train.beta1;
  o.beta2 = c.train.beta2;
  o.eps = c.train.eps;
  o.weight_decay = c.train.weight_decay;
  o.fused = compute.fused;
  core::AdamW opt(params, o);
  torch::manual_seed(0);
  const int64_t b = c.train.micro_batch, t = c.train.seq_len;

  auto step = [&]() {
    auto ids = torch::randint(0, c.model.vocab_size, {b, t}, torch::kLong);
    auto mask = torch::ones({b, t}, torch::kLong);
    torch::Tensor logits;
    core::LossSum loss;
    {
      RECORD_USER_SCOPE("phase::forward");
      logits = model->forward(ids, mask);
    }
    {
      RECORD_USER_SCOPE("phase::loss");
      loss = core::causal_lm_loss(logits, ids, model->vocab_spec(), model->tp(), compute.fused);
    }
    {
      RECORD_USER_SCOPE("phase::backward");
      (loss.sum * (1.0 / static_cast<double>(loss.tokens))).backward();
    }
    {
      RECORD_USER_SCOPE("phase::clip");
      core::clip_grad_norm(opt, c.train.grad_clip);
    }
    {
      RECORD_USER_SCOPE("phase::optimizer");
      opt.step(c.train.lr);
    }
    {
      RECORD_USER_SCOPE("phase::zero_grad");
      // In place, as the training step's GradSync::zero_grad (the buffers stay allocated).
      for (auto& p : params) {
        if (p.param.grad().defined()) p.param.mutable_grad().zero_();
      }
    }
  };
  step();  // warm-up
  prof::ProfilerConfig cfg(prof::ProfilerState::CPU, /*report_input_shapes=*/true,
                           /*profile_memory=*/false);
  // --profile.out=none: time the steps without the profiler (for counters such as page faults).
  const bool profile = out_path != "none";
  if (profile) prof::enableProfilerLegacy(cfg);
  const auto t0 = Clock::now();
  const std::clock_t c0 = std::clock();
  for (int64_t i = 0; i < steps; ++i) step();
  const double wall_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  const double cpu_us = 1e6 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  if (!profile) {
    std::printf("%.1f ms per step (wall), %.1f ms CPU\n", wall_us / 1000.0 / steps,
                cpu_us / 1000.0 / steps);
    return 0;
  }
  auto lists = prof::disableProfilerLegacy();
  std::map<Key, Totals> totals;
  for (const auto& l : lists) fold(l, totals);
  std::ofstream out(out_path);
  out << "# program=shardtune threads=" << at::get_num_threads() << " steps=" << steps
      << " wall_us=" << wall_us << " cpu_us=" << cpu_us << " tokens_per_step=" << b * t
      << " hidden=" << c.model.hidden_size << " heads=" << c.model.num_heads
      << " ffn=" << c.model.intermediate_size << " vocab=" << c.model.vocab_size << " seq=" << t
      << " batch=" << b << "\n";
  out << "phase\ttop\top\tshape\top_shape\tcalls\tself_us\n";
  for (const auto& [k, v] : totals) {
    out << k.phase << "\t" << k.top << "\t" << k.op << "\t" << k.shape << "\t" << k.op_shape
        << "\t" << v.calls << "\t" << v.self_us << "\n";
  }
  std::printf("wrote %s (%zu rows), %.1f ms per step\n", out_path.c_str(), totals.size(),
              wall_us / 1000.0 / steps);
  return 0;
}
