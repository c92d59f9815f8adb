#include "strategies/registry.h"

#include <utility>

#include "base/errors.h"
#include "strategies/freeze.h"
#include "strategies/lora.h"
#include "strategies/ptuning_v2.h"
#include "strategies/sft.h"

namespace shardtune::strategies {

namespace {

template <typename T>
StrategyFactory factory() {
  return [](core::StrategyOptions options) { return std::make_unique<T>(std::move(options)); };
}

// Function-local so that registration from a static initializer of another translation unit
// still finds the built-ins in place.
std::vector<std::pair<std::string, StrategyFactory>>& registry() {
  static std::vector<std::pair<std::string, StrategyFactory>> entries = {
      {"sft", factory<SftStrategy>()},
      {"lora", factory<LoraStrategy>()},
      {"ptuning-v2", factory<PtuningV2Strategy>()},
      {"freeze", factory<FreezeStrategy>()},
  };
  return entries;
}

std::string known_names() {
  std::string known;
  for (const auto& n : strategy_names()) known += (known.empty() ? "" : ", ") + n;
  return known;
}
}  // namespace

void register_strategy(const std::string& name, StrategyFactory factory) {
  require(!name.empty(), "register_strategy: the strategy name is empty");
  // The name becomes an INI section suffix and a --strategy.<name>.key option: a dot or a space
  // would make its options unreachable.
  require(name.find_first_of(". \t\n=[]") == std::string::npos,
          "register_strategy: name '" + name + "' contains '.', '=', brackets or whitespace");
  require(static_cast<bool>(factory), "register_strategy: '" + name + "' has no factory");
  for (const auto& e : registry()) {
    require(e.first != name, "register_strategy: '" + name + "' is already registered (known: " +
                                 known_names() + ")");
  }
  registry().emplace_back(name, std::move(factory));
}

std::vector<std::string> strategy_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.first);
  return names;
}

std::unique_ptr<core::Strategy> make_strategy(const std::string& name,
                                              core::StrategyOptions options) {
  for (const auto& e : registry()) {
    if (e.first == name) {
      auto strategy = e.second(std::move(options));
      require(strategy != nullptr, "[strategy] name='" + name + "': its factory returned nothing");
      return strategy;
    }
  }
  throw UserError("[strategy] name='" + name + "' is unknown (known: " + known_names() + ")");
}

}  // namespace shardtune::strategies
