// PEFT adapter import: the adapter config checked as untrusted JSON, tensors matched to the
// strategy's parameters by name, each rank keeping its slice.
#include "io/peft_import.h"

#include <filesystem>
#include <map>
#include <set>

#include "core/layers.h"
#include "core/shard.h"
#include "io/safetensors.h"
#include "io/tokenizers/json_util.h"
#include "base/errors.h"
#include "base/strings.h"

namespace shardtune::io {

namespace fs = std::filesystem;
namespace st = safetensors;
using tokenizers::JsonField;

namespace {

constexpr std::size_t kMaxAdapterConfigBytes = 1u << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A full adapter tensor as float32 on the CPU, shape-checked against `shape`.
torch::Tensor read_full(const st::Folder& folder, const std::string& name,
                        const std::vector<int64_t>& shape, const std::string& what) {
  const st::File* file = folder.file_of(name);
  require(file != nullptr, folder.dir() + ": adapter tensor '" + name + "' is missing (" + what + ")");
  const st::TensorInfo& info = file->at(name);
  require(st::is_convertible_float(info.dtype),
          file->path() + ": tensor '" + name + "' has dtype " + st::dtype_name(info.dtype) +
              " (F32, F16, BF16 or F64 expected)");
  if (info.shape != shape) {
    throw UserError(file->path() + ": tensor '" + name + "' has shape " +
                    base::shape_string(info.shape) + ", " + base::shape_string(shape) +
                    " expected (" + what + ")");
  }
  auto out = torch::empty(shape, torch::kFloat);
  file->read(info, st::Dtype::kF32, out.data_ptr(), static_cast<size_t>(out.nbytes()));
  return out;
}

}  // namespace

bool is_peft_adapter(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / "adapter_config.json", ec);
}

PeftAdapterConfig read_peft_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  const nlohmann::json j = tokenizers::read_json_file(path, kMaxAdapterConfigBytes);
  const JsonField root = tokenizers::json_root(j, path);
  root.expect_kind(j.is_object(), "object");
  PeftAdapterConfig c;
  c.peft_type = root.at("peft_type").string();
  if (root.present("task_type")) {
    const std::string task = root.at("task_type").string();
    root.at("task_type").expect(task == "CAUSAL_LM", "is '" + task + "' (CAUSAL_LM expected)");
  }
  if (root.present("base_model_name_or_path")) {
    c.base_model = root.at("base_model_name_or_path").string();
  }
  if (c.peft_type == "LORA") {
    c.r = root.at("r").integer(1, 1 << 20);
    const JsonField alpha = root.at("lora_alpha");
    alpha.expect_kind(alpha.value.is_number(), "number");
    c.lora_alpha = alpha.value.get<double>();
    c.use_rslora = root.bool_or("use_rslora", false);
    c.fan_in_fan_out = root.bool_or("fan_in_fan_out", false);
    if (root.present("bias")) {
      const std::string bias = root.at("bias").string();
      root.at("bias").expect(bias == "none", "is '" + bias + "': only bias \"none\" is supported");
    }
    if (root.present("use_dora")) {
      root.at("use_dora").expect(!root.at("use_dora").boolean(), "is true: DoRA is not supported");
    }
    for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
      if (root.present(pattern)) {
        root.at(pattern).expect(root.at(pattern).object().empty(),
                                "is not empty: per-module ranks or alphas are not supported");
      }
    }
    for (const char* field : {"layers_to_transform", "modules_to_save"}) {
      if (root.present(field)) root.at(field).fail("is set: not supported (null expected)");
    }
  } else if (c.peft_type == "PREFIX_TUNING") {
    c.num_virtual_tokens = root.at("num_virtual_tokens").integer(1, 1 << 20);
    c.token_dim = root.at("token_dim").integer(1, 1 << 24);
    c.num_layers = root.at("num_layers").integer(1, 1 << 16);
    c.num_attention_heads = root.at("num_attention_heads").integer(1, 1 << 16);
    if (root.bool_or("prefix_projection", false)) {
      root.at("prefix_projection").fail(
          "is true: a projected prefix is not supported (ShardTune exports the effective prefix "
          "with prefix_projection false)");
    }
  } else {
    root.at("peft_type").fail("is '" + c.peft_type + "' (LORA or PREFIX_TUNING expected)");
  }
  return c;
}

int64_t load_peft_lora(core::CausalLMImpl& model, const std::string& dir, double alpha,
                       bool rslora) {
  const PeftAdapterConfig c = read_peft_config(dir);
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  require(c.peft_type == "LORA", config_path + ": peft_type is " + c.peft_type +
                                     ", but the strategy is lora (LORA expected)");
  require(c.lora_alpha == alpha && c.use_rslora == rslora,
          config_path + ": lora_alpha " + std::to_string(c.lora_alpha) + " with use_rslora " +
              (c.use_rslora ? "true" : "false") + " differs from [strategy.lora] alpha " +
              std::to_string(alpha) + " with rslora " + (rslora ? "true" : "false") +
              " (the adapter's scale would change)");
  const st::Folder folder = st::Folder::open(dir, "adapter_model");
  auto params = model.named_parameters();
  std::set<std::string> used;
  int64_t loaded = 0;
  torch::NoGradGuard no_grad;
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    const bool a = ends_with(name, ".lora.A"), b = ends_with(name, ".lora.B");
    if (!a && !b) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const int64_t r = spec.global_shape[a ? 0 : 1];
    require(r == c.r, config_path + ": r = " + std::to_string(c.r) + ", but the model's LoRA rank "
                          "is " + std::to_string(r) + " ([strategy.lora] r)");
    const std::string key = "base_model.model." + module + (a ? ".lora_A.weight" : ".lora_B.weight");
    const torch::Tensor full = read_full(folder, key, spec.global_shape, "LoRA of " + module);
    torch::Tensor local = params[name];
    core::assign_from_full(local, full.to(local.scalar_type()), spec);
    used.insert(key);
    ++loaded;
  }
  require(loaded > 0, dir + ": the model has no LoRA parameters (is [strategy] name = lora?)");
  for (const std::string& name : folder.names()) {
    require(used.count(name) == 1,
            dir + ": adapter tensor '" + name + "' fits no LoRA parameter of the model (check "
                  "[strategy.lora] target_modules against the adapter's target_modules)");
  }
  return loaded;
}

void load_peft_prefix(core::CausalLMImpl& model, const std::string& dir) {
  const PeftAdapterConfig c = read_peft_config(dir);
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  require(c.peft_type == "PREFIX_TUNING", config_path + ": peft_type is " + c.peft_type +
                                              ", but the strategy is ptuning-v2 (PREFIX_TUNING "
                                              "expected)");
  const auto& mc = model.config();
  require(mc.family != "gpt2", dir + ": a GPT-2 prefix has no PEFT form (see docs/hf.md)");
  std::map<std::string, core::ShardSpec> specs;
  for (auto& [name, spec] : core::parameter_specs(model)) specs.emplace(name, spec);
  const auto it = specs.find("prefix_encoder.prefix");
  require(it != specs.end(),
          dir + ": the model has no direct P-tuning v2 prefix (strategy ptuning-v2 with "
                "prefix_projection = false takes a PEFT prefix)");
  const core::ShardSpec& spec = it->second;
  const int64_t L = spec.global_shape[0], kv = spec.global_shape[2], P = spec.global_shape[3],
                d = spec.global_shape[4];
  const auto expect = [&](const char* field, int64_t got, int64_t want, const char* from) {
    require(got == want, config_path + ": " + field + " is " + std::to_string(got) + ", but the "
                             "model has " + std::to_string(want) + " (" + from + ")");
  };
  expect("num_virtual_tokens", c.num_virtual_tokens, P, "[strategy.ptuning-v2] pre_seq_len");
  expect("num_layers", c.num_layers, L, "layers");
  expect("num_attention_heads", c.num_attention_heads, kv, "key/value heads");
  expect("token_dim", c.token_dim, kv * d, "key/value heads x head size");
  const st::Folder folder = st::Folder::open(dir, "adapter_model");
  for (const std::string& name : folder.names()) {
    require(name == "prompt_embeddings",
            dir + ": adapter tensor '" + name + "' is not a prefix-tuning tensor "
                  "(prompt_embeddings expected)");
  }
  const torch::Tensor emb =
      read_full(folder, "prompt_embeddings", {P, L * 2 * kv * d}, "the prefix");
  // [P, L * 2 * kv * d] -> [L, 2, kv, P, d]: export's permutation inverted.
  auto full = emb.to(torch::kDouble).view({P, L, 2, kv, d}).permute({1, 2, 3, 0, 4}).contiguous();
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto inv_freq =
      1.0 / torch::pow(mc.rope_theta, torch::arange(0, d, 2, opts) / static_cast<double>(d));
  auto angle = torch::cat({inv_freq, inv_freq}) * static_cast<double>(P);
  auto keys = full.select(1, 0);
  keys.copy_(core::apply_rotary(keys, angle.cos(), -angle.sin()));  // rotation by -P
  torch::NoGradGuard no_grad;
  torch::Tensor local = model.named_parameters()["prefix_encoder.prefix"];
  core::assign_from_full(local, full.to(local.scalar_type()), spec);
}

}  // namespace shardtune::io
