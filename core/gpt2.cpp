// The GPT-2 family: LayerNorm, learned positions, fused q/k/v projection, GELU MLP, tied
// embeddings; module names as Hugging Face's GPT2LMHeadModel.
#include "core/layers.h"
#include "core/model_family.h"

namespace shardtune::core::detail {

namespace {

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

std::shared_ptr<CausalLMImpl> make_gpt2(const ModelConfig& config, parallel::TpGroup tp) {
  return std::make_shared<Gpt2LMHeadModel>(config, std::move(tp));
}

}  // namespace shardtune::core::detail
