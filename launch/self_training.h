// Self-training for the sft strategy (strategies/sft.h): the starting model labels unlabelled
// prompts by greedy generation; pseudo-labels whose mean token log-probability under the same
// model passes a threshold join the training set.
//
// Collective contract: every rank of the run calls this with the same model replica state and the
// same prompts (all ranks generate the same greedy tokens; TP ranks run the model's collectives in
// lock-step, DP ranks duplicate the work and get identical results).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "launch/data.h"
#include "strategies/sft.h"

namespace shardtune::launch {

struct PseudoLabel {
  io::Record record;      // prompt + generated response
  double mean_logprob;    // mean over the response tokens and EOS (nats per token)
  bool accepted;          // mean_logprob >= threshold and a non-empty response
};

// Generates and scores a response for every prompt (in order).
std::vector<PseudoLabel> pseudo_label(core::CausalLMImpl& model, const io::Tokenizer& tokenizer,
                                      const std::vector<std::string>& prompts,
                                      const strategies::SelfTrainingOptions& options,
                                      int64_t seq_len);

// When `strategy` is sft with self_training_prompts set: reads the prompts, labels them with
// `model` and appends the accepted pseudo-labels (tokenized like the gold data) to sets.train.
// Returns the pseudo-labels (empty when self-training is off). Logs a summary on rank 0 via
// spdlog.
std::vector<PseudoLabel> add_self_training_data(const core::Strategy& strategy,
                                                core::CausalLMImpl& model,
                                                const io::Tokenizer& tokenizer,
                                                const Config& config, DataSets& sets);

}  // namespace shardtune::launch
