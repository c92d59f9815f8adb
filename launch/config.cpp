#include "launch/config.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "base/errors.h"
#include "base/hash.h"
#include "base/strings.h"
#include "io/tokenizers/loader.h"
#include "launch/weights.h"
#include "strategies/registry.h"

namespace po = boost::program_options;

namespace shardtune::launch {

namespace {

// Whether `dir` holds tokenizer files (io/tokenizers/loader.h's search order).
bool has_tokenizer_files(const std::string& dir) {
  try {
    io::tokenizers::find_tokenizer_files(dir);
    return true;
  } catch (const UserError&) {
    return false;
  }
}

uint64_t parse_unsigned(const std::string& name, const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 20 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  require(digits && errno != ERANGE,
          name + "='" + text +
              "' must be a whole number in [0, 18446744073709551615]");
  return static_cast<uint64_t>(value);
}

// Config::sections visitor: the Boost.Program_options table, one group per section, every option
// bound to its member with the member's current value as default.
struct OptionTable {
  std::vector<po::options_description> groups;
  std::vector<std::string> sections;
  std::string prefix;

  void section(const char* name, const char* title) {
    groups.emplace_back(title);
    sections.emplace_back(name);
    prefix = std::string(name) + ".";
  }
  template <typename T>
  void operator()(const char* key, T& member, const char* doc) {
    groups.back().add_options()((prefix + key).c_str(), po::value(&member)->default_value(member),
                                doc);
  }
  // Unsigned options: Boost's lexical_cast would turn "-1" into 2^64 - 1, so they are parsed here,
  // digits only, refusing a sign and overflow with one error naming the option.
  void operator()(const char* key, uint64_t& member, const char* doc) {
    const std::string name = "[" + sections.back() + "] " + key;
    groups.back().add_options()(
        (prefix + key).c_str(),
        po::value<std::string>()
            ->default_value(std::to_string(member))
            ->notifier([&member, name](const std::string& text) {
              member = parse_unsigned(name, text);
            }),
        doc);
  }
  void operator()(const char* key, std::vector<std::string>& member, const char* doc) {
    groups.back().add_options()((prefix + key).c_str(), po::value(&member)->composing(), doc);
  }
  // [strategy.<name>] keys are the strategy's: they arrive as unregistered options.
  void free_options(const std::string&, core::StrategyOptions&) {}
};

// Config::sections visitor: the INI text. A section header appears before its first line.
struct IniWriter {
  std::ostringstream out;
  std::string pending, current;

  void section(const char* name, const char*) { pending = name; }
  template <typename T>
  void operator()(const char* key, const T& value, const char*) {
    header();
    out << key << " = ";
    if constexpr (std::is_same_v<T, bool>) {
      out << (value ? "true" : "false");
    } else if constexpr (std::is_floating_point_v<T>) {
      out << base::format_double(value);
    } else {
      out << value;
    }
    out << "\n";
  }
  void operator()(const char* key, const std::vector<std::string>& values, const char* doc) {
    for (const auto& v : values) (*this)(key, v, doc);
  }
  void free_options(const std::string& section, const core::StrategyOptions& options) {
    pending = section;
    for (const auto& [key, value] : options) (*this)(key.c_str(), value, "");
  }
  void header() {
    if (pending == current) return;
    out << (current.empty() ? "" : "\n") << "[" << pending << "]\n";
    current = pending;
  }
};

// Options of [strategy.<name>] are owned by the strategy; everything else must be known.
bool is_strategy_option(const std::string& key) {
  return key.rfind("strategy.", 0) == 0 && key.find('.', 9) != std::string::npos;
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& n : names) text += (text.empty() ? "" : ", ") + n;
  return text;
}

// Unregistered options are [strategy.<name>] keys, routed to the chosen strategy. A section that
// names no strategy (a misspelling such as [strategy.lroa]) and a section or key that no
// component owns are errors: an ignored option would train something other than what was asked.
void collect_unregistered(const std::vector<po::option>& options, const std::string& where,
                          const std::vector<std::string>& sections, Config& config) {
  const auto strategies = strategies::strategy_names();
  for (const auto& o : options) {
    if (!o.unregistered) continue;
    if (is_strategy_option(o.string_key)) {
      const std::string rest = o.string_key.substr(9);  // "<name>.<key>"
      const auto dot = rest.find('.');
      const std::string name = rest.substr(0, dot);
      require(std::find(strategies.begin(), strategies.end(), name) != strategies.end(),
              where + ": unknown section [strategy." + name +
                  "] (strategies: " + joined(strategies) + ")");
      if (name == config.strategy || config.strategy.empty()) {
        config.strategy_options[rest.substr(dot + 1)] = o.value.empty() ? "" : o.value.front();
      }
      continue;
    }
    const auto dot = o.string_key.find('.');
    const std::string section = o.string_key.substr(0, dot);
    if (dot != std::string::npos &&
        std::find(sections.begin(), sections.end(), section) == sections.end()) {
      throw UserError(where + ": unknown section [" + section +
                      "] (sections: " + joined(sections) + ")");
    }
    throw UserError(where + ": unknown option '" + o.string_key + "'");
  }
}

}  // namespace

std::string Config::checkpoint_dir() const {
  return checkpoint.dir.empty() ? (std::filesystem::path(train.out_dir) / "checkpoints").string()
                                : checkpoint.dir;
}

void Config::validate(int world) const {
  model.validate();
  train.validate();
  require(train.seq_len <= model.max_position_embeddings,
          "[train] seq_len=" + std::to_string(train.seq_len) +
              " exceeds [model] max_position_embeddings=" +
              std::to_string(model.max_position_embeddings));
  parallel.validate(world);
  const int64_t dp = world / parallel.tp;
  require(train.global_batch % dp == 0,
          "[train] global_batch=" + std::to_string(train.global_batch) +
              " is not divisible by the data-parallel size " + std::to_string(dp));
  const int64_t per_rank = train.global_batch / dp;
  require(per_rank % train.micro_batch == 0,
          "[train] micro_batch=" + std::to_string(train.micro_batch) +
              " does not divide the per-rank batch " + std::to_string(per_rank) +
              " (global_batch / data-parallel size)");
  data.validate();
  checkpoint.validate();
  export_options.validate();
  generate.validate();
}

std::string Config::to_ini() const {
  Config resolved = *this;
  resolved.checkpoint.dir = checkpoint_dir();
  IniWriter writer;
  resolved.sections(writer);
  return writer.out.str();
}

uint64_t Config::hash() const { return base::fnv1a64(to_ini(), base::kFnv1a64OffsetBasis); }

bool parse_config(const std::vector<std::string>& raw_args, Config& config, std::string& help) {
  // Short forms: --resume X / --resume=X is --checkpoint.resume=X; --format, --out and --dtype
  // are [export]'s.
  static const std::vector<std::pair<std::string, std::string>> kShort = {
      {"resume", "checkpoint.resume"},
      {"format", "export.format"},
      {"out", "export.out"},
      {"dtype", "export.dtype"}};
  std::vector<std::string> args;
  for (size_t i = 0; i < raw_args.size(); ++i) {
    bool replaced = false;
    for (const auto& [name, full] : kShort) {
      if (raw_args[i] == "--" + name) {
        require(i + 1 < raw_args.size(), "command line: --" + name + " needs a value");
        args.push_back("--" + full + "=" + raw_args[++i]);
        replaced = true;
      } else if (base::starts_with(raw_args[i], "--" + name + "=")) {
        args.push_back("--" + full + "=" + raw_args[i].substr(name.size() + 3));
        replaced = true;
      }
      if (replaced) break;
    }
    if (!replaced) args.push_back(raw_args[i]);
  }
  OptionTable table;
  config.sections(table);
  po::options_description desc;
  for (const auto& group : table.groups) desc.add(group);
  po::options_description cli("Command line");
  std::string config_file;
  cli.add_options()("help,h", "show the options")(
      "config,c", po::value(&config_file), "INI config file (sections as below)");
  po::options_description everything;
  everything.add(cli).add(desc);

  po::variables_map vm;
  try {
    auto parsed = po::command_line_parser(args).options(everything).allow_unregistered().run();
    // Strategy name may come from the command line; read it before routing strategy options.
    po::store(parsed, vm);
    if (vm.count("help")) {
      std::ostringstream s;
      s << everything;
      help = s.str();
      return false;
    }
    if (vm.count("config")) {
      config_file = vm["config"].as<std::string>();
      // A directory opens as an empty stream and a FIFO blocks: only a regular file is read.
      std::error_code ec;
      const auto status = std::filesystem::status(config_file, ec);
      require(!ec && std::filesystem::exists(status),
              config_file + ": cannot open config file (" +
                  (ec ? ec.message() : "no such file") + ")");
      require(std::filesystem::is_regular_file(status),
              config_file + ": config file is not a regular file" +
                  (std::filesystem::is_directory(status) ? " (a directory)" : ""));
      std::ifstream in(config_file);
      require(static_cast<bool>(in),
              config_file + ": cannot open config file");
      auto from_file = po::parse_config_file(in, desc, /*allow_unregistered=*/true);
      po::store(from_file, vm);
      po::notify(vm);
      config.config_file = config_file;
      collect_unregistered(from_file.options, config_file,
                           table.sections, config);
    } else {
      po::notify(vm);
    }
    // Command-line strategy options override the file's.
    collect_unregistered(parsed.options, "command line", table.sections, config);
  } catch (const po::error& e) {
    const std::string where =
        config_file.empty() ? "command line" : config_file;
    throw UserError(where + ": " + e.what());
  }
  if (!config.model_source.from_hf.empty()) {
    std::set<std::string> explicit_keys;
    for (const auto& [key, value] : vm) {
      if (base::starts_with(key, "model.") && !value.defaulted()) explicit_keys.insert(key.substr(6));
    }
    config.model = model_config_from_hf(config.model_source.from_hf, config.model, explicit_keys);
    // The model's own tokenizer, when its folder holds one and [data] tokenizer names no other:
    // the byte tokenizer's ids mean nothing to a pretrained model's embeddings.
    const auto tok = vm.find("data.tokenizer");
    if ((tok == vm.end() || tok->second.defaulted()) &&
        has_tokenizer_files(config.model_source.from_hf)) {
      config.data.tokenizer = config.model_source.from_hf;
    }
  }
  return true;
}

}  // namespace shardtune::launch
