#include "launch/cmd_score.h"

#include <cstdio>
#include <string>

#include "core/label_accuracy.h"
#include "core/strategy.h"
#include "launch/commands.h"

namespace shardtune::launch {

void score(RunContext& c) {
  Trainer& t = c.trainer;
  const auto eval = t.evaluate();
  const auto labels = core::score_labels(t.model(), t.data().eval, c.grid.dp(),
                                         t.config().train.micro_batch, t.tokenizer().pad_id());
  const auto majority = core::majority_baseline(t.data().train, t.data().eval);
  const auto counts = core::count_parameters(t.model());
  if (!c.root) return;
  // The label without its EOS, as text (EOS is a special token the tokenizer does not print).
  auto label_ids = majority.label;
  if (!label_ids.empty() && label_ids.back() == t.tokenizer().eos_id()) label_ids.pop_back();
  std::string label = t.tokenizer().decode(label_ids);
  for (char& ch : label) {
    if (ch == '\n' || ch == ' ') ch = '_';  // one token per line for `awk '{print $2}'`
  }
  std::printf("eval_loss %.6f\neval_ppl %.4f\n", eval.loss, eval.perplexity);
  std::printf("label_examples %lld\nlabel_correct %lld\nlabel_accuracy %.4f\n",
              static_cast<long long>(labels.examples), static_cast<long long>(labels.correct),
              labels.accuracy());
  std::printf("majority_label %s\nmajority_accuracy %.4f\n", label.c_str(), majority.accuracy());
  std::printf("trainable_parameters %lld\noptimizer_state_bytes %lld\n",
              static_cast<long long>(counts.trainable),
              static_cast<long long>(t.optimizer_state_bytes()));
}

}  // namespace shardtune::launch
