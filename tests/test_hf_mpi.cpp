// Hugging Face models at TP = world size (mpiexec -np 2): each rank reads only its slice of every
// tensor, and the sharded model matches the independent reference (tests/reference/hf_reference.py)
// as the one-rank model does: every rank's local tensors are exactly its slices of the reference's
// parameters (padding rows zero), gathered logits and the vocab-parallel loss within 1e-5 of the
// float64 reference. Export gathers over TP, one rank writes, and export then import at this layout
// gives bitwise-identical logits; the reference recomputes the exported HF folder and applies the
// PEFT exports (LoRA with fused c_attn segments, prefixes with split and replicated kv heads).
#include <gtest/gtest.h>

#include "core/loss.h"
#include "core/model.h"
#include "core/shard.h"
#include "hf_test_helpers.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "io/peft_export.h"
#include "mpi_test_main.h"
#include "base/errors.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"
#include "strategies/lora.h"
#include "strategies/ptuning_v2.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

const std::vector<std::string> kCases = {
    "gpt2_hub",         "gpt2_saved_sharded", "llama_gqa_tied_sharded_bf16",
    "llama_mha_untied", "mistral_mqa",        "qwen2_gqa_bias_f16"};

struct WorldTp {
  parallel::RankGrid grid =
      parallel::RankGrid::create(mpi_runtime().world(), mpi_runtime().world_size());
  parallel::TpGroup tp{grid.tp_ptr()};
  bool writer() const { return grid.rank() == 0; }
};

// Generated once by rank 0 when the ctest fixture has not, then shared.
void ensure_cases(WorldTp& w) {
  if (w.writer()) hf_cases();
  w.grid.world().barrier();
}

torch::Tensor full_logits(core::CausalLMImpl& model, const HfExpected& e) {
  model.eval();
  torch::NoGradGuard no_grad;
  return model.gather_logits(model.forward(e.input_ids, e.attention_mask));
}

// The same directory name on every rank (the test name), made by rank 0.
std::string shared_dir(WorldTp& w, const std::string& name) {
  const auto dir = fs::path(SHARDTUNE_BINARY_DIR) / "test-tmp" / "hf_mpi" / name;
  if (w.writer()) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  w.grid.world().barrier();
  return dir.string();
}

}  // namespace

class HfReferenceTp : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReferenceTp, EachRankLoadsItsSliceAndTheModelMatchesTheReference) {
  WorldTp w;
  ensure_cases(w);
  const auto dir = hf_case_dir(GetParam());
  io::HfLoadReport report;
  auto model = io::load_hf_model(dir, w.tp, &report);
  const auto e = read_expected(dir);

  // Local tensors are exactly this rank's slices; padding rows past the vocabulary are zero.
  auto params = st::File::open(dir + "/params.safetensors");
  auto folder = st::Folder::open(dir);
  auto mine = model->named_parameters();
  uint64_t slice_bytes = 0, full_bytes = 0;
  for (const auto& [name, spec] : core::parameter_specs(*model)) {
    const auto want = read_tensor(*params, name);
    auto local = mine[name].detach();
    const auto* stored = folder.find(name) ? folder.find(name) : folder.find(name.substr(12));
    ASSERT_NE(stored, nullptr) << name;
    const uint64_t element = static_cast<uint64_t>(st::dtype_bits(stored->dtype) / 8);
    slice_bytes += static_cast<uint64_t>(core::real_part(local, spec).numel()) * element;
    full_bytes += static_cast<uint64_t>(want.numel()) * element;
    EXPECT_TRUE(torch::equal(core::real_part(local, spec), core::slice_of(want, spec))) << name;
    if (spec.sharded() && spec.length < spec.chunk) {
      EXPECT_EQ(
          local.narrow(spec.dim, spec.length, spec.chunk - spec.length).abs().max().item<float>(),
          0.0f)
          << name << " padding";
    }
  }
  // This rank read exactly its slices' bytes, less than the whole model.
  EXPECT_EQ(report.bytes_read, slice_bytes) << GetParam();
  EXPECT_LT(report.bytes_read, full_bytes) << GetParam();

  auto local_logits = [&] {
    model->eval();
    torch::NoGradGuard no_grad;
    return model->forward(e.input_ids, e.attention_mask);
  }();
  const auto err = logit_error(model->gather_logits(local_logits), e.logits, e.attention_mask);
  EXPECT_TRUE(err.ok()) << GetParam() << ": max logit error " << err.error << " (scale "
                        << err.scale << ")";
  auto loss = core::causal_lm_loss(local_logits, e.labels, model->vocab_spec(), w.tp);
  const double mean = loss.sum.item<double>() / static_cast<double>(loss.tokens);
  EXPECT_NEAR(mean, e.loss, kHfRel * std::max(1.0, std::abs(e.loss))) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Cases, HfReferenceTp, ::testing::ValuesIn(kCases));

class HfExportTp : public ::testing::TestWithParam<std::string> {};

TEST_P(HfExportTp, GatheredExportReimportsIdenticallyAndTheReferenceAgrees) {
  WorldTp w;
  ensure_cases(w);
  const auto src = hf_case_dir(GetParam());
  auto model = io::load_hf_model(src, w.tp);
  const auto e = read_expected(src);
  const auto before = full_logits(*model, e);
  const auto out = shared_dir(w, "export_" + GetParam());
  io::HfExportOptions options;
  options.source_dir = src;
  options.max_shard_bytes = 40'000;
  const auto files = io::export_hf(*model, out, w.writer(), options);
  EXPECT_EQ(files.empty(), !w.writer());
  w.grid.world().barrier();

  auto again = io::load_hf_model(out, w.tp);
  EXPECT_TRUE(torch::equal(full_logits(*again, e), before))
      << "export then import at the same layout";
  if (w.writer()) {
    const auto logits = write_logits(out + "/shardtune_logits.safetensors", before);
    expect_reference_check("check-hf " + out + " --batch " + src +
                           "/expected.safetensors --logits " + logits);
    // A one-rank import of the gathered export: the same model up to float summation order.
    auto one = io::load_hf_model(out);
    const auto err = logit_error(full_logits(*one, e), before, e.attention_mask);
    EXPECT_TRUE(err.ok()) << err.error;
  }
  w.grid.world().barrier();
}

INSTANTIATE_TEST_SUITE_P(Cases, HfExportTp, ::testing::ValuesIn(kCases));

namespace {
void randomise_lora_b(core::CausalLMImpl& model) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters();
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (name.find(".lora.B") == std::string::npos) continue;
    auto p = params[name];
    core::assign_from_full(p, core::named_normal(spec.global_shape, 0.3, 99, name), spec);
  }
}

void expect_peft_matches(WorldTp& w, core::CausalLMImpl& model, const std::string& case_name,
                         const std::string& adapter_dir) {
  const auto src = hf_case_dir(case_name);
  const auto e = read_expected(src);
  const auto logits = full_logits(model, e);  // collective
  if (w.writer()) {
    write_logits(adapter_dir + "/shardtune_logits.safetensors", logits);
    expect_reference_check("check-peft --base " + src + " --adapter " + adapter_dir + " --batch " +
                           src + "/expected.safetensors --logits " + adapter_dir +
                           "/shardtune_logits.safetensors");
  }
  w.grid.world().barrier();
}
}  // namespace

TEST(PeftExportTp, LoraOnFusedGpt2AttentionGathersItsSegments) {
  WorldTp w;
  ensure_cases(w);
  auto model = io::load_hf_model(hf_case_dir("gpt2_saved_sharded"), w.tp);
  strategies::LoraStrategy lora(
      {{"r", "4"}, {"alpha", "6"}, {"target_modules", "c_attn,c_fc,c_proj"}});
  lora.apply(*model);
  randomise_lora_b(*model);
  const auto out = shared_dir(w, "peft_lora_gpt2");
  io::export_peft_lora(*model, {lora.adapted(), 4, 6.0, false, 0.0, "gpt2"}, out, w.writer());
  expect_peft_matches(w, *model, "gpt2_saved_sharded", out);
}

TEST(PeftExportTp, LoraOnQwen2) {
  WorldTp w;
  ensure_cases(w);
  auto model = io::load_hf_model(hf_case_dir("qwen2_gqa_bias_f16"), w.tp);
  strategies::LoraStrategy lora({{"r", "2"}, {"target_modules", "all-linear"}, {"rslora", "true"}});
  lora.apply(*model);
  randomise_lora_b(*model);
  const auto out = shared_dir(w, "peft_lora_qwen2");
  io::export_peft_lora(*model, {lora.adapted(), 2, 16.0, true, 0.0, "qwen2"}, out, w.writer());
  expect_peft_matches(w, *model, "qwen2_gqa_bias_f16", out);
}

TEST(PeftExportTp, PrefixWithSplitKvHeads) {
  WorldTp w;
  ensure_cases(w);
  // 2 kv heads at TP=2: each rank holds one kv head of the prefix.
  auto model = io::load_hf_model(hf_case_dir("llama_gqa_tied_sharded_bf16"), w.tp);
  strategies::PtuningV2Strategy ptuning({{"pre_seq_len", "4"}, {"init_std", "1.0"}});
  ptuning.apply(*model);
  const auto out = shared_dir(w, "peft_prefix_split");
  io::export_peft_prefix(*model, "x", out, w.writer());
  expect_peft_matches(w, *model, "llama_gqa_tied_sharded_bf16", out);
}

TEST(PeftExportTp, PrefixWithReplicatedKvHead) {
  WorldTp w;
  ensure_cases(w);
  // 1 kv head at TP=2: replicated on both ranks.
  auto model = io::load_hf_model(hf_case_dir("mistral_mqa"), w.tp);
  strategies::PtuningV2Strategy ptuning({{"pre_seq_len", "3"},
                                         {"prefix_projection", "true"},
                                         {"prefix_hidden_size", "8"},
                                         {"init_std", "2.0"}});
  ptuning.apply(*model);
  const auto out = shared_dir(w, "peft_prefix_replicated");
  io::export_peft_prefix(*model, "x", out, w.writer());
  expect_peft_matches(w, *model, "mistral_mqa", out);
}

TEST(HfErrorsTp, EveryRankReportsTheSameErrorWithoutHanging) {
  WorldTp w;
  ensure_cases(w);
  const auto dir = shared_dir(w, "bad_folder");
  if (w.writer()) {
    fs::copy_file(hf_case_dir("mistral_mqa") + "/config.json", dir + "/config.json");
    std::ofstream(dir + "/model.safetensors") << "trunc";
  }
  w.grid.world().barrier();
  try {
    io::load_hf_model(dir, w.tp);
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), dir +
                                         "/model.safetensors: file is 5 bytes, too short for the "
                                         "8-byte header length (truncated?)");
  }
  w.grid.world().barrier();
}
