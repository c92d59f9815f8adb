#include "core/strategy.h"

#include <sstream>

#include "core/model.h"
#include "parallel/errors.h"

namespace shardtune::core {

std::vector<NamedParameter> Strategy::trainable_parameters(CausalLMImpl& model) const {
  std::vector<NamedParameter> out;
  for (auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) out.push_back({item.key(), item.value()});
  }
  return out;
}

std::string Strategy::describe(CausalLMImpl& model) const {
  int64_t total = 0, trainable = 0;
  for (auto& item : model.named_parameters()) {
    total += item.value().numel();
    if (item.value().requires_grad()) trainable += item.value().numel();
  }
  std::ostringstream s;
  s << "strategy " << name() << ": trainable " << trainable << " / " << total << " parameters ("
    << (total ? 100.0 * static_cast<double>(trainable) / static_cast<double>(total) : 0.0)
    << "%), AdamW state " << trainable * 8 << " bytes";
  return s.str();
}

std::string take_option(StrategyOptions& options, const std::string& key,
                        const std::string& fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  std::string value = it->second;
  options.erase(it);
  return value;
}

void reject_unknown_options(const StrategyOptions& options, const std::string& strategy) {
  if (options.empty()) return;
  throw UserError("[strategy." + strategy + "] unknown option '" + options.begin()->first + "'");
}

}  // namespace shardtune::core
