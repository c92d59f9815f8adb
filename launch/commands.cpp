#include "launch/commands.h"

#include <cstdio>

#include "base/env.h"
#include "launch/cmd_export.h"
#include "launch/cmd_generate.h"
#include "launch/cmd_plan.h"
#include "launch/cmd_preprocess.h"
#include "launch/cmd_score.h"
#include "launch/cmd_tokenize.h"
#include "launch/signals.h"

namespace shardtune::launch {

namespace {

void run_train(RunContext& c) { c.trainer.train(); }

void run_eval(RunContext& c) {
  const auto r = c.trainer.evaluate();
  if (c.root) {
    std::printf("eval_loss %.6f\neval_ppl %.4f\neval_tokens %lld\n", r.loss, r.perplexity,
                static_cast<long long>(r.tokens));
  }
}

void run_generate(RunContext& c) { print_generations(c.trainer, c.root); }

void run_export(RunContext& c) { run_export_command(c.trainer, c.grid); }

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"train", "  train     fine-tune or pretrain a model (see --help for every option)\n",
       nullptr, run_train, false, true, true},
      {"eval",
       "  eval      held-out loss and perplexity of a checkpoint ([checkpoint] init_from)\n",
       nullptr, run_eval, true, false},
      {"score",
       "  score     held-out loss, exact-match label accuracy and the majority-class baseline of\n"
       "            a checkpoint ([checkpoint] init_from) on a supervised task\n",
       nullptr, score, true, false},
      {"generate",
       "  generate  sample text from a checkpoint ([generate] prompt=..., from_eval=N)\n",
       nullptr, run_generate, true, false},
      {"export",
       "  export    a run's model ([checkpoint] init_from=the run's checkpoint) as --format hdf5\n"
       "            (strategy merged, default), hf (Hugging Face folder) or peft (lora/ptuning-v2\n"
       "            adapter), into --out DIR (default <[train] out_dir>/export), --dtype fp32|bf16|fp16\n",
       nullptr, run_export, true, false},
      {"ckpt", "  ckpt inspect FILE|DIR   show a checkpoint's step, layout, strategy and tensors\n",
       cmd_ckpt, nullptr, false, false},
      {"tokenize", "  tokenize  --tokenizer PATH --text STRING | --decode \"ID ...\" | --info\n",
       run_tokenize, nullptr, false, false},
      {"plan",
       "  plan      per-rank memory and step time of every TP x DP layout of --nodes N\n"
       "            --ranks-per-node R for a --config FILE, and the fastest that fits\n",
       run_plan, nullptr, false, false},
      {"preprocess",
       "  preprocess\n"
       "            tokenize [data] train_file and eval_file on every rank into the token\n"
       "            datasets of [data] tokenized_dir (then train with [data] source=tokenized)\n",
       nullptr, nullptr, false, false, false, run_preprocess},
  };
  return table;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::string usage() {
  std::string text =
      "usage: shardtune <command> [--config FILE.ini] [--section.key=value ...]\ncommands:\n";
  for (const auto& c : commands()) text += c.usage;
  text += "Launch with mpirun -np N (or srun) for several ranks.\nenvironment:\n";
  for (const auto& var : base::environment_variables()) {
    if (!var.test_only && !var.set_by_launcher) text += std::string("  ") + var.name + "  " + var.meaning + "\n";
  }
  return text;
}

}  // namespace shardtune::launch
