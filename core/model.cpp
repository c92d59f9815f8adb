#include "core/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>

#include "base/errors.h"
#include "base/hash.h"
#include "base/strings.h"
#include "core/kernels/fused_ops.h"
#include "core/layers.h"
#include "core/recompute.h"

namespace shardtune::core {

namespace {

// Attention core shared by both families: q [B, h_local, T, d], k/v [B, kv_held, T, d] (after
// rotary). Adds the P-tuning v2 prefix, maps this rank's q heads to their kv heads (grouped-query
// attention, replicated kv under TP), applies dropout on the probabilities from the per-TP-rank
// RNG stream (the heads are sharded), returns [B, T, h_local * d].
// An undefined `bias` means "causal, no padding, no dropout": the fused kernel
// (kernels::causal_attention) then applies the mask without building it.
torch::Tensor attend(const CausalLMImpl& model, int64_t layer, torch::Tensor q, torch::Tensor k,
                     torch::Tensor v, torch::Tensor bias, double dropout, bool training) {
  const int64_t b = q.size(0), t = q.size(2);
  int64_t prefix = 0;
  if (auto* provider = model.prefix_provider()) {
    auto [pk, pv] = provider->prefix(layer, b);
    k = torch::cat({pk.to(k.scalar_type()), k}, 2);
    v = torch::cat({pv.to(v.scalar_type()), v}, 2);
    prefix = pk.size(2);
    // Every query sees every prefix position.
    if (bias.defined()) {
      bias = torch::cat({torch::zeros({b, 1, t, prefix}, bias.options()), bias}, -1);
    }
  }
  const auto& c = model.config();
  const int64_t h_local = q.size(1);
  const int64_t rep = c.num_heads / c.kv_heads();  // q heads per kv head
  if (model.kv_heads_split()) {
    // This rank holds kv heads [r * kv/tp, ...) serving exactly its q heads [r * h/tp, ...).
    if (rep > 1) {
      k = k.repeat_interleave(rep, 1);
      v = v.repeat_interleave(rep, 1);
    }
  } else {
    // kv replicated: pick the kv head of each of this rank's q heads.
    const int64_t first = model.tp().rank() * h_local;
    auto idx = torch::div(torch::arange(first, first + h_local, torch::kLong), rep, "floor");
    k = k.index_select(1, idx);
    v = v.index_select(1, idx);
  }
  torch::Tensor out;
  if (!bias.defined()) {
    out = kernels::causal_attention(q, k, v, prefix);
  } else if (dropout > 0.0 && training && model.tp().active()) {
    auto fork = parallel::rng_tracker().fork();
    out = attention(q, k, v, bias, dropout, training);
  } else {
    out = attention(q, k, v, bias, dropout, training);
  }
  return out.transpose(1, 2).reshape({b, t, -1});
}

// ---- llama -------------------------------------------------------------------------------------

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const CausalLMImpl& m, int64_t layer)
      : model_(m), layer_(layer), head_dim_(m.config().head_dim()), dropout_(m.config().dropout) {
    const auto& c = m.config();
    const auto& tp = m.tp();
    const int64_t kv = c.kv_heads() * head_dim_;
    const bool split = m.kv_heads_split();
    const auto kv_kind = split ? LinearKind::kColumn : LinearKind::kReplicated;
    q_proj = register_module("q_proj", Linear(c.hidden_size, c.hidden_size, c.attention_bias,
                                              LinearKind::kColumn, tp));
    k_proj = register_module("k_proj", Linear(c.hidden_size, kv, c.attention_bias, kv_kind, tp, 1,
                                              !split));
    v_proj = register_module("v_proj", Linear(c.hidden_size, kv, c.attention_bias, kv_kind, tp, 1,
                                              !split));
    o_proj = register_module("o_proj", Linear(c.hidden_size, c.hidden_size, false,
                                              LinearKind::kRow, tp));
  }

  // x: [B, T, H]; cos/sin: [B, 1, T, d]; bias: [B, 1, T, T]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias) {
    const int64_t b = x.size(0), t = x.size(1);
    auto x_f = parallel::copy_to_tp(x, model_.tp());  // one backward all-reduce for q, k and v
    auto heads = [&](Linear& proj) {
      return proj->forward_shared(x, x_f).view({b, t, -1, head_dim_}).transpose(1, 2);
    };
    const bool fused = model_.compute().fused;
    auto rotary = [&](const torch::Tensor& y) {
      return fused ? kernels::apply_rotary(y, cos, sin) : apply_rotary(y, cos, sin);
    };
    auto q = rotary(heads(q_proj));  // [B, h_local, T, d]
    auto k = rotary(heads(k_proj));  // [B, kv_held, T, d]
    auto out = attend(model_, layer_, q, k, heads(v_proj), bias, dropout_, is_training());
    return o_proj(out);
  }

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  const CausalLMImpl& model_;
  int64_t layer_, head_dim_;
  double dropout_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  LlamaMlpImpl(const CausalLMImpl& m) : model_(m), tp_(m.tp()) {
    const auto& c = m.config();
    const auto& tp = m.tp();
    gate_proj = register_module(
        "gate_proj", Linear(c.hidden_size, c.intermediate_size, false, LinearKind::kColumn, tp));
    up_proj = register_module(
        "up_proj", Linear(c.hidden_size, c.intermediate_size, false, LinearKind::kColumn, tp));
    down_proj = register_module(
        "down_proj", Linear(c.intermediate_size, c.hidden_size, false, LinearKind::kRow, tp));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto x_f = parallel::copy_to_tp(x, tp_);
    auto gate = gate_proj->forward_shared(x, x_f), up = up_proj->forward_shared(x, x_f);
    return down_proj(model_.compute().fused ? kernels::swiglu(gate, up) : torch::silu(gate) * up);
  }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  const CausalLMImpl& model_;
  parallel::TpGroup tp_;
};
TORCH_MODULE(LlamaMlp);

class LlamaBlockImpl : public torch::nn::Module {
 public:
  LlamaBlockImpl(const CausalLMImpl& m, int64_t layer) : model_(m), dropout_(m.config().dropout) {
    const auto& c = m.config();
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
    self_attn = register_module("self_attn", LlamaAttention(m, layer));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", LlamaMlp(m));
  }
  // x: the residual stream [B, T, H], fp32 (also under bf16 compute: the norms read it in fp32
  // and write bf16, the row-parallel projections return fp32).
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias) {
    const auto& c = model_.compute();
    const auto dtype = model_.compute_dtype();
    // Residual dropout acts on replicated activations: the default stream, identical on every
    // TP rank.
    auto a = self_attn(input_layernorm->forward(x, dtype, c.fused), cos, sin, bias);
    x = x + torch::dropout(a, dropout_, is_training() && dropout_ > 0);
    auto m = mlp(post_attention_layernorm->forward(x, dtype, c.fused));
    return x + torch::dropout(m, dropout_, is_training() && dropout_ > 0);
  }
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};

 private:
  const CausalLMImpl& model_;
  double dropout_;
};
TORCH_MODULE(LlamaBlock);

// The model's trainable parameters when blocks are recomputed in this pass (recompute() needs
// them to record a block whose input needs no gradient but whose parameters, or a prefix
// encoder's, do), else empty.
std::vector<torch::Tensor> recompute_params(const CausalLMImpl& model) {
  std::vector<torch::Tensor> out;
  if (!model.compute().recompute || !model.is_training() || !torch::GradMode::is_enabled()) {
    return out;
  }
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

// Runs fn(x) directly, or (compute().recompute, training with grad) without keeping the
// block's activations, recomputed in backward with the same RNG state (core/recompute.h). `fn`
// runs again in backward, after forward returned: it must own (capture by value) what it reads.
torch::Tensor run_block(const CausalLMImpl& model, const std::vector<torch::Tensor>& params,
                        std::function<torch::Tensor(const torch::Tensor&)> fn,
                        const torch::Tensor& x) {
  if (!model.compute().recompute || !model.is_training() || !torch::GradMode::is_enabled()) {
    return fn(x);
  }
  return recompute([fn](const std::vector<torch::Tensor>& in) { return fn(in[0]); }, {x}, params);
}

// Whether attention can take the fused causal kernel: fused kernels on, no padding key, and no
// dropout on the probabilities in this pass.
bool fused_causal_ok(const CausalLMImpl& model, const torch::Tensor& attention_mask,
                     bool training) {
  if (!model.compute().fused) return false;
  if (model.config().dropout > 0.0 && training) return false;
  return !attention_mask.defined() || attention_mask.all().item<bool>();
}

class LlamaBodyImpl : public torch::nn::Module {
 public:
  explicit LlamaBodyImpl(const CausalLMImpl& m) {
    const auto& c = m.config();
    embed_tokens = register_module("embed_tokens",
                                   Embedding(c.vocab_size, c.hidden_size, m.tp(), true));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) layers->push_back(LlamaBlock(m, i));
    norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

class LlamaForCausalLM : public CausalLMImpl {
 public:
  LlamaForCausalLM(const ModelConfig& c, parallel::TpGroup tp) : CausalLMImpl(c, std::move(tp)) {
    model = register_module("model", LlamaBody(*this));
    if (!c.tie_word_embeddings) {
      // Column-parallel over the vocabulary, split exactly like embed_tokens' rows.
      lm_head = register_module(
          "lm_head", Linear(c.hidden_size, c.vocab_size, false, LinearKind::kColumn, tp_));
    }
  }

  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
    auto x = model->embed_tokens(input_ids);  // fp32: the residual stream
    // Fused RoPE reads fp32 tables in any compute dtype (fp32 math, one rounding).
    const auto table_dtype = compute_.fused ? torch::kFloat : compute_dtype();
    auto [cos, sin] = rotary_tables(position_ids_from_mask(mask), config_.head_dim(),
                                    config_.rope_theta, table_dtype);
    torch::Tensor bias;  // undefined: the fused causal kernel (attend())
    if (!fused_causal_ok(*this, attention_mask, is_training())) {
      bias = causal_attention_bias(mask, x.scalar_type());
    }
    const auto params = recompute_params(*this);
    for (auto& layer : *model->layers) {
      auto* block = layer->as<LlamaBlock>();
      x = run_block(*this, params,
                    [block, cos = cos, sin = sin, bias](const torch::Tensor& h) {
                      return block->forward(h, cos, sin, bias);
                    },
                    x);
    }
    x = model->norm->forward(x, compute_dtype(), compute_.fused);
    if (lm_head) return lm_head(x);
    return mixed_linear(parallel::copy_to_tp(x, tp_), model->embed_tokens->weight);
  }
  const ShardSpec& vocab_spec() const override { return model->embed_tokens->spec(); }

  LlamaBody model{nullptr};
  Linear lm_head{nullptr};
};

// ---- gpt2 --------------------------------------------------------------------------------------

class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  Gpt2AttentionImpl(const CausalLMImpl& m, int64_t layer)
      : model_(m), layer_(layer), head_dim_(m.config().head_dim()), dropout_(m.config().dropout) {
    const auto& c = m.config();
    // Fused [q | k | v]: each third is split across TP, so a rank holds its heads of all three.
    c_attn = register_module("c_attn", Linear(c.hidden_size, 3 * c.hidden_size, true,
                                              LinearKind::kColumn, m.tp(), 3));
    c_proj = register_module("c_proj", Linear(c.hidden_size, c.hidden_size, true,
                                              LinearKind::kRow, m.tp()));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias) {
    const int64_t b = x.size(0), t = x.size(1);
    auto qkv = c_attn(x).chunk(3, -1);  // Hugging Face's order
    auto split = [&](const torch::Tensor& y) {
      return y.view({b, t, -1, head_dim_}).transpose(1, 2);
    };
    auto out = attend(model_, layer_, split(qkv[0]), split(qkv[1]), split(qkv[2]), bias, dropout_,
                      is_training());
    return c_proj(out);
  }
  Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  const CausalLMImpl& model_;
  int64_t layer_, head_dim_;
  double dropout_;
};
TORCH_MODULE(Gpt2Attention);

class Gpt2MlpImpl : public torch::nn::Module {
 public:
  Gpt2MlpImpl(const ModelConfig& c, const parallel::TpGroup& tp) {
    c_fc = register_module(
        "c_fc", Linear(c.hidden_size, c.intermediate_size, true, LinearKind::kColumn, tp));
    c_proj = register_module(
        "c_proj", Linear(c.intermediate_size, c.hidden_size, true, LinearKind::kRow, tp));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return c_proj(torch::gelu(c_fc(x), "tanh"));
  }
  Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  Gpt2BlockImpl(const CausalLMImpl& m, int64_t layer) : model_(m), dropout_(m.config().dropout) {
    const auto& c = m.config();
    ln_1 = register_module("ln_1", LayerNorm(c.hidden_size, c.norm_eps));
    attn = register_module("attn", Gpt2Attention(m, layer));
    ln_2 = register_module("ln_2", LayerNorm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", Gpt2Mlp(c, m.tp()));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& bias) {
    // The residual stream x stays fp32; under bf16 compute the norms' outputs are rounded to bf16.
    const auto dtype = model_.compute_dtype();
    x = x + torch::dropout(attn(ln_1(x).to(dtype), bias), dropout_, is_training() && dropout_ > 0);
    return x + torch::dropout(mlp(ln_2(x).to(dtype)), dropout_, is_training() && dropout_ > 0);
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};

 private:
  const CausalLMImpl& model_;
  double dropout_;
};
TORCH_MODULE(Gpt2Block);

class Gpt2BodyImpl : public torch::nn::Module {
 public:
  explicit Gpt2BodyImpl(const CausalLMImpl& m) {
    const auto& c = m.config();
    wte = register_module("wte", Embedding(c.vocab_size, c.hidden_size, m.tp(), true));
    wpe = register_module("wpe", Embedding(c.max_position_embeddings, c.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) h->push_back(Gpt2Block(m, i));
    ln_f = register_module("ln_f", LayerNorm(c.hidden_size, c.norm_eps));
  }
  Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Body);

class Gpt2LMHeadModel : public CausalLMImpl {
 public:
  Gpt2LMHeadModel(const ModelConfig& c, parallel::TpGroup tp) : CausalLMImpl(c, std::move(tp)) {
    transformer = register_module("transformer", Gpt2Body(*this));
  }
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
    TORCH_CHECK(input_ids.size(1) <= config_.max_position_embeddings,
                "sequence of ", input_ids.size(1), " tokens exceeds max_position_embeddings=",
                config_.max_position_embeddings);
    auto x = transformer->wte(input_ids) + transformer->wpe(position_ids_from_mask(mask));
    x = torch::dropout(x, config_.dropout, is_training() && config_.dropout > 0);
    torch::Tensor bias;  // undefined: the fused causal kernel (attend())
    if (!fused_causal_ok(*this, attention_mask, is_training())) {
      bias = causal_attention_bias(mask, x.scalar_type());
    }
    const auto params = recompute_params(*this);
    for (auto& layer : *transformer->h) {
      auto* block = layer->as<Gpt2Block>();
      x = run_block(*this, params,
                    [block, bias](const torch::Tensor& h) { return block->forward(h, bias); }, x);
    }
    x = transformer->ln_f(x).to(compute_dtype());
    return mixed_linear(parallel::copy_to_tp(x, tp_), transformer->wte->weight);
  }
  const ShardSpec& vocab_spec() const override { return transformer->wte->spec(); }
  Gpt2Body transformer{nullptr};
};

}  // namespace

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
    model = std::make_shared<LlamaForCausalLM>(config, std::move(tp));
  } else {
    model = std::make_shared<Gpt2LMHeadModel>(config, std::move(tp));
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
