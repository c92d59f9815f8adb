#include "strategies/ptuning_v2.h"

#include <cmath>

#include "base/errors.h"

namespace shardtune::strategies {

namespace {
constexpr const char* kModuleName = "prefix_encoder";
}  // namespace

PrefixEncoder::PrefixEncoder(const core::CausalLMImpl& model, PrefixOptions options)
    : options_(options), config_(model.config()), tp_(model.tp()) {
  kv_heads_ = config_.kv_heads();
  kv_held_ = model.kv_heads_held();
  head_dim_ = config_.head_dim();
  split_ = model.kv_heads_split() && tp_.active();
  const int64_t L = config_.num_layers, P = options_.pre_seq_len;
  if (!options_.projection) {
    const std::vector<int64_t> shape{L, 2, kv_heads_, P, head_dim_};
    prefix_spec_ = split_ ? core::split_spec(shape, 2, tp_.rank(), tp_.size())
                          : core::replicated_spec(shape);
    prefix_param = register_parameter("prefix", torch::zeros(prefix_spec_.local_shape()));
  } else {
    const int64_t H = options_.hidden, out = L * 2 * kv_heads_ * head_dim_;
    embedding = register_parameter("embedding", torch::zeros({P, config_.hidden_size}));
    // Plain torch Linears (replicated: not ShardedModules); only their tensors are used.
    auto proj_in = register_module("proj_in", torch::nn::Linear(config_.hidden_size, H));
    auto proj_out = register_module("proj_out", torch::nn::Linear(H, out));
    in_weight = proj_in->weight;
    in_bias = proj_in->bias;
    out_weight = proj_out->weight;
    out_bias = proj_out->bias;
  }
}

core::ShardSpec PrefixEncoder::shard_spec(const std::string& param_name) const {
  if (param_name == "prefix") return prefix_spec_;
  std::vector<int64_t> shape;
  for (auto& item : named_parameters(false)) {
    if (item.key() == param_name) shape = item.value().sizes().vec();
  }
  return core::replicated_spec(shape);
}

void PrefixEncoder::initialise(uint64_t seed) {
  torch::NoGradGuard no_grad;
  const std::string p = std::string(kModuleName) + ".";
  if (!options_.projection) {
    auto full =
        core::named_normal(prefix_spec_.global_shape, options_.init_std, seed, p + "prefix");
    core::assign_from_full(prefix_param, full, prefix_spec_);
    return;
  }
  // Embedding rows ~ N(0, 1) (torch.nn.Embedding's default, as in P-tuning v2); the first layer
  // keeps unit scale into tanh, the second scales the prefix to about init_std.
  const double h = static_cast<double>(options_.hidden);
  const double d = static_cast<double>(config_.hidden_size);
  embedding.copy_(core::named_normal(embedding.sizes().vec(), 1.0, seed, p + "embedding"));
  in_weight.copy_(core::named_normal(in_weight.sizes().vec(), 1.0 / std::sqrt(d), seed,
                                     p + "proj_in.weight"));
  in_bias.zero_();
  out_weight.copy_(core::named_normal(out_weight.sizes().vec(),
                                      options_.init_std / std::sqrt(h * 0.4), seed,
                                      p + "proj_out.weight"));
  out_bias.zero_();
}

torch::Tensor PrefixEncoder::all_layers() {
  namespace F = torch::nn::functional;
  const int64_t L = config_.num_layers, P = options_.pre_seq_len;
  const bool drop = options_.dropout > 0.0 && is_training();
  if (!options_.projection) {
    if (split_) {
      if (!drop) return prefix_param;
      auto fork = parallel::rng_tracker().fork();  // this rank's heads only
      return torch::dropout(prefix_param, options_.dropout, true);
    }
    // Replicated: each rank's attention uses its heads' share, so the gradient is summed.
    auto full = parallel::copy_to_tp(prefix_param, tp_);
    return drop ? torch::dropout(full, options_.dropout, true) : full;
  }
  auto f = [&](const torch::Tensor& t) { return parallel::copy_to_tp(t, tp_); };
  auto h = torch::tanh(F::linear(f(embedding), f(in_weight), f(in_bias)));
  auto out = F::linear(h, f(out_weight), f(out_bias));  // [P, L * 2 * kv * d]
  if (drop) out = torch::dropout(out, options_.dropout, true);
  out = out.view({P, L, 2, kv_heads_, head_dim_}).permute({1, 2, 3, 0, 4});
  if (split_) out = out.narrow(2, tp_.rank() * kv_held_, kv_held_);
  return out;
}

std::pair<torch::Tensor, torch::Tensor> PrefixEncoder::prefix(int64_t layer, int64_t batch) {
  if (layer == 0 || !cache_.defined()) cache_ = all_layers();
  auto kv = cache_[layer];  // [2, kv_held, P, d]
  auto expand = [&](const torch::Tensor& t) {
    return t.unsqueeze(0).expand({batch, t.size(0), t.size(1), t.size(2)});
  };
  auto result = std::make_pair(expand(kv[0]), expand(kv[1]));
  if (layer + 1 == config_.num_layers) cache_ = torch::Tensor();  // free the graph reference
  return result;
}

PtuningV2Strategy::PtuningV2Strategy(core::StrategyOptions options) {
  const std::string s = "ptuning-v2";
  options_.pre_seq_len = core::take_int(options, s, "pre_seq_len", options_.pre_seq_len);
  options_.projection = core::take_bool(options, s, "prefix_projection", options_.projection);
  options_.hidden = core::take_int(options, s, "prefix_hidden_size", options_.hidden);
  options_.init_std = core::take_double(options, s, "init_std", options_.init_std);
  options_.dropout = core::take_double(options, s, "dropout", options_.dropout);
  init_from_ = core::take_option(options, "init_from", "");
  core::reject_unknown_options(options, s);
  require(options_.pre_seq_len >= 1, "[strategy.ptuning-v2] pre_seq_len=" +
                                         std::to_string(options_.pre_seq_len) + " must be >= 1");
  require(options_.hidden >= 1, "[strategy.ptuning-v2] prefix_hidden_size must be >= 1");
  require(options_.init_std > 0.0, "[strategy.ptuning-v2] init_std must be > 0");
  require(options_.dropout >= 0.0 && options_.dropout < 1.0,
          "[strategy.ptuning-v2] dropout must be in [0, 1)");
}

void PtuningV2Strategy::apply(core::CausalLMImpl& model) {
  require(model.prefix_provider() == nullptr, "[strategy.ptuning-v2] model already has a prefix");
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  auto encoder = std::make_shared<PrefixEncoder>(model, options_);
  encoder->initialise(seed_);
  encoder->train(model.is_training());
  model.register_module(kModuleName, encoder);
  model.set_prefix_provider(encoder);
}

bool PtuningV2Strategy::is_added_parameter(const std::string& name) const {
  return name.rfind(std::string(kModuleName) + ".", 0) == 0;
}

void PtuningV2Strategy::merge(core::CausalLMImpl&) {
  throw UserError("[strategy] ptuning-v2 has no merged form (the prefix is extra attention "
                  "state, not a change of the base weights); use its checkpoint's "
                  "/model/prefix_encoder.* tensors with [strategy.ptuning-v2] init_from");
}

void PtuningV2Strategy::remove_prefix(core::CausalLMImpl& model) {
  model.set_prefix_provider(nullptr);
}

}  // namespace shardtune::strategies
