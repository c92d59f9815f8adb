#include "core/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "base/errors.h"
#include "base/strings.h"
#include "core/model.h"
#include "core/strategy.h"

namespace shardtune::core {

namespace {

// ---- Calibration: every measured constant, in one place -------------------------------------
// Reference machine: AMD EPYC VM (Zen 5, AVX-512 BF16), 2 cores, 24 GiB, Debian 12, LibTorch 1.13,
// OpenBLAS (openmp), OPENBLAS_CORETYPE unset; measured 2026-12-01 (docs/benchmarks.md).

// GEMM peak, 2048² mm on 2 threads, measured by benchmarks/run.sh in its 2026-12-01 11:45 UTC run
// (docs/benchmarks.md "One command"): fp32 169, bf16 401 GFLOP/s for the 2 cores.
constexpr double kGemmGflopsPerCoreFp32 = 169.0 / 2;
constexpr double kGemmGflopsPerCoreBf16 = 401.0 / 2;

// Step times the compute efficiencies are derived from (efficiency() below): the ~30M llama at
// np=1, 2 threads, micro-batch 8, seq 256, recompute none, bench_train, 2026-12-01
// (docs/benchmarks.md "Compute options"): fp32 2.45 s, bf16 1.25 s per step.
constexpr double kMeasured30mFp32StepS = 2.45;
constexpr double kMeasured30mBf16StepS = 1.25;

// Resident set of a training process besides the modelled tensors (LibTorch, OpenBLAS, Open MPI,
// HDF5, allocator slack): fitted to the four 30M rows of docs/benchmarks.md "Compute options"
// (peak RSS minus every modelled term; the four give 258-274 MB, this is their mean).
constexpr double kProcessBaselineMb = 268;

// Activation memory of a block over its closed form (autograd's bookkeeping, transient buffers
// at the peak): the recomputation saving of the 30M rows (608 MB fp32, 324 MB bf16 for 7 of its 8
// blocks plus their fp32 inputs) over the closed form is 1.09 (fp32) and 1.10 (bf16).
constexpr double kActivationOverhead = 1.10;

// Bytes per logit held at the peak (per token and local vocabulary entry): fp32 keeps four
// logit-sized fp32 buffers (logits, the cross-entropy's probabilities, the logits' gradient and
// the LM head's backward transient), bf16 two bf16 ones (logits and their gradient); fitted to
// the 30M rows, where the head's share differs by 196 MB between fp32 and bf16.
constexpr double kLogitBytesFp32 = 16;
constexpr double kLogitBytesBf16 = 4;

// Fixed cost per collective (MPI call, waiting for the slowest rank): an assumption, 100 us; the
// TP=2 TinyLlama runs issue 137-246 per step, so it is 1-2% of their step time.
constexpr double kCollectiveLatencyS = 1e-4;

// All-reduce bus bandwidth inside the node: GradSync's bucketed all-reduce of the 30M llama's
// gradients at np=2, 2.60 GB/s (docs/benchmarks-comm.md "Bus bandwidth, current tree").
constexpr double kIntraNodeGbs = 2.6;
// Between nodes: not measured (one machine); 100 Gbit/s InfiniBand EDR assumed.
constexpr double kInterNodeGbs = 12.5;

// DP gradient buckets ([parallel] bucket_mb default): one latency each.
constexpr double kBucketBytes = 25.0 * 1024 * 1024;

constexpr double kMb = 1e6;

// ---- The model's tensors ----------------------------------------------------------------------

enum class Kind { kColumn, kRow, kReplicatedSum };

struct LinearShape {
  std::string path;    // module path, e.g. model.layers.3.self_attn.q_proj
  int64_t layer = -1;  // block index, -1 outside the blocks
  int64_t in = 0, out = 0;
  Kind kind = Kind::kColumn;
  int64_t parts = 1;
  bool bias = false;
};

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

// The strategy's choices, parsed with the strategies' own option names and defaults
// (strategies/*.h); checks that need the model are made here with the strategies' messages.
struct StrategyPlan {
  std::string name;
  // lora
  int64_t lora_r = 8;
  double lora_dropout = 0.05;
  std::vector<std::string> lora_targets;
  // ptuning-v2
  int64_t pre_seq_len = 0;
  bool projection = false;
  int64_t prefix_hidden = 512;
  // freeze
  int64_t freeze_layers = 2;
  std::vector<std::string> freeze_modules, freeze_extra;
};

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

// Matrix parameters of one block (as core::flops_per_token counts them) and of the LM head.
double block_matmul_params(const ModelConfig& c) {
  const double h = c.hidden_size, f = c.intermediate_size;
  const double kv = static_cast<double>(c.kv_heads() * c.head_dim());
  const double mlp = c.family == "llama" ? 3 * h * f : 2 * h * f;
  return 2 * h * h + 2 * h * kv + mlp;
}

double bytes_of(bool bf16) { return bf16 ? 2.0 : 4.0; }

// The compute efficiency (model FLOP/s over the GEMM peak) of a dtype: derived from the measured
// step time of the 30M calibration run without recomputation.
double efficiency(bool bf16) {
  static const double fp32 = [] {
    const auto& row = plan_calibrations().at(0);
    const double flops =
        plan_flops_per_token(row.workload) * row.workload.global_batch * row.workload.seq_len;
    return flops / (kMeasured30mFp32StepS * 2 * kGemmGflopsPerCoreFp32 * 1e9);
  }();
  static const double b16 = [] {
    const auto& row = plan_calibrations().at(2);
    const double flops =
        plan_flops_per_token(row.workload) * row.workload.global_batch * row.workload.seq_len;
    return flops / (kMeasured30mBf16StepS * 2 * kGemmGflopsPerCoreBf16 * 1e9);
  }();
  return bf16 ? b16 : fp32;
}

std::string layout_problem(const PlanWorkload& w, const PlanLayout& l) {
  try {
    require(l.zero == 0 || l.zero == 1, "[parallel] zero must be 0 or 1");
    validate_tp(w.model, l.tp);
    // launch::Config::validate's batch rules.
    require(w.global_batch % l.dp == 0, "[train] global_batch=" + std::to_string(w.global_batch) +
                                            " is not divisible by the data-parallel size " +
                                            std::to_string(l.dp));
    const int64_t per_rank = w.global_batch / l.dp;
    require(per_rank % w.micro_batch == 0, "[train] micro_batch=" + std::to_string(w.micro_batch) +
                                               " does not divide the per-rank batch " +
                                               std::to_string(per_rank) +
                                               " (global_batch / data-parallel size)");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

PlanCluster reference_cluster() {
  PlanCluster c;
  c.cores_per_node = 2;
  c.gemm_gflops_per_core_fp32 = kGemmGflopsPerCoreFp32;
  c.gemm_gflops_per_core_bf16 = kGemmGflopsPerCoreBf16;
  c.intra_node_gbs = kIntraNodeGbs;
  c.inter_node_gbs = kInterNodeGbs;
  return c;
}

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

PlanRow plan_layout(const PlanWorkload& w, const PlanCluster& cluster, const PlanLayout& layout) {
  PlanRow row;
  row.layout = layout;
  row.invalid_reason = layout_problem(w, layout);
  row.valid = row.invalid_reason.empty();
  if (!row.valid) return row;
  const auto& c = w.model;
  const int tp = layout.tp, dp = layout.dp;
  const StrategyPlan s = parse_strategy(w);
  const double sz = bytes_of(w.bf16);

  // Memory.
  int64_t copies = 0;
  for (const auto& t : plan_tensors(w, tp)) {
    row.parameters += t.numel;
    if (t.trainable) row.trainable += t.numel;
    if (t.bf16_copy) copies += t.numel;
  }
  const double trainable = static_cast<double>(row.trainable);
  row.params_mb = (4.0 * static_cast<double>(row.parameters) +
                   (w.bf16 ? 2.0 * static_cast<double>(copies) : 0.0)) /
                  kMb;
  const bool zero = layout.zero == 1 && dp > 1;
  row.grads_mb = 4.0 * trainable * (zero ? 1.0 + 1.0 / dp : 1.0) / kMb;
  row.optimizer_mb = 8.0 * trainable / (layout.zero == 1 ? dp : 1) / kMb;

  const double h = c.hidden_size, T = static_cast<double>(w.seq_len);
  const double keys = static_cast<double>(w.seq_len + s.pre_seq_len);
  const double hl = std::ceil(h / tp),
               fl = std::ceil(static_cast<double>(c.intermediate_size) / tp);
  const double heads_l = std::ceil(static_cast<double>(c.num_heads) / tp);
  const double vocab_l = std::ceil(static_cast<double>(c.vocab_size) / tp);
  const int64_t first = first_grad_layer(s, c, tp);
  const double Lb = static_cast<double>(c.num_layers - first);
  // Per token and block: the fp32 residual stream read by the two norms; in the compute dtype the
  // two normed inputs (replicated), q, k and v (k/v repeated to the query heads, prefix keys
  // included), the attention output, the MLP's inputs/outputs (llama gate, up, SwiGLU; gpt2 fc,
  // GELU) and the attention probabilities of this rank's heads.
  const double mlp = c.family == "gpt2" ? 2.0 : 3.0;
  double block = 2 * h * 4 + sz * (2 * h + hl * (2 + 2 * keys / T) + mlp * fl + heads_l * keys);
  if (s.name == "lora") {
    // Adapters compute in fp32 on their input (widened from bf16, and dropped out): one fp32
    // copy each, plus the rank-r intermediate.
    const double copies_in = (w.bf16 ? 1 : 0) + (s.lora_dropout > 0 ? 1 : 0);
    double per_layer = 0;
    for (const auto& l : lora_targets(s, c, tp)) {
      const double in = l.kind == Kind::kRow ? std::ceil(static_cast<double>(l.in) / tp) : l.in;
      per_layer += copies_in * in * 4 + static_cast<double>(s.lora_r) * 4;
    }
    block += per_layer / static_cast<double>(c.num_layers);
  }
  const double head = h * 4 + sz * h + (w.bf16 ? kLogitBytesBf16 : kLogitBytesFp32) * vocab_l;
  const double micro_tokens = static_cast<double>(w.micro_batch * w.seq_len);
  const double layers_bytes = w.recompute
                                  ? (Lb > 0 ? kActivationOverhead * block + Lb * h * 4 : 0.0)
                                  : kActivationOverhead * block * Lb;
  row.activations_mb = micro_tokens * (layers_bytes + head) / kMb;
  row.baseline_mb = kProcessBaselineMb;
  row.total_mb =
      row.params_mb + row.grads_mb + row.optimizer_mb + row.activations_mb + row.baseline_mb;
  row.fits = cluster.memory_mb_per_rank <= 0 || row.total_mb <= cluster.memory_mb_per_rank;

  // Compute.
  const double tokens = static_cast<double>(w.global_batch * w.seq_len);
  row.flops = plan_flops_per_token(w) * tokens / (tp * dp);
  const double cores_per_rank = cluster.cores_per_node / cluster.ranks_per_node;
  const double gflops =
      cores_per_rank *
      (w.bf16 ? cluster.gemm_gflops_per_core_bf16 : cluster.gemm_gflops_per_core_fp32) *
      efficiency(w.bf16);
  row.compute_s = row.flops / (gflops * 1e9);

  // TP all-reduces, as core/layers.cpp, core/llama.cpp / gpt2.cpp, the vocabulary-parallel loss
  // and LoRA issue them.
  if (tp > 1) {
    const double micros = static_cast<double>(w.global_batch / dp / w.micro_batch);
    const double fp32_act = micro_tokens * h * 4, dtype_act = micro_tokens * h * sz;
    double bytes = 0, calls = 0;
    auto ar = [&](double n, double b) {
      calls += n;
      bytes += n * b;
    };
    ar(1, fp32_act);                                      // embedding (g)
    ar(2 * static_cast<double>(c.num_layers), fp32_act);  // row-parallel outputs (g)
    ar(2 * Lb - (first_block_input_needs_grad(s) || Lb == 0 ? 0 : 1), dtype_act);  // f backward
    if (w.recompute) ar(2 * Lb, fp32_act);  // forward again in backward
    ar(1, dtype_act);                       // LM head input (f)
    ar(1, micro_tokens * 4);                // loss: row max
    ar(1, micro_tokens * 8);                // loss: sum-exp, target logit
    if (s.name == "lora") {
      for (const auto& l : lora_targets(s, c, tp)) {
        if (l.kind == Kind::kReplicatedSum) {
          ar(1, micro_tokens * l.in * 4);
          ar(2, static_cast<double>(s.lora_r * (l.in + l.out)) * 2);
        } else {
          ar(1, micro_tokens * static_cast<double>(s.lora_r) * 4);
        }
      }
    }
    // Replicated k/v (kv_heads % tp != 0): their trained weights' gradients are summed over TP.
    if (c.kv_heads() % tp != 0) {
      for (const auto& t : plan_tensors(w, tp)) {
        if (t.trainable && (base::ends_with(t.name, "k_proj.weight") ||
                            base::ends_with(t.name, "v_proj.weight"))) {
          ar(1, static_cast<double>(t.numel) * 4);
        }
      }
    }
    bytes *= micros;
    calls *= micros;
    ar(1, 8);  // the gradient norm
    row.tp_mb = bytes / kMb;
    row.tp_calls = static_cast<int64_t>(calls);
    const bool inside_node = tp <= cluster.ranks_per_node && cluster.ranks_per_node % tp == 0;
    const double bw = (inside_node ? cluster.intra_node_gbs : cluster.inter_node_gbs) * 1e9;
    row.tp_s = bytes * 2.0 * (tp - 1) / tp / bw + calls * kCollectiveLatencyS;
  }
  // DP: the fp32 gradient all-reduce (ZeRO-1: reduce-scatter + parameter all-gather, the same
  // volume), in buckets.
  if (dp > 1) {
    const double bytes = trainable * 4;
    row.dp_mb = bytes / kMb;
    const double bw = (cluster.nodes > 1 ? cluster.inter_node_gbs : cluster.intra_node_gbs) * 1e9;
    const double buckets = std::max(1.0, std::ceil(bytes / kBucketBytes));
    row.dp_s = bytes * 2.0 * (dp - 1) / dp / bw + buckets * (zero ? 2 : 1) * kCollectiveLatencyS;
  }
  row.step_s = row.compute_s + row.tp_s + row.dp_s;
  row.tokens_per_s = tokens / row.step_s;
  return row;
}

std::vector<PlanRow> plan_layouts(const PlanWorkload& w, const PlanCluster& cluster, int only_tp,
                                  int only_zero) {
  const int world = cluster.nodes * cluster.ranks_per_node;
  std::vector<PlanRow> rows;
  for (int tp = 1; tp <= world; ++tp) {
    if (world % tp != 0 || (only_tp > 0 && tp != only_tp)) continue;
    const int dp = world / tp;
    for (int zero : {0, 1}) {
      if (only_zero >= 0 ? zero != only_zero : (zero == 1 && dp == 1)) continue;
      rows.push_back(plan_layout(w, cluster, {tp, dp, zero}));
    }
  }
  return rows;
}

const PlanRow* recommended(const std::vector<PlanRow>& rows) {
  const PlanRow* best = nullptr;
  for (const auto& r : rows) {
    if (!r.valid || !r.fits) continue;
    if (!best || r.step_s < best->step_s - 1e-9 ||
        (std::abs(r.step_s - best->step_s) <= 1e-9 && r.total_mb < best->total_mb)) {
      best = &r;
    }
  }
  return best;
}

const std::vector<PlanCalibration>& plan_calibrations() {
  static const std::vector<PlanCalibration> rows = [] {
    // The ~30M llama of benchmarks/run.sh and bench_train (benchmarks/bench_config.h).
    PlanWorkload m30;
    m30.model.family = "llama";
    m30.model.vocab_size = 8192;
    m30.model.hidden_size = 512;
    m30.model.num_layers = 8;
    m30.model.num_heads = 8;
    m30.model.intermediate_size = 1376;
    m30.model.max_position_embeddings = 256;
    m30.global_batch = 8;
    m30.micro_batch = 8;
    m30.seq_len = 256;
    // benchmarks/configs/tinyllama_*.ini (tests/test_plan.cpp checks they still say this).
    PlanWorkload tiny;
    tiny.model.family = "llama";
    tiny.model.vocab_size = 32000;
    tiny.model.hidden_size = 2048;
    tiny.model.num_layers = 22;
    tiny.model.num_heads = 32;
    tiny.model.num_kv_heads = 4;
    tiny.model.intermediate_size = 5632;
    tiny.model.max_position_embeddings = 2048;
    tiny.global_batch = 1;
    tiny.micro_batch = 1;
    tiny.seq_len = 512;
    tiny.bf16 = true;
    const PlanCluster one_rank = reference_cluster();  // 2 cores, one rank
    PlanCluster two_ranks = reference_cluster();
    two_ranks.ranks_per_node = 2;
    const std::string compute = "docs/benchmarks.md, Compute options (bench_train, 2026-12-01)";
    const std::string runsh = "docs/benchmarks.md, One command: run.sh (2026-12-01 11:45 UTC)";
    std::vector<PlanCalibration> out;
    auto add = [&](std::string name, PlanWorkload w, const PlanCluster& cl, PlanLayout l,
                   double step_s, double mb, std::string source) {
      out.push_back({std::move(name), std::move(w), cl, l, step_s, mb, std::move(source)});
    };
    auto with = [](PlanWorkload w, bool bf16, bool recompute, int64_t global_batch) {
      w.bf16 = bf16;
      w.recompute = recompute;
      w.global_batch = global_batch;
      return w;
    };
    // Rows 0 and 2 are the efficiencies' source (efficiency() reads them by index).
    add("30M llama, fp32, recompute none, np=1", with(m30, false, false, 8), one_rank, {1, 1, 0},
        kMeasured30mFp32StepS, 1814, compute);
    add("30M llama, fp32, recompute block, np=1", with(m30, false, true, 8), one_rank, {1, 1, 0},
        3.83, 1206, compute);
    add("30M llama, bf16, recompute none, np=1", with(m30, true, false, 8), one_rank, {1, 1, 0},
        kMeasured30mBf16StepS, 1353, compute);
    add("30M llama, bf16, recompute block, np=1", with(m30, true, true, 8), one_rank, {1, 1, 0},
        1.76, 1029, compute);
    // run.sh: tokens/s of 2,048-token steps per rank -> step time = tokens per step / tokens/s.
    add("30M llama, fp32, np=1 (run.sh)", with(m30, false, false, 8), one_rank, {1, 1, 0},
        2048 / 823.5, 0, runsh);
    add("30M llama, bf16, np=1 (run.sh)", with(m30, true, false, 8), one_rank, {1, 1, 0},
        2048 / 1483.2, 0, runsh);
    add("30M llama, fp32, np=2 TP=1 DP=2 (run.sh)", with(m30, false, false, 16), two_ranks,
        {1, 2, 0}, 4096 / 817.0, 0, runsh);
    add("30M llama, bf16, np=2 TP=1 DP=2 (run.sh)", with(m30, true, false, 16), two_ranks,
        {1, 2, 0}, 4096 / 1740.6, 0, runsh);
    PlanWorkload lora = tiny;
    lora.strategy = "lora";
    lora.strategy_options = {
        {"r", "16"}, {"alpha", "32"}, {"dropout", "0"}, {"target_modules", "all-linear"}};
    const std::string tiny_src = "docs/benchmarks.md, TinyLlama-1.1B shape (2026-12-01)";
    add("TinyLlama-1.1B, LoRA r=16 all-linear, bf16, np=2 TP=2", lora, two_ranks, {2, 1, 0}, 7.3,
        5500, tiny_src);
    PlanWorkload sft = tiny;
    sft.recompute = true;
    add("TinyLlama-1.1B, SFT, bf16, recompute block, np=2 TP=2", sft, two_ranks, {2, 1, 0}, 13.2,
        10700, tiny_src);
    return out;
  }();
  return rows;
}

std::string plan_calibration_markdown() {
  auto fmt = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  auto err = [&](double predicted, double measured) {
    const double percent = 100.0 * (predicted - measured) / measured;
    return std::abs(percent) < 0.05 ? std::string("0.0%") : fmt("%+.1f%%", percent);
  };
  std::ostringstream md;
  md << "| run | layout | predicted MB/rank | measured MB/rank | error | predicted s/step | "
        "measured s/step | error |\n"
     << "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& c : plan_calibrations()) {
    const PlanRow r = plan_layout(c.workload, c.cluster, c.layout);
    md << "| " << c.name << " | tp=" << c.layout.tp << " dp=" << c.layout.dp
       << " zero=" << c.layout.zero << " | " << fmt("%.0f", r.total_mb) << " | "
       << (c.measured_mb > 0 ? fmt("%.0f", c.measured_mb) : "-") << " | "
       << (c.measured_mb > 0 ? err(r.total_mb, c.measured_mb) : "-") << " | "
       << fmt("%.2f", r.step_s) << " | " << fmt("%.2f", c.measured_step_s) << " | "
       << err(r.step_s, c.measured_step_s) << " |\n";
  }
  return md.str();
}

}  // namespace shardtune::core
