#include "io/peft_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/layers.h"
#include "core/shard.h"
#include "io/hf_weights.h"
#include "io/safetensors.h"
#include "base/errors.h"

namespace shardtune::io {

namespace fs = std::filesystem;
namespace st = safetensors;
using ordered_json = nlohmann::ordered_json;

namespace {

bool selects(const std::string& name, const std::string& target) {
  // PEFT's rule for a list of target_modules: the whole name, or its end after a dot.
  return name == target || (name.size() > target.size() &&
                            name.compare(name.size() - target.size(), target.size(), target) == 0 &&
                            name[name.size() - target.size() - 1] == '.');
}

void write_json(const fs::path& path, const ordered_json& j) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) throw UserError(tmp.string() + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw UserError(path.string() + ": cannot rename: " + ec.message());
}

ordered_json number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return static_cast<int64_t>(v);
  return v;
}

// Writes `tensors` (name, full tensor) to DIR/adapter_model.safetensors.
void write_adapter(const std::string& out_dir,
                   std::vector<std::pair<std::string, torch::Tensor>> tensors,
                   const std::string& dtype) {
  const auto d = dtype_from_torch_name(dtype);
  std::vector<st::TensorEntry> entries;
  for (auto& [name, t] : tensors) {
    t = t.to(scalar_type_of(d)).contiguous();
    entries.push_back({name, d, t.sizes().vec()});
  }
  // PEFT writes one file whatever its size.
  st::ShardedWriter out(out_dir, entries, UINT64_MAX, "adapter_model");
  for (const auto& [name, t] : tensors) out.write(name, t.data_ptr(), t.nbytes());
  out.finish();
}

}  // namespace

std::vector<std::string> peft_target_modules(const core::CausalLMImpl& model,
                                             const std::vector<std::string>& modules) {
  std::vector<std::string> linears;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (std::dynamic_pointer_cast<core::LinearImpl>(item.value())) linears.push_back(item.key());
  }
  const std::set<std::string> adapted(modules.begin(), modules.end());
  std::set<std::string> leaves;
  for (const auto& m : modules) leaves.insert(m.substr(m.rfind('.') + 1));
  std::set<std::string> selected;
  for (const auto& name : linears) {
    for (const auto& leaf : leaves) {
      if (selects(name, leaf)) selected.insert(name);
    }
  }
  if (selected == adapted) return {leaves.begin(), leaves.end()};
  return {adapted.begin(), adapted.end()};
}

std::vector<std::string> export_peft_lora(core::CausalLMImpl& model, const PeftLoraSettings& lora,
                                          const std::string& out_dir, bool writer,
                                          const std::string& dtype) {
  require(!lora.modules.empty(), "PEFT export: the LoRA strategy adapted no module");
  std::map<std::string, core::ShardSpec> specs;
  for (auto& [name, spec] : core::parameter_specs(model)) specs.emplace(name, spec);
  auto params = model.named_parameters();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  torch::NoGradGuard no_grad;
  for (const auto& m : lora.modules) {
    for (const char* which : {"A", "B"}) {
      const std::string name = m + ".lora." + which;
      auto it = specs.find(name);
      require(it != specs.end(), "PEFT export: module '" + m + "' has no LoRA parameter " + name);
      const auto& shape = it->second.global_shape;
      const bool ok = shape.size() == 2 && (which[0] == 'A' ? shape[0] : shape[1]) == lora.r;
      require(ok, "PEFT export: " + name + " is not of rank r=" + std::to_string(lora.r));
      auto full = core::gather_full(params[name].detach(), it->second, model.tp());
      tensors.emplace_back("base_model.model." + m + ".lora_" + which + ".weight", full);
    }
  }
  if (!writer) return {};

  ordered_json c;
  c["peft_type"] = "LORA";
  c["task_type"] = "CAUSAL_LM";
  c["base_model_name_or_path"] = lora.base_model;
  c["revision"] = nullptr;
  c["inference_mode"] = true;
  c["r"] = lora.r;
  c["lora_alpha"] = number(lora.alpha);
  c["lora_dropout"] = lora.dropout;
  c["use_rslora"] = lora.rslora;
  c["target_modules"] = peft_target_modules(model, lora.modules);
  c["fan_in_fan_out"] = model.config().family == "gpt2";  // Conv1D stores [in, out]
  c["bias"] = "none";
  c["modules_to_save"] = nullptr;
  c["init_lora_weights"] = true;
  c["layers_to_transform"] = nullptr;
  c["layers_pattern"] = nullptr;
  c["rank_pattern"] = ordered_json::object();
  c["alpha_pattern"] = ordered_json::object();
  c["use_dora"] = false;
  write_adapter(out_dir, std::move(tensors), dtype);
  write_json(fs::path(out_dir) / "adapter_config.json", c);
  return {"adapter_model.safetensors", "adapter_config.json"};
}

std::vector<std::string> export_peft_prefix(core::CausalLMImpl& model,
                                            const std::string& base_model,
                                            const std::string& out_dir, bool writer,
                                            const std::string& dtype) {
  const auto& c = model.config();
  auto* provider = model.prefix_provider();
  require(provider != nullptr, "PEFT export: the model has no prefix (strategy ptuning-v2)");
  require(c.family != "gpt2",
          "PEFT export: a GPT-2 prefix cannot be exported for PEFT: PEFT puts the prefix in the KV "
          "cache, which moves GPT-2's learned positions of every real token by the prefix length "
          "and changes the model; export the P-tuning v2 checkpoint instead");
  const int64_t kv = c.kv_heads(), d = c.head_dim();
  const auto& tp = model.tp();
  const bool split = model.kv_heads_split() && tp.active();

  const bool was_training = model.is_training();
  model.eval();  // the effective prefix, without dropout
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> layers;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto [k, v] = provider->prefix(l, 1);  // [1, kv_held, P, d]
    std::vector<torch::Tensor> kv_pair;
    for (auto t : {k[0].contiguous(), v[0].contiguous()}) {
      if (split) {
        const auto spec = core::split_spec({kv, t.size(1), d}, 0, tp.rank(), tp.size());
        t = core::gather_full(t, spec, tp);
      }
      kv_pair.push_back(t.to(torch::kDouble));  // [kv, P, d]
    }
    layers.push_back(torch::stack(kv_pair));  // [2, kv, P, d]
  }
  model.train(was_training);
  auto prefix = torch::stack(layers);  // [L, 2, kv, P, d]
  const int64_t P = prefix.size(3);

  // Keys rotated by position P (see the header): HF's rotate-half RoPE at angle P * theta^(-2i/d).
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto inv_freq =
      1.0 / torch::pow(c.rope_theta, torch::arange(0, d, 2, opts) / static_cast<double>(d));
  auto angle = torch::cat({inv_freq, inv_freq}) * static_cast<double>(P);  // [d]
  auto keys = prefix.select(1, 0);
  keys.copy_(core::apply_rotary(keys, angle.cos(), angle.sin()));

  // [L, 2, kv, P, d] -> [P, L, 2, kv, d] -> [P, L * 2 * kv * d] (PEFT's view and permute inverted).
  auto embeddings = prefix.permute({3, 0, 1, 2, 4}).reshape({P, c.num_layers * 2 * kv * d});
  if (!writer) return {};

  ordered_json j;
  j["peft_type"] = "PREFIX_TUNING";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["revision"] = nullptr;
  j["inference_mode"] = true;
  j["num_virtual_tokens"] = P;
  j["token_dim"] = kv * d;
  j["num_transformer_submodules"] = 1;
  j["num_attention_heads"] = kv;
  j["num_layers"] = c.num_layers;
  j["encoder_hidden_size"] = kv * d;
  j["prefix_projection"] = false;
  write_adapter(out_dir, {{"prompt_embeddings", embeddings}}, dtype);
  write_json(fs::path(out_dir) / "adapter_config.json", j);
  return {"adapter_model.safetensors", "adapter_config.json"};
}

}  // namespace shardtune::io
