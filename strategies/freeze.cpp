#include "strategies/freeze.h"

#include <algorithm>
#include <cstdlib>

#include "base/errors.h"
#include "base/strings.h"
#include "core/model.h"

namespace shardtune::strategies {

namespace {
struct FamilyNames {
  std::string layers;                       // prefix of block i: layers + i + "."
  std::vector<std::string> block_modules;   // valid trainable_modules (besides "all")
  std::vector<std::pair<std::string, std::string>> extra;  // option name -> parameter prefix
};

FamilyNames family_names(const std::string& family) {
  if (family == "gpt2") {
    return {"transformer.h.",
            {"mlp", "attn"},
            {{"wte", "transformer.wte."}, {"wpe", "transformer.wpe."}, {"ln_f", "transformer.ln_f."}}};
  }
  return {"model.layers.",
          {"mlp", "self_attn"},
          {{"embed_tokens", "model.embed_tokens."}, {"lm_head", "lm_head."}, {"norm", "model.norm."}}};
}

}  // namespace

FreezeStrategy::FreezeStrategy(core::StrategyOptions options) {
  layers_ = core::take_int(options, "freeze", "trainable_layers", 2);
  modules_ = base::split_list(core::take_option(options, "trainable_modules", "all"));
  extra_ = base::split_list(core::take_option(options, "extra_modules", ""));
  core::reject_unknown_options(options, "freeze");
  require(layers_ != 0 || !extra_.empty(),
          "[strategy.freeze] trainable_layers=0 and no extra_modules: nothing would train");
  require(!modules_.empty(), "[strategy.freeze] trainable_modules is empty");
}

bool FreezeStrategy::trains(const std::string& name, const std::string& family,
                            int64_t num_layers) const {
  const auto names = family_names(family);
  if (base::starts_with(name, names.layers)) {
    const auto rest = name.substr(names.layers.size());
    const int64_t idx = std::atoll(rest.c_str());
    const bool layer_on = layers_ > 0 ? idx >= num_layers - layers_ : idx < -layers_;
    if (!layer_on) return false;
    const auto module = rest.substr(rest.find('.') + 1);
    for (const auto& m : modules_) {
      if (m == "all" || base::starts_with(module, m + ".")) return true;
    }
    return false;
  }
  for (const auto& e : extra_) {
    for (const auto& [option, prefix] : names.extra) {
      if (e == option && base::starts_with(name, prefix)) return true;
    }
  }
  return false;
}

void FreezeStrategy::apply(core::CausalLMImpl& model) {
  const auto& c = model.config();
  const auto names = family_names(c.family);
  const std::string L = std::to_string(c.num_layers);
  require(std::abs(layers_) <= c.num_layers,
          "[strategy.freeze] trainable_layers=" + std::to_string(layers_) + " exceeds the " + L +
              " blocks of [model] num_layers");
  for (const auto& m : modules_) {
    require(m == "all" || std::find(names.block_modules.begin(), names.block_modules.end(), m) !=
                              names.block_modules.end(),
            "[strategy.freeze] trainable_modules: '" + m + "' is not a block module of a " +
                c.family + " model (known: " + base::join(names.block_modules) + ", all)");
  }
  auto params = model.named_parameters();
  for (const auto& e : extra_) {
    bool known = false;
    for (const auto& [option, prefix] : names.extra) known = known || option == e;
    std::vector<std::string> options;
    for (const auto& [option, prefix] : names.extra) options.push_back(option);
    require(known, "[strategy.freeze] extra_modules: '" + e + "' is not a module of a " +
                       c.family + " model (known: " + base::join(options) + ")");
    if (e == "lm_head") {
      require(params.find("lm_head.weight") != nullptr,
              "[strategy.freeze] extra_modules: lm_head is tied to embed_tokens in this model "
              "([model] tie_word_embeddings); name embed_tokens instead");
    }
  }
  for (auto& item : params) {
    item.value().set_requires_grad(trains(item.key(), c.family, c.num_layers));
  }
}

}  // namespace shardtune::strategies
