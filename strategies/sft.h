// Full-parameter supervised fine-tuning: every parameter trains. Which tokens carry the loss
// (responses only, or prompts too) is a data option ([data] train_on_prompt); multi-turn records
// mask every non-assistant turn (io/dataset.h).
//
// Self-training (Du et al. 2021, "Self-training Improves Pre-training for NLU"), at data time
// (prepare_data): the starting model labels a set of unlabelled prompts by greedy generation,
// keeps the pseudo-labels whose mean token log-probability (under the same model) is at least a
// threshold, and trains on them together with the gold data. Options ([strategy.sft]):
//   self_training_prompts =          JSONL of prompts (any form the data pipeline reads: its
//                                    prompt, or its text for {"text"} lines); empty = off
//   self_training_threshold = -1.0   keep pseudo-labels with mean log-prob >= this (nats/token)
//   self_training_max_new_tokens = 64
//   self_training_max_prompts = 0    label at most this many prompts (0 = all)
//
// Collective contract of self-training: every rank calls it with the same model replica state and
// the same prompts (all ranks generate the same greedy tokens; TP ranks run the model's
// collectives in lock-step, DP ranks duplicate the work and get identical results).
#pragma once

#include <string>
#include <vector>

#include "core/strategy.h"

namespace shardtune::strategies {

struct SelfTrainingOptions {
  std::string prompts_file;
  double threshold = -1.0;
  int64_t max_new_tokens = 64;
  int64_t max_prompts = 0;
  bool enabled() const { return !prompts_file.empty(); }
};

struct PseudoLabel {
  std::string prompt;
  std::string response;  // generated
  double mean_logprob;   // mean over the response tokens and EOS (nats per token)
  bool accepted;         // mean_logprob >= threshold and a non-empty response
};

// Generates and scores a response for every prompt (in order): scored exactly as the student
// will train on it, the tokenized example's labelled tokens (response and EOS) under the model that
// generated them.
std::vector<PseudoLabel> pseudo_label(core::CausalLMImpl& model, const core::TrainingData& data,
                                      const std::vector<std::string>& prompts,
                                      const SelfTrainingOptions& options);

class SftStrategy final : public core::Strategy {
 public:
  explicit SftStrategy(core::StrategyOptions options);
  std::string name() const override { return "sft"; }
  void apply(core::CausalLMImpl& model) override;
  // Self-training, when self_training_prompts is set: the accepted pseudo-labels join the
  // training examples (tokenized like the gold data); logs a summary on rank 0.
  void prepare_data(core::CausalLMImpl& model, core::TrainingData& data) override;
  const SelfTrainingOptions& self_training() const { return self_training_; }
  // The pseudo-labels of the last prepare_data (empty when self-training is off).
  const std::vector<PseudoLabel>& pseudo_labels() const { return pseudo_labels_; }

 private:
  SelfTrainingOptions self_training_;
  std::vector<PseudoLabel> pseudo_labels_;
};

}  // namespace shardtune::strategies
