// PEFT adapters back into ShardTune (io/peft_import.h): LoRA exports re-import bit for bit (Llama
// q/v, rsLoRA on every Qwen2 linear, GPT-2 Conv1D), prefix exports re-import to float rounding
// (the keys' rotation by the prefix length is undone), a projected prefix re-imports into a direct
// one with the same logits, and every malformed or mismatched adapter is refused with its error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/shard.h"
#include "hf_test_helpers.h"
#include "io/hf_weights.h"
#include "io/peft_export.h"
#include "io/peft_import.h"
#include "base/errors.h"
#include "strategies/lora.h"
#include "strategies/ptuning_v2.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

// Every LoRA A and B gets a value of its own (B starts at zero), the same at any TP size.
void randomise_lora(core::CausalLMImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters();
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (name.find(".lora.") == std::string::npos) continue;
    auto p = params[name];
    core::assign_from_full(p, core::named_normal(spec.global_shape, 0.3, seed, name), spec);
  }
}

std::map<std::string, torch::Tensor> added(core::CausalLMImpl& model, const std::string& part) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : model.named_parameters()) {
    if (p.key().find(part) != std::string::npos) out[p.key()] = p.value().detach().clone();
  }
  return out;
}

void lora_round_trip(const std::string& case_name, const core::StrategyOptions& options,
                     int64_t r, double alpha, bool rslora) {
  hf_cases();
  const auto src = hf_case_dir(case_name);
  auto model = io::load_hf_model(src);
  strategies::LoraStrategy lora(options);
  lora.apply(*model);
  randomise_lora(*model, 5);
  const auto out = hf_temp_dir("peft_import_" + case_name);
  io::export_peft_lora(*model, {lora.adapted(), r, alpha, rslora, 0.0, src}, out, true);

  auto again = io::load_hf_model(src);
  strategies::LoraStrategy fresh(options);
  fresh.apply(*again);  // A random, B zero: nothing like the exported values
  EXPECT_EQ(io::load_peft_lora(*again, out, alpha, rslora),
            static_cast<int64_t>(2 * lora.adapted().size()));
  const auto want = added(*model, ".lora."), got = added(*again, ".lora.");
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(got.at(name), t)) << name;
  const auto e = read_expected(src);
  EXPECT_TRUE(torch::equal(logits_of(*again, e), logits_of(*model, e)));
}

}  // namespace

TEST(PeftImport, LoraOnLlamaRoundTripsBitForBit) {
  lora_round_trip("llama_mha_untied", {{"r", "4"}, {"alpha", "8"}}, 4, 8.0, false);
}

TEST(PeftImport, RsLoraOnAllQwen2LinearsRoundTripsBitForBit) {
  lora_round_trip("qwen2_gqa_bias_f16",
                  {{"r", "3"}, {"alpha", "5"}, {"rslora", "true"}, {"target_modules", "all-linear"}},
                  3, 5.0, true);
}

TEST(PeftImport, LoraOnGpt2Conv1DRoundTripsBitForBit) {
  lora_round_trip("gpt2_hub", {{"r", "2"}, {"alpha", "3"}, {"target_modules", "c_attn,attn.c_proj"}},
                  2, 3.0, false);
}

TEST(PeftImport, PrefixRoundTripsToFloatRounding) {
  hf_cases();
  for (const std::string case_name : {"mistral_mqa", "llama_gqa_tied_sharded_bf16"}) {
    const auto src = hf_case_dir(case_name);
    auto model = io::load_hf_model(src);
    strategies::PtuningV2Strategy ptuning({{"pre_seq_len", "3"}, {"init_std", "1.0"}});
    ptuning.apply(*model);
    const auto out = hf_temp_dir("peft_import_prefix_" + case_name);
    io::export_peft_prefix(*model, src, out, true);
    auto again = io::load_hf_model(src);
    strategies::PtuningV2Strategy fresh(core::StrategyOptions{{"pre_seq_len", "3"}});
    fresh.apply(*again);
    io::load_peft_prefix(*again, out);
    const auto want = added(*model, "prefix_encoder.prefix").begin()->second;
    const auto got = added(*again, "prefix_encoder.prefix").begin()->second;
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * want.abs().max().item<double>())
        << case_name;
    const auto e = read_expected(src);
    const auto err = logit_error(logits_of(*again, e), logits_of(*model, e), e.attention_mask);
    EXPECT_TRUE(err.ok()) << case_name << ": " << err.error << " of " << err.scale;
  }
}

TEST(PeftImport, ProjectedPrefixImportsIntoADirectOne) {
  hf_cases();
  const auto src = hf_case_dir("llama_gqa_tied_sharded_bf16");
  auto model = io::load_hf_model(src);
  strategies::PtuningV2Strategy projected({{"pre_seq_len", "4"},
                                           {"prefix_projection", "true"},
                                           {"prefix_hidden_size", "16"},
                                           {"init_std", "2.0"}});
  projected.apply(*model);
  const auto out = hf_temp_dir("peft_import_projected");
  io::export_peft_prefix(*model, src, out, true);
  auto direct = io::load_hf_model(src);
  strategies::PtuningV2Strategy plain(core::StrategyOptions{{"pre_seq_len", "4"}});
  plain.apply(*direct);
  io::load_peft_prefix(*direct, out);
  const auto e = read_expected(src);
  const auto err = logit_error(logits_of(*direct, e), logits_of(*model, e), e.attention_mask);
  EXPECT_TRUE(err.ok()) << err.error << " of " << err.scale;
}

TEST(PeftImport, MismatchesAndMalformedAdaptersAreRefused) {
  hf_cases();
  const auto src = hf_case_dir("llama_mha_untied");
  auto model = io::load_hf_model(src);
  strategies::LoraStrategy lora({{"r", "4"}, {"alpha", "8"}});
  lora.apply(*model);
  const auto dir = hf_temp_dir("peft_import_bad");
  io::export_peft_lora(*model, {lora.adapted(), 4, 8.0, false, 0.0, src}, dir, true);
  const std::string config = dir + "/adapter_config.json";
  const auto original = nlohmann::json::parse(std::ifstream(config));
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = original;
    edit(j);
    std::ofstream(config, std::ios::trunc) << j.dump();
  };
  auto fresh = [&](const core::StrategyOptions& options) {
    auto m = io::load_hf_model(src);
    strategies::LoraStrategy s(options);
    s.apply(*m);
    return m;
  };
  auto m = fresh({{"r", "4"}, {"alpha", "8"}});
  EXPECT_EQ(user_error([&] { io::load_peft_lora(*m, dir, 16.0, false); }),
            config + ": lora_alpha 8.000000 with use_rslora false differs from [strategy.lora] "
                     "alpha 16.000000 with rslora false (the adapter's scale would change)");
  auto r8 = fresh({{"r", "8"}, {"alpha", "8"}});
  EXPECT_EQ(user_error([&] { io::load_peft_lora(*r8, dir, 8.0, false); }),
            config + ": r = 4, but the model's LoRA rank is 8 ([strategy.lora] r)");
  auto all = fresh({{"r", "4"}, {"alpha", "8"}, {"target_modules", "q_proj,k_proj,v_proj"}});
  EXPECT_EQ(user_error([&] { io::load_peft_lora(*all, dir, 8.0, false); }),
            dir + ": adapter tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight' "
                  "is missing (LoRA of model.layers.0.self_attn.k_proj)");
  auto q_only = fresh({{"r", "4"}, {"alpha", "8"}, {"target_modules", "q_proj"}});
  EXPECT_EQ(user_error([&] { io::load_peft_lora(*q_only, dir, 8.0, false); }),
            dir + ": adapter tensor 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight' "
                  "fits no LoRA parameter of the model (check [strategy.lora] target_modules "
                  "against the adapter's target_modules)");
  auto ptuning = io::load_hf_model(src);
  strategies::PtuningV2Strategy p(core::StrategyOptions{{"pre_seq_len", "2"}});
  p.apply(*ptuning);
  EXPECT_EQ(user_error([&] { io::load_peft_prefix(*ptuning, dir); }),
            config + ": peft_type is LORA, but the strategy is ptuning-v2 (PREFIX_TUNING "
                     "expected)");

  with([](nlohmann::json& j) { j["use_dora"] = true; });
  EXPECT_EQ(user_error([&] { io::load_peft_lora(*m, dir, 8.0, false); }),
            config + ": use_dora is true: DoRA is not supported");
  with([](nlohmann::json& j) { j["rank_pattern"] = {{"q_proj", 8}}; });
  EXPECT_EQ(user_error([&] { io::read_peft_config(dir); }),
            config + ": rank_pattern is not empty: per-module ranks or alphas are not supported");
  with([](nlohmann::json& j) { j["r"] = "4"; });
  EXPECT_EQ(user_error([&] { io::read_peft_config(dir); }).rfind(config + ": r ", 0), 0u);
  with([](nlohmann::json& j) { j["peft_type"] = "IA3"; });
  EXPECT_EQ(user_error([&] { io::read_peft_config(dir); }),
            config + ": peft_type is 'IA3' (LORA or PREFIX_TUNING expected)");
  with([](nlohmann::json& j) { j["task_type"] = "SEQ_CLS"; });
  EXPECT_EQ(user_error([&] { io::read_peft_config(dir); }),
            config + ": task_type is 'SEQ_CLS' (CAUSAL_LM expected)");
  std::ofstream(config, std::ios::trunc) << "{\"peft_type\": \"LORA\", \"peft_type\": \"LORA\"}";
  EXPECT_EQ(user_error([&] { io::read_peft_config(dir); }),
            config + ": the key \"peft_type\" appears twice in one object");
  fs::remove(config);
  EXPECT_FALSE(io::is_peft_adapter(dir));
}
