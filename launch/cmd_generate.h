// `shardtune generate`: sample text from a checkpoint ([checkpoint] init_from) for the [generate]
// prompts and the first held-out prompts, printed beside their references.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fields.h"

namespace shardtune::launch {

class Trainer;

// [generate]
struct GenerateConfig : base::FieldList<GenerateConfig> {
  std::vector<std::string> prompts;
  int64_t from_eval = 0;
  int64_t max_new_tokens = 80;
  double temperature = 0.0;
  int64_t top_k = 0;

  // UserError naming the [generate] field.
  void validate() const;

  // The field list (base/fields.h): every option once, with its doc line.
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("prompt", c.prompts, "prompt text");
    v("from_eval", c.from_eval, "also sample for the first N held-out prompts and show references");
    v("max_new_tokens", c.max_new_tokens, "tokens to generate");
    v("temperature", c.temperature, "0 = greedy");
    v("top_k", c.top_k, "sample among the k most likely tokens (0 = all)");
  }
};

// Every rank generates (under TP each forward is collective); ranks with `print` print.
void print_generations(Trainer& trainer, bool print);

}  // namespace shardtune::launch
