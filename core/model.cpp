#include "core/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "base/errors.h"
#include "base/hash.h"
#include "base/strings.h"
#include "core/layers.h"
#include "core/model_family.h"

namespace shardtune::core {

uint64_t named_seed(uint64_t seed, const std::string& name) {
  // The splitmix64 finaliser over (name hash ^ seed), so nearby seeds give unrelated streams.
  // kShardTuneFnvBasis: every seeded initialisation depends on it (base/hash.h).
  const uint64_t h = base::fnv1a64(name, base::kShardTuneFnvBasis);
  return base::splitmix64_mix(h ^ (seed + base::kSplitMix64Step));
}

torch::Tensor CausalLMImpl::gather_logits(const torch::Tensor& local_logits) const {
  const auto& spec = vocab_spec();
  if (!spec.sharded()) return local_logits;
  // The vocabulary is dim 0 of the embedding spec and the last dim of the logits.
  ShardSpec last = spec;
  last.global_shape = {spec.global_shape[0]};
  last.dim = 0;
  auto moved = local_logits.movedim(-1, 0);
  return gather_full(moved, last, tp_).movedim(0, -1);
}

int64_t CausalLMImpl::kv_heads_held() const {
  return kv_heads_split() ? config_.kv_heads() / tp_.size() : config_.kv_heads();
}

void validate_tp(const ModelConfig& c, int tp) {
  if (tp <= 1) return;
  const std::string t = std::to_string(tp);
  require(c.num_heads % tp == 0, "[parallel] tp=" + t + " does not divide [model] num_heads=" +
                                     std::to_string(c.num_heads) +
                                     " (attention heads are split across tensor-parallel ranks)");
  require(c.intermediate_size % tp == 0,
          "[parallel] tp=" + t + " does not divide [model] intermediate_size=" +
              std::to_string(c.intermediate_size) + " (the MLP width is split across ranks)");
  // kv heads: split when divisible, replicated otherwise (no constraint), as long as each rank's
  // q heads map onto whole kv groups, which num_heads % kv_heads == 0 (validate()) guarantees.
}

void init_parameter(torch::Tensor& param, const std::string& name, const ShardSpec& spec,
                    const ModelConfig& config, uint64_t seed) {
  torch::NoGradGuard no_grad;
  if (param.dim() == 1 && !spec.sharded() && spec.global_shape.size() == 1) {
    // Norm gains start at one, biases at zero (replicated 1-D tensors).
    const bool is_gain = base::ends_with(name, "norm.weight") ||
                         name.find(".ln_") != std::string::npos ||
                         name.find("ln_f.weight") != std::string::npos;
    if (is_gain && base::ends_with(name, "weight")) {
      param.fill_(1.0);
    } else {
      param.zero_();
    }
    return;
  }
  if (spec.global_shape.size() == 1) {  // sharded biases
    param.zero_();
    return;
  }
  double std = config.init_std;
  // GPT-2 scales the residual projections by 1/sqrt(2 * layers) (Radford et al. 2019).
  if (config.family == "gpt2" && base::ends_with(name, "c_proj.weight")) {
    std /= std::sqrt(2.0 * static_cast<double>(config.num_layers));
  }
  // The full tensor from the parameter's own stream; this rank keeps its slice.
  assign_from_full(param, named_normal(spec.global_shape, std, seed, name), spec);
}

torch::Tensor named_normal(const std::vector<int64_t>& shape, double std, uint64_t seed,
                           const std::string& name) {
  auto gen = at::detail::createCPUGenerator(named_seed(seed, name));
  return at::normal(0.0, std, shape, gen, torch::TensorOptions().dtype(torch::kFloat));
}

std::shared_ptr<CausalLMImpl> build_model(const ModelConfig& config, uint64_t seed,
                                          parallel::TpGroup tp) {
  config.validate();
  validate_tp(config, tp.size());
  std::shared_ptr<CausalLMImpl> model;
  if (config.family == "llama") {
    model = detail::make_llama(config, std::move(tp));
  } else {
    model = detail::make_gpt2(config, std::move(tp));
  }
  const auto specs = parameter_specs(*model);
  auto params = model->named_parameters();
  for (size_t i = 0; i < specs.size(); ++i) {
    auto param = params[specs[i].first];
    init_parameter(param, specs[i].first, specs[i].second, config, seed);
  }
  return model;
}

}  // namespace shardtune::core
