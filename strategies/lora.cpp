#include "strategies/lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "base/errors.h"
#include "base/strings.h"
#include "core/layers.h"
#include "core/model.h"

namespace shardtune::strategies {

namespace {
// `target` names the module at the end of the path `name` ("q_proj" matches "...self_attn.q_proj").
bool ends_with_path(const std::string& name, const std::string& target) {
  return name == target || base::ends_with(name, "." + target);
}
}  // namespace

LoraAdapter::LoraAdapter(core::LinearImpl& base, int64_t r, double s, double dropout)
    : scale(s), base_(base), dropout_(dropout) {
  const auto& tp = base.tp;
  const int64_t in = base.in_features, out = base.out_features;
  switch (base.kind) {
    case core::LinearKind::kColumn:
      a_spec_ = core::replicated_spec({r, in});
      b_spec_ = core::split_spec({out, r}, 0, tp.rank(), tp.size(),
                                 base.shard_spec("weight").parts);
      break;
    case core::LinearKind::kRow:
      a_spec_ = core::split_spec({r, in}, 1, tp.rank(), tp.size());
      b_spec_ = core::replicated_spec({out, r});
      break;
    case core::LinearKind::kReplicated:
      a_spec_ = core::replicated_spec({r, in});
      b_spec_ = core::replicated_spec({out, r});
      break;
  }
  A = register_parameter("A", torch::zeros(a_spec_.local_shape()));
  B = register_parameter("B", torch::zeros(b_spec_.local_shape()));
}

core::ShardSpec LoraAdapter::shard_spec(const std::string& param_name) const {
  return param_name == "A" ? a_spec_ : b_spec_;
}

void LoraAdapter::initialise(const std::string& prefix, uint64_t seed) {
  torch::NoGradGuard no_grad;
  // Kaiming-uniform with a = sqrt(5) (torch.nn.Linear's default): bound = 1 / sqrt(fan_in), with
  // the global fan-in so every TP layout draws the same full tensor.
  const double bound = 1.0 / std::sqrt(static_cast<double>(a_spec_.global_shape[1]));
  auto gen = at::detail::createCPUGenerator(core::named_seed(seed, prefix + "A"));
  auto full = torch::empty(a_spec_.global_shape).uniform_(-bound, bound, gen);
  core::assign_from_full(A, full, a_spec_);
  B.zero_();
}

torch::Tensor LoraAdapter::delta(const torch::Tensor& x) {
  // The adapter products run as the base layers' do (core::mixed_linear): in bf16 on bf16 copies
  // of A and B in a bf16 run, on oneDNN's sgemm in fp32 with kernels = fused. Gradients of A and B
  // are fp32.
  using core::mixed_linear;
  if (merged_) return torch::zeros({}, x.options());
  const auto& tp = base_.tp;
  const bool drop = dropout_ > 0.0 && is_training();
  switch (base_.kind) {
    case core::LinearKind::kColumn: {
      auto h = mixed_linear(drop ? torch::dropout(x, dropout_, true) : x, A);
      return mixed_linear(parallel::copy_to_tp(h, tp), B) * scale;
    }
    case core::LinearKind::kRow: {
      torch::Tensor xd = x;
      if (drop && tp.active()) {
        // x is this rank's slice of the input: its own dropout stream, as for sharded activations.
        auto fork = parallel::rng_tracker().fork();
        xd = torch::dropout(x, dropout_, true);
      } else if (drop) {
        xd = torch::dropout(x, dropout_, true);
      }
      // The partial sums are reduced in fp32, as the base row layer's are.
      auto h = parallel::reduce_from_tp(mixed_linear(xd, A).to(torch::kFloat), tp);
      return mixed_linear(h.to(x.scalar_type()), B) * scale;
    }
    case core::LinearKind::kReplicated:
      break;
  }
  auto xd = drop ? torch::dropout(x, dropout_, true) : x;
  if (!base_.grad_sum_over_tp) return mixed_linear(mixed_linear(xd, A), B) * scale;
  auto h = mixed_linear(parallel::copy_to_tp(xd, tp), parallel::copy_to_tp(A, tp));
  return mixed_linear(h, parallel::copy_to_tp(B, tp)) * scale;
}

torch::Tensor LoraAdapter::delta_weight() const {
  // Column: B_local [out_local, r] A [r, in]; row: B [out, r] A_local [r, in_local]; replicated:
  // full. Each is exactly the local base weight's shape.
  return torch::matmul(B.detach(), A.detach()) * scale;
}

void LoraAdapter::merge() {
  require(!merged_, "LoRA adapter is already merged");
  torch::NoGradGuard no_grad;
  base_.weight.add_(delta_weight());
  merged_ = true;
}

void LoraAdapter::unmerge() {
  require(merged_, "LoRA adapter is not merged");
  torch::NoGradGuard no_grad;
  base_.weight.sub_(delta_weight());
  merged_ = false;
}

LoraStrategy::LoraStrategy(core::StrategyOptions options) {
  r_ = core::take_int(options, "lora", "r", 8);
  alpha_ = core::take_double(options, "lora", "alpha", 16.0);
  dropout_ = core::take_double(options, "lora", "dropout", 0.05);
  rslora_ = core::take_bool(options, "lora", "rslora", false);
  targets_ = base::split_list(core::take_option(options, "target_modules", ""));
  init_from_ = core::take_option(options, "init_from", "");
  core::reject_unknown_options(options, "lora");
  require(r_ >= 1, "[strategy.lora] r=" + std::to_string(r_) + " must be >= 1");
  require(alpha_ > 0.0, "[strategy.lora] alpha=" + std::to_string(alpha_) + " must be positive");
  require(dropout_ >= 0.0 && dropout_ < 1.0,
          "[strategy.lora] dropout=" + std::to_string(dropout_) + " must be in [0, 1)");
}

double LoraStrategy::scale() const {
  return rslora_ ? alpha_ / std::sqrt(static_cast<double>(r_)) : alpha_ / static_cast<double>(r_);
}

void LoraStrategy::apply(core::CausalLMImpl& model) {
  require(adapted_.empty(), "[strategy.lora] already applied to a model");
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  auto targets = targets_;
  if (targets.empty()) {
    targets = model.config().family == "gpt2" ? std::vector<std::string>{"c_attn"}
                                              : std::vector<std::string>{"q_proj", "v_proj"};
  }
  const bool all_linear = targets.size() == 1 && targets[0] == "all-linear";
  std::vector<std::pair<std::string, std::shared_ptr<core::LinearImpl>>> chosen;
  std::vector<bool> target_used(targets.size(), false);
  std::vector<std::string> known;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<core::LinearImpl>(item.value());
    if (!linear) continue;
    const std::string& name = item.key();
    const bool is_head = name == "lm_head";
    if (!is_head) {
      const auto last = name.substr(name.rfind('.') + 1);
      if (std::find(known.begin(), known.end(), last) == known.end()) known.push_back(last);
    }
    bool take = all_linear && !is_head;
    for (size_t i = 0; !all_linear && i < targets.size(); ++i) {
      if (ends_with_path(name, targets[i])) {
        require(!is_head, "[strategy.lora] target_modules: lm_head cannot be adapted (its "
                          "vocabulary split has padding rows); use the freeze strategy's "
                          "extra_modules=lm_head");
        take = true;
        target_used[i] = true;
      }
    }
    if (take) chosen.emplace_back(name, linear);
  }
  for (size_t i = 0; !all_linear && i < targets.size(); ++i) {
    require(target_used[i], "[strategy.lora] target_modules: '" + targets[i] +
                                "' matches no Linear of this " + model.config().family +
                                " model (known: " + base::join(known) + ", or all-linear)");
  }
  const double s = scale();
  for (auto& [name, linear] : chosen) {
    auto adapter = std::make_shared<LoraAdapter>(*linear, r_, s, dropout_);
    adapter->initialise(name + ".lora.", seed_);
    adapter->train(model.is_training());
    linear->add_adapter("lora", adapter);
    adapted_.push_back(name);
  }
}

bool LoraStrategy::is_added_parameter(const std::string& name) const {
  return name.find(".lora.") != std::string::npos;
}

std::vector<LoraAdapter*> LoraStrategy::adapters(core::CausalLMImpl& model) const {
  std::vector<LoraAdapter*> out;
  for (const auto& item : model.named_modules("", false)) {
    if (auto* a = dynamic_cast<LoraAdapter*>(item.value().get())) out.push_back(a);
  }
  return out;
}

void LoraStrategy::merge(core::CausalLMImpl& model) {
  for (auto* a : adapters(model)) a->merge();
}

void LoraStrategy::unmerge(core::CausalLMImpl& model) {
  for (auto* a : adapters(model)) a->unmerge();
}

}  // namespace shardtune::strategies
