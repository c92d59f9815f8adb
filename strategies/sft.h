// Full-parameter supervised fine-tuning: every parameter trains. Which tokens carry the loss
// (responses only, or prompts too) is a data option ([data] train_on_prompt); multi-turn records
// mask every non-assistant turn (io/dataset.h).
//
// Self-training (Du et al. 2021, "Self-training Improves Pre-training for NLU"): before training,
// the starting model labels a set of unlabelled prompts by greedy generation, keeps the
// pseudo-labels whose mean token log-probability (under the same model) is at least a threshold,
// and trains on them together with the gold data (launch/self_training.h). Options
// ([strategy.sft]):
//   self_training_prompts =          JSONL of prompts (any form of io::read_jsonl; its prompt, or
//                                    its text for {"text"} lines); empty = off
//   self_training_threshold = -1.0   keep pseudo-labels with mean log-prob >= this (nats/token)
//   self_training_max_new_tokens = 64
//   self_training_max_prompts = 0    label at most this many prompts (0 = all)
#pragma once

#include <string>

#include "core/strategy.h"

namespace shardtune::strategies {

struct SelfTrainingOptions {
  std::string prompts_file;
  double threshold = -1.0;
  int64_t max_new_tokens = 64;
  int64_t max_prompts = 0;
  bool enabled() const { return !prompts_file.empty(); }
};

class SftStrategy final : public core::Strategy {
 public:
  explicit SftStrategy(core::StrategyOptions options);
  std::string name() const override { return "sft"; }
  void apply(core::CausalLMImpl& model) override;
  const SelfTrainingOptions& self_training() const { return self_training_; }

 private:
  SelfTrainingOptions self_training_;
};

}  // namespace shardtune::strategies
