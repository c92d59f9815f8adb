#include "strategies/registry.h"

#include <functional>
#include <utility>

#include "base/errors.h"
#include "strategies/freeze.h"
#include "strategies/lora.h"
#include "strategies/ptuning_v2.h"
#include "strategies/sft.h"

namespace shardtune::strategies {

namespace {
using Factory = std::function<std::unique_ptr<core::Strategy>(core::StrategyOptions)>;

template <typename T>
Factory factory() {
  return [](core::StrategyOptions options) { return std::make_unique<T>(std::move(options)); };
}

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> entries = {
      {"sft", factory<SftStrategy>()},
      {"lora", factory<LoraStrategy>()},
      {"ptuning-v2", factory<PtuningV2Strategy>()},
      {"freeze", factory<FreezeStrategy>()},
  };
  return entries;
}
}  // namespace

std::vector<std::string> strategy_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.first);
  return names;
}

std::unique_ptr<core::Strategy> make_strategy(const std::string& name,
                                              core::StrategyOptions options) {
  for (const auto& e : registry()) {
    if (e.first == name) return e.second(std::move(options));
  }
  std::string known;
  for (const auto& n : strategy_names()) known += (known.empty() ? "" : ", ") + n;
  throw UserError("[strategy] name='" + name + "' is unknown (known: " + known + ")");
}

}  // namespace shardtune::strategies
