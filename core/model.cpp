#include "core/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/layers.h"

namespace shardtune::core {

namespace {

// ---- llama -------------------------------------------------------------------------------------

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const ModelConfig& c)
      : heads_(c.num_heads), kv_heads_(c.kv_heads()), head_dim_(c.head_dim()), dropout_(c.dropout) {
    const int64_t kv = kv_heads_ * head_dim_;
    q_proj = register_module("q_proj", Linear(c.hidden_size, c.hidden_size, c.attention_bias,
                                              LinearKind::kColumn));
    k_proj = register_module("k_proj", Linear(c.hidden_size, kv, c.attention_bias,
                                              LinearKind::kColumn));
    v_proj = register_module("v_proj", Linear(c.hidden_size, kv, c.attention_bias,
                                              LinearKind::kColumn));
    o_proj = register_module("o_proj", Linear(c.hidden_size, c.hidden_size, false,
                                              LinearKind::kRow));
  }

  // x: [B, T, H]; cos/sin: [B, 1, T, d]; bias: [B, 1, T, T]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias) {
    const int64_t b = x.size(0), t = x.size(1);
    auto q = q_proj(x).view({b, t, -1, head_dim_}).transpose(1, 2);  // [B, h, T, d]
    auto k = k_proj(x).view({b, t, -1, head_dim_}).transpose(1, 2);  // [B, kv, T, d]
    auto v = v_proj(x).view({b, t, -1, head_dim_}).transpose(1, 2);
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
    const int64_t rep = q.size(1) / k.size(1);
    if (rep > 1) {  // grouped-query attention: each kv head serves `rep` consecutive q heads
      k = k.repeat_interleave(rep, 1);
      v = v.repeat_interleave(rep, 1);
    }
    auto out = attention(q, k, v, bias, dropout_, is_training());  // [B, h, T, d]
    return o_proj(out.transpose(1, 2).reshape({b, t, -1}));
  }

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
  double dropout_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const ModelConfig& c) {
    gate_proj = register_module(
        "gate_proj", Linear(c.hidden_size, c.intermediate_size, false, LinearKind::kColumn));
    up_proj = register_module(
        "up_proj", Linear(c.hidden_size, c.intermediate_size, false, LinearKind::kColumn));
    down_proj = register_module(
        "down_proj", Linear(c.intermediate_size, c.hidden_size, false, LinearKind::kRow));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
  }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaBlockImpl : public torch::nn::Module {
 public:
  explicit LlamaBlockImpl(const ModelConfig& c) : dropout_(c.dropout) {
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
    self_attn = register_module("self_attn", LlamaAttention(c));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", LlamaMlp(c));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias) {
    auto a = self_attn(input_layernorm(x), cos, sin, bias);
    x = x + torch::dropout(a, dropout_, is_training() && dropout_ > 0);
    auto m = mlp(post_attention_layernorm(x));
    return x + torch::dropout(m, dropout_, is_training() && dropout_ > 0);
  }
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(LlamaBlock);

class LlamaBodyImpl : public torch::nn::Module {
 public:
  explicit LlamaBodyImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) layers->push_back(LlamaBlock(c));
    norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

class LlamaForCausalLM : public CausalLMImpl {
 public:
  explicit LlamaForCausalLM(const ModelConfig& c) : CausalLMImpl(c) {
    model = register_module("model", LlamaBody(c));
    if (!c.tie_word_embeddings) {
      lm_head = register_module("lm_head",
                                Linear(c.hidden_size, c.vocab_size, false, LinearKind::kColumn));
    }
  }

  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
    auto x = model->embed_tokens(input_ids);
    auto [cos, sin] = rotary_tables(position_ids_from_mask(mask), config_.head_dim(),
                                    config_.rope_theta, x.scalar_type());
    auto bias = causal_attention_bias(mask, x.scalar_type());
    for (auto& layer : *model->layers) x = layer->as<LlamaBlock>()->forward(x, cos, sin, bias);
    x = model->norm(x);
    return lm_head ? lm_head(x) : torch::nn::functional::linear(x, model->embed_tokens->weight);
  }

  LlamaBody model{nullptr};
  Linear lm_head{nullptr};
};

// ---- gpt2 --------------------------------------------------------------------------------------

class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  explicit Gpt2AttentionImpl(const ModelConfig& c) : head_dim_(c.head_dim()), dropout_(c.dropout) {
    c_attn = register_module("c_attn",
                             Linear(c.hidden_size, 3 * c.hidden_size, true, LinearKind::kColumn));
    c_proj = register_module("c_proj",
                             Linear(c.hidden_size, c.hidden_size, true, LinearKind::kRow));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias) {
    const int64_t b = x.size(0), t = x.size(1);
    auto qkv = c_attn(x).chunk(3, -1);  // fused [q | k | v], Hugging Face's order
    auto split = [&](const torch::Tensor& y) {
      return y.view({b, t, -1, head_dim_}).transpose(1, 2);
    };
    auto out = attention(split(qkv[0]), split(qkv[1]), split(qkv[2]), bias, dropout_,
                         is_training());
    return c_proj(out.transpose(1, 2).reshape({b, t, -1}));
  }
  Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t head_dim_;
  double dropout_;
};
TORCH_MODULE(Gpt2Attention);

class Gpt2MlpImpl : public torch::nn::Module {
 public:
  explicit Gpt2MlpImpl(const ModelConfig& c) {
    c_fc = register_module("c_fc",
                           Linear(c.hidden_size, c.intermediate_size, true, LinearKind::kColumn));
    c_proj = register_module("c_proj",
                             Linear(c.intermediate_size, c.hidden_size, true, LinearKind::kRow));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return c_proj(torch::gelu(c_fc(x), "tanh"));
  }
  Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  explicit Gpt2BlockImpl(const ModelConfig& c) : dropout_(c.dropout) {
    ln_1 = register_module("ln_1", LayerNorm(c.hidden_size, c.norm_eps));
    attn = register_module("attn", Gpt2Attention(c));
    ln_2 = register_module("ln_2", LayerNorm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", Gpt2Mlp(c));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& bias) {
    x = x + torch::dropout(attn(ln_1(x), bias), dropout_, is_training() && dropout_ > 0);
    return x + torch::dropout(mlp(ln_2(x)), dropout_, is_training() && dropout_ > 0);
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(Gpt2Block);

class Gpt2BodyImpl : public torch::nn::Module {
 public:
  explicit Gpt2BodyImpl(const ModelConfig& c) {
    wte = register_module("wte", Embedding(c.vocab_size, c.hidden_size));
    wpe = register_module("wpe", Embedding(c.max_position_embeddings, c.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) h->push_back(Gpt2Block(c));
    ln_f = register_module("ln_f", LayerNorm(c.hidden_size, c.norm_eps));
  }
  Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Body);

class Gpt2LMHeadModel : public CausalLMImpl {
 public:
  explicit Gpt2LMHeadModel(const ModelConfig& c) : CausalLMImpl(c) {
    transformer = register_module("transformer", Gpt2Body(c));
  }
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
    TORCH_CHECK(input_ids.size(1) <= config_.max_position_embeddings,
                "sequence of ", input_ids.size(1), " tokens exceeds max_position_embeddings=",
                config_.max_position_embeddings);
    auto x = transformer->wte(input_ids) + transformer->wpe(position_ids_from_mask(mask));
    x = torch::dropout(x, config_.dropout, is_training() && config_.dropout > 0);
    auto bias = causal_attention_bias(mask, x.scalar_type());
    for (auto& block : *transformer->h) x = block->as<Gpt2Block>()->forward(x, bias);
    x = transformer->ln_f(x);
    return torch::nn::functional::linear(x, transformer->wte->weight);
  }
  Gpt2Body transformer{nullptr};
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

uint64_t named_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char ch : name) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  // splitmix64 finaliser over (hash ^ seed) so nearby seeds give unrelated streams.
  uint64_t z = h ^ (seed + 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void init_parameter(torch::Tensor& param, const std::string& name, const ModelConfig& config,
                    uint64_t seed) {
  torch::NoGradGuard no_grad;
  if (param.dim() == 1) {
    // Norm gains start at one, biases at zero.
    const bool is_gain = ends_with(name, "norm.weight") || name.find(".ln_") != std::string::npos ||
                         name.find("ln_f.weight") != std::string::npos;
    if (is_gain && ends_with(name, "weight")) {
      param.fill_(1.0);
    } else {
      param.zero_();
    }
    return;
  }
  double std = config.init_std;
  // GPT-2 scales the residual projections by 1/sqrt(2 * layers) (Radford et al. 2019).
  if (config.family == "gpt2" && ends_with(name, "c_proj.weight")) {
    std /= std::sqrt(2.0 * static_cast<double>(config.num_layers));
  }
  auto gen = at::detail::createCPUGenerator(named_seed(seed, name));
  auto values = at::normal(0.0, std, param.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
  param.copy_(values);
}

std::shared_ptr<CausalLMImpl> build_model(const ModelConfig& config, uint64_t seed) {
  config.validate();
  std::shared_ptr<CausalLMImpl> model;
  if (config.family == "llama") {
    model = std::make_shared<LlamaForCausalLM>(config);
  } else {
    model = std::make_shared<Gpt2LMHeadModel>(config);
  }
  for (auto& item : model->named_parameters()) {
    auto param = item.value();
    init_parameter(param, item.key(), config, seed);
  }
  return model;
}

}  // namespace shardtune::core
