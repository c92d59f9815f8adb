// The llama family (Llama, Qwen2, Mistral): RMSNorm, rotary positions, grouped-query attention,
// SwiGLU, optionally tied embeddings; module names as Hugging Face's LlamaForCausalLM.
#include "core/kernels/fused_ops.h"
#include "core/layers.h"
#include "core/model_family.h"

namespace shardtune::core::detail {

namespace {

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

}  // namespace

std::shared_ptr<CausalLMImpl> make_llama(const ModelConfig& config, parallel::TpGroup tp) {
  return std::make_shared<LlamaForCausalLM>(config, std::move(tp));
}

}  // namespace shardtune::core::detail
