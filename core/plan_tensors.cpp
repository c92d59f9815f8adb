// The model's tensors and the strategies' rules: plan_tensors() and plan_flops_per_token() of
// core/plan.h, and the helpers core/plan.cpp shares through core/plan_detail.h.
#include <algorithm>
#include <cstdlib>

#include "base/errors.h"
#include "base/strings.h"
#include "core/plan.h"
#include "core/plan_detail.h"
#include "core/strategy.h"

namespace shardtune::core::plan_detail {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of `out` this rank holds of a column-parallel layer (split_spec: chunk per part, padded).
int64_t column_rows(int64_t out, int64_t parts, int tp) {
  return tp == 1 ? out : parts * ceil_div(out / parts, tp);
}

std::vector<LinearShape> block_linears(const ModelConfig& c, int tp) {
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  const int64_t kv = c.kv_heads() * c.head_dim();
  const bool kv_split = c.kv_heads() % tp == 0;
  std::vector<LinearShape> out;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    if (c.family == "gpt2") {
      const std::string p = "transformer.h." + std::to_string(i) + ".";
      out.push_back({p + "attn.c_attn", i, h, 3 * h, Kind::kColumn, 3, true});
      out.push_back({p + "attn.c_proj", i, h, h, Kind::kRow, 1, true});
      out.push_back({p + "mlp.c_fc", i, h, f, Kind::kColumn, 1, true});
      out.push_back({p + "mlp.c_proj", i, f, h, Kind::kRow, 1, true});
    } else {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      const Kind kv_kind = kv_split ? Kind::kColumn : Kind::kReplicatedSum;
      out.push_back({p + "self_attn.q_proj", i, h, h, Kind::kColumn, 1, c.attention_bias});
      out.push_back({p + "self_attn.k_proj", i, h, kv, kv_kind, 1, c.attention_bias});
      out.push_back({p + "self_attn.v_proj", i, h, kv, kv_kind, 1, c.attention_bias});
      out.push_back({p + "self_attn.o_proj", i, h, h, Kind::kRow, 1, false});
      out.push_back({p + "mlp.gate_proj", i, h, f, Kind::kColumn, 1, false});
      out.push_back({p + "mlp.up_proj", i, h, f, Kind::kColumn, 1, false});
      out.push_back({p + "mlp.down_proj", i, f, h, Kind::kRow, 1, false});
    }
  }
  return out;
}

int64_t weight_numel(const LinearShape& l, int tp) {
  switch (l.kind) {
    case Kind::kColumn:
      return column_rows(l.out, l.parts, tp) * l.in;
    case Kind::kRow:
      return l.out * (tp == 1 ? l.in : ceil_div(l.in, tp));
    case Kind::kReplicatedSum:
      return l.out * l.in;
  }
  return 0;
}

int64_t bias_numel(const LinearShape& l, int tp) {
  return l.kind == Kind::kColumn ? column_rows(l.out, l.parts, tp) : l.out;
}

bool ends_with_path(const std::string& name, const std::string& target) {
  return name == target || base::ends_with(name, "." + target);
}

}  // namespace

StrategyPlan parse_strategy(const PlanWorkload& w) {
  StrategyPlan s;
  s.name = w.strategy;
  StrategyOptions o = w.strategy_options;
  if (s.name == "sft") return s;  // its options (self-training) change no tensor
  if (s.name == "lora") {
    s.lora_r = take_int(o, "lora", "r", 8);
    s.lora_dropout = take_double(o, "lora", "dropout", 0.05);
    s.lora_targets = base::split_list(take_option(o, "target_modules", ""));
    require(s.lora_r > 0, "[strategy.lora] r=" + std::to_string(s.lora_r) + " must be positive");
    if (s.lora_targets.empty()) {
      s.lora_targets = w.model.family == "gpt2" ? std::vector<std::string>{"c_attn"}
                                                : std::vector<std::string>{"q_proj", "v_proj"};
    }
    return s;
  }
  if (s.name == "ptuning-v2") {
    s.pre_seq_len = take_int(o, "ptuning-v2", "pre_seq_len", 16);
    s.projection = take_bool(o, "ptuning-v2", "prefix_projection", false);
    s.prefix_hidden = take_int(o, "ptuning-v2", "prefix_hidden_size", 512);
    require(s.pre_seq_len > 0, "[strategy.ptuning-v2] pre_seq_len must be positive");
    return s;
  }
  if (s.name == "freeze") {
    s.freeze_layers = take_int(o, "freeze", "trainable_layers", 2);
    s.freeze_modules = base::split_list(take_option(o, "trainable_modules", "all"));
    s.freeze_extra = base::split_list(take_option(o, "extra_modules", ""));
    const auto& c = w.model;
    require(std::llabs(s.freeze_layers) <= c.num_layers,
            "[strategy.freeze] trainable_layers=" + std::to_string(s.freeze_layers) +
                " exceeds the " + std::to_string(c.num_layers) + " blocks of [model] num_layers");
    const std::vector<std::string> blocks = c.family == "gpt2"
                                                ? std::vector<std::string>{"mlp", "attn"}
                                                : std::vector<std::string>{"mlp", "self_attn"};
    for (const auto& m : s.freeze_modules) {
      require(m == "all" || std::find(blocks.begin(), blocks.end(), m) != blocks.end(),
              "[strategy.freeze] trainable_modules: '" + m + "' is not a block module of a " +
                  c.family + " model (known: " + base::join(blocks) + ", all)");
    }
    const std::vector<std::string> extras =
        c.family == "gpt2" ? std::vector<std::string>{"wte", "wpe", "ln_f"}
                           : std::vector<std::string>{"embed_tokens", "lm_head", "norm"};
    for (const auto& e : s.freeze_extra) {
      require(std::find(extras.begin(), extras.end(), e) != extras.end(),
              "[strategy.freeze] extra_modules: '" + e + "' is not a module of a " + c.family +
                  " model (known: " + base::join(extras) + ")");
      require(e != "lm_head" || !c.ties_embeddings(),
              "[strategy.freeze] extra_modules: lm_head is tied to embed_tokens in this model "
              "([model] tie_word_embeddings); name embed_tokens instead");
    }
    return s;
  }
  throw UserError("[strategy] name='" + s.name +
                  "' is unknown to the planner (known: sft, lora, ptuning-v2, freeze)");
}

namespace {

// FreezeStrategy::trains (strategies/freeze.cpp), by parameter name.
bool freeze_trains(const StrategyPlan& s, const std::string& name, const ModelConfig& c) {
  const bool gpt2 = c.family == "gpt2";
  const std::string layers = gpt2 ? "transformer.h." : "model.layers.";
  if (base::starts_with(name, layers)) {
    const auto rest = name.substr(layers.size());
    const int64_t idx = std::atoll(rest.c_str());
    const bool on =
        s.freeze_layers > 0 ? idx >= c.num_layers - s.freeze_layers : idx < -s.freeze_layers;
    if (!on) return false;
    const auto module = rest.substr(rest.find('.') + 1);
    for (const auto& m : s.freeze_modules) {
      if (m == "all" || base::starts_with(module, m + ".")) return true;
    }
    return false;
  }
  const std::vector<std::pair<std::string, std::string>> extra =
      gpt2 ? std::vector<std::pair<std::string, std::string>>{{"wte", "transformer.wte."},
                                                              {"wpe", "transformer.wpe."},
                                                              {"ln_f", "transformer.ln_f."}}
           : std::vector<std::pair<std::string, std::string>>{
                 {"embed_tokens", "model.embed_tokens."},
                 {"lm_head", "lm_head."},
                 {"norm", "model.norm."}};
  for (const auto& e : s.freeze_extra) {
    for (const auto& [option, prefix] : extra) {
      if (e == option && base::starts_with(name, prefix)) return true;
    }
  }
  return false;
}

}  // namespace

// The linears LoRA adapts (LoraStrategy::apply's matching), with its errors.
std::vector<LinearShape> lora_targets(const StrategyPlan& s, const ModelConfig& c, int tp) {
  const auto linears = block_linears(c, tp);
  const bool all_linear = s.lora_targets.size() == 1 && s.lora_targets[0] == "all-linear";
  std::vector<LinearShape> chosen;
  std::vector<bool> used(s.lora_targets.size(), false);
  std::vector<std::string> known;
  for (const auto& l : linears) {
    const auto last = l.path.substr(l.path.rfind('.') + 1);
    if (std::find(known.begin(), known.end(), last) == known.end()) known.push_back(last);
    bool take = all_linear;
    for (size_t i = 0; !all_linear && i < s.lora_targets.size(); ++i) {
      if (ends_with_path(l.path, s.lora_targets[i])) take = used[i] = true;
    }
    if (take) chosen.push_back(l);
  }
  for (size_t i = 0; !all_linear && i < s.lora_targets.size(); ++i) {
    require(s.lora_targets[i] != "lm_head",
            "[strategy.lora] target_modules: lm_head cannot be adapted (its vocabulary split has "
            "padding rows); use the freeze strategy's extra_modules=lm_head");
    require(used[i], "[strategy.lora] target_modules: '" + s.lora_targets[i] +
                         "' matches no Linear of this " + c.family +
                         " model (known: " + base::join(known) + ", or all-linear)");
  }
  return chosen;
}

namespace {

// LoRA's A and B elements on this rank for one adapted linear (LoraAdapter's specs).
std::pair<int64_t, int64_t> lora_numel(const LinearShape& l, int64_t r, int tp) {
  switch (l.kind) {
    case Kind::kColumn:
      return {r * l.in, column_rows(l.out, l.parts, tp) * r};
    case Kind::kRow:
      return {r * (tp == 1 ? l.in : ceil_div(l.in, tp)), l.out * r};
    case Kind::kReplicatedSum:
      return {r * l.in, l.out * r};
  }
  return {0, 0};
}

}  // namespace

// The first block whose activations autograd records (a parameter in it or below it trains);
// num_layers when none (only the final norm or the head trains).
int64_t first_grad_layer(const StrategyPlan& s, const ModelConfig& c, int tp) {
  if (s.name == "sft" || s.name == "ptuning-v2") return 0;
  if (s.name == "lora") {
    int64_t first = c.num_layers;
    for (const auto& l : lora_targets(s, c, tp)) first = std::min(first, l.layer);
    return first;
  }
  for (const auto& e : s.freeze_extra) {
    if (e == "embed_tokens" || e == "wte" || e == "wpe") return 0;
  }
  if (s.freeze_layers > 0) return c.num_layers - s.freeze_layers;
  if (s.freeze_layers < 0) return 0;
  return c.num_layers;
}

// Whether the gradient of the first recorded block's input is needed (something below it trains:
// the embedding) or its first norm trains: then its attention input's TP all-reduce runs in
// backward. False for adapters and prefixes on a frozen backbone.
bool first_block_input_needs_grad(const StrategyPlan& s) {
  if (s.name == "sft") return true;
  if (s.name != "freeze") return false;
  for (const auto& e : s.freeze_extra) {
    if (e == "embed_tokens" || e == "wte" || e == "wpe") return true;
  }
  for (const auto& m : s.freeze_modules) {
    if (m == "all") return true;  // the block's norms train
  }
  return false;
}

}  // namespace shardtune::core::plan_detail

namespace shardtune::core {

using namespace plan_detail;  // the helpers above, private ones included

namespace {

// Matrix parameters of one block (as core::flops_per_token counts them) and of the LM head.
double block_matmul_params(const ModelConfig& c) {
  const double h = c.hidden_size, f = c.intermediate_size;
  const double kv = static_cast<double>(c.kv_heads() * c.head_dim());
  const double mlp = c.family == "llama" ? 3 * h * f : 2 * h * f;
  return 2 * h * h + 2 * h * kv + mlp;
}

}  // namespace

std::vector<PlanTensor> plan_tensors(const PlanWorkload& w, int tp) {
  const auto& c = w.model;
  const StrategyPlan s = parse_strategy(w);
  const int64_t h = c.hidden_size, v = c.vocab_size;
  const int64_t vocab_rows = tp == 1 ? v : ceil_div(v, tp);
  const bool gpt2 = c.family == "gpt2";
  std::vector<PlanTensor> out;
  auto add = [&](std::string name, int64_t numel, bool bf16_copy) {
    out.push_back({std::move(name), numel, false, bf16_copy});
  };
  if (gpt2) {
    add("transformer.wte.weight", vocab_rows * h, true);  // also the (tied) LM head
    add("transformer.wpe.weight", c.max_position_embeddings * h, false);
  } else {
    add("model.embed_tokens.weight", vocab_rows * h, c.tie_word_embeddings);
  }
  const auto linears = block_linears(c, tp);
  size_t next = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = (gpt2 ? "transformer.h." : "model.layers.") + std::to_string(i) + ".";
    auto norm = [&](const char* name) {
      add(p + name + ".weight", h, false);
      if (gpt2) add(p + name + ".bias", h, false);
    };
    auto linear = [&] {
      const auto& l = linears.at(next++);
      add(l.path + ".weight", weight_numel(l, tp), true);
      if (l.bias) add(l.path + ".bias", bias_numel(l, tp), false);
    };
    norm(gpt2 ? "ln_1" : "input_layernorm");
    for (int k = 0; k < (gpt2 ? 2 : 4); ++k) linear();  // attention
    norm(gpt2 ? "ln_2" : "post_attention_layernorm");
    for (int k = 0; k < (gpt2 ? 2 : 3); ++k) linear();  // MLP
  }
  if (gpt2) {
    add("transformer.ln_f.weight", h, false);
    add("transformer.ln_f.bias", h, false);
  } else {
    add("model.norm.weight", h, false);
    if (!c.tie_word_embeddings) add("lm_head.weight", vocab_rows * h, true);
  }
  for (auto& t : out) {
    t.trainable = s.name == "sft" || (s.name == "freeze" && freeze_trains(s, t.name, c));
  }
  if (s.name == "lora") {
    for (const auto& l : lora_targets(s, c, tp)) {
      const auto [a, b] = lora_numel(l, s.lora_r, tp);
      out.push_back({l.path + ".lora.A", a, true, false});
      out.push_back({l.path + ".lora.B", b, true, false});
    }
  }
  if (s.name == "ptuning-v2") {
    const int64_t kvh = c.kv_heads(), d = c.head_dim(), L = c.num_layers, P = s.pre_seq_len;
    if (!s.projection) {
      const bool split = tp > 1 && kvh % tp == 0;
      out.push_back(
          {"prefix_encoder.prefix", L * 2 * (split ? kvh / tp : kvh) * P * d, true, false});
    } else {
      const int64_t H = s.prefix_hidden, o = L * 2 * kvh * d;
      out.push_back({"prefix_encoder.embedding", P * h, true, false});
      out.push_back({"prefix_encoder.proj_in.weight", H * h, true, false});
      out.push_back({"prefix_encoder.proj_in.bias", H, true, false});
      out.push_back({"prefix_encoder.proj_out.weight", o * H, true, false});
      out.push_back({"prefix_encoder.proj_out.bias", o, true, false});
    }
  }
  return out;
}

double plan_flops_per_token(const PlanWorkload& w) {
  const auto& c = w.model;
  const StrategyPlan s = parse_strategy(w);
  const double L = static_cast<double>(c.num_layers), h = c.hidden_size;
  const double Lb = L - static_cast<double>(first_grad_layer(s, c, 1));
  const double keys = static_cast<double>(w.seq_len + s.pre_seq_len);
  const double block = block_matmul_params(c), head = static_cast<double>(c.vocab_size) * h;
  // Trainable matrices (weight gradients): linear weights, the tied embedding as LM head, LoRA.
  double trained = 0, adapters = 0;
  for (const auto& t : plan_tensors(w, 1)) {
    const bool adapter = t.name.find(".lora.") != std::string::npos;
    if (adapter) adapters += static_cast<double>(t.numel);
    if (t.trainable && (t.bf16_copy || adapter)) trained += static_cast<double>(t.numel);
  }
  const double forward = 2 * (L * block + head + adapters) + 4 * L * keys * h;
  const double input_grads = 2 * (Lb * block + head + adapters) + 8 * Lb * keys * h;
  const double weight_grads = 2 * trained;
  const double recompute = w.recompute ? 2 * (Lb * block + adapters) + 4 * Lb * keys * h : 0.0;
  return forward + input_grads + weight_grads + recompute;
}

}  // namespace shardtune::core
