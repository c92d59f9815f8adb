// `shardtune score`: how well a checkpoint ([checkpoint] init_from) answers the held-out examples
// of a supervised task: held-out loss, exact-match label accuracy (core/label_accuracy.h: greedy
// decoding would reproduce the whole label) and the majority-class baseline (the commonest
// training label, always answered). The demo's classification metric (scripts/demo.sh,
// [data] wordnet_task=lexname).
#pragma once

namespace shardtune::launch {

struct RunContext;

// Every rank scores (collective); the root prints "key value" lines:
//   eval_loss, eval_ppl, label_examples, label_correct, label_accuracy, majority_label,
//   majority_accuracy, trainable_parameters and optimizer_state_bytes (this rank's: under TP or
//   ZeRO-1 a share of the whole)
void score(RunContext& context);

}  // namespace shardtune::launch
