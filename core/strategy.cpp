#include "core/strategy.h"

#include <cstdlib>
#include <sstream>

#include "base/errors.h"
#include "base/strings.h"
#include "core/model.h"

namespace shardtune::core {

std::vector<NamedParameter> Strategy::trainable_parameters(CausalLMImpl& model) const {
  std::vector<NamedParameter> out;
  for (auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) out.push_back({item.key(), item.value()});
  }
  return out;
}

std::vector<std::pair<std::string, ShardSpec>> Strategy::checkpoint_specs(
    CausalLMImpl& model) const {
  std::vector<std::pair<std::string, ShardSpec>> out;
  auto params = model.named_parameters();
  for (auto& [name, spec] : parameter_specs(model)) {
    if (params[name].requires_grad()) out.emplace_back(name, spec);
  }
  return out;
}

bool Strategy::is_added_parameter(const std::string&) const { return false; }

void Strategy::merge(CausalLMImpl&) {}

ParameterCounts count_parameters(CausalLMImpl& model) {
  ParameterCounts c;
  for (auto& item : model.named_parameters()) {
    c.total += item.value().numel();
    if (item.value().requires_grad()) c.trainable += item.value().numel();
  }
  return c;
}

std::string Strategy::describe(CausalLMImpl& model) const {
  const auto c = count_parameters(model);
  std::ostringstream s;
  s << "strategy " << name() << ": trainable " << c.trainable << " / " << c.total
    << " parameters on this rank ("
    << (c.total ? 100.0 * static_cast<double>(c.trainable) / static_cast<double>(c.total) : 0.0)
    << "%), AdamW state " << c.trainable * 8 << " bytes";
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

namespace {
[[noreturn]] void bad_value(const std::string& strategy, const std::string& key,
                            const std::string& value, const std::string& what) {
  throw UserError("[strategy." + strategy + "] " + key + "='" + value + "' is not " + what);
}
}  // namespace

int64_t take_int(StrategyOptions& options, const std::string& strategy, const std::string& key,
                 int64_t fallback) {
  const std::string v = take_option(options, key, "");
  if (v.empty()) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0') bad_value(strategy, key, v, "an integer");
  return static_cast<int64_t>(x);
}

double take_double(StrategyOptions& options, const std::string& strategy, const std::string& key,
                   double fallback) {
  const std::string v = take_option(options, key, "");
  if (v.empty()) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0') bad_value(strategy, key, v, "a number");
  return x;
}

bool take_bool(StrategyOptions& options, const std::string& strategy, const std::string& key,
               bool fallback) {
  const std::string v = take_option(options, key, "");
  if (v.empty()) return fallback;
  bool ok = false;
  const bool value = base::parse_bool(v, ok);
  if (!ok) bad_value(strategy, key, v, "a boolean (true/false)");
  return value;
}

}  // namespace shardtune::core
