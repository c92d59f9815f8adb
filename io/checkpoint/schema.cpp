#include "io/checkpoint/schema.h"

#include <cstdio>
#include <sstream>

#include "base/errors.h"
#include "base/strings.h"
#include "core/model_config.h"

namespace shardtune::io {

std::string model_tensor_path(const std::string& parameter) { return "/model/" + parameter; }
std::string exp_avg_path(const std::string& parameter) {
  return "/optimizer/" + parameter + "/exp_avg";
}
std::string exp_avg_sq_path(const std::string& parameter) {
  return "/optimizer/" + parameter + "/exp_avg_sq";
}
std::string rng_path(const std::string& stream) { return "/rng/" + stream; }

std::string step_file_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.h5", static_cast<long long>(step));
  return name;
}

std::string layout_name(int64_t tp, int64_t dp, int64_t zero) {
  return "tp=" + std::to_string(tp) + ",dp=" + std::to_string(dp) + ",zero=" + std::to_string(zero);
}

std::string describe(CheckpointInfo info) {
  std::ostringstream out;
  const int64_t version = info.format_version;
  info.fields([&](const char* name, auto& value, int since) {
    if (since > version) return;
    out << name << ": ";
    if (std::string(name) == "base_model" && info.base_model.empty()) {
      out << "(self-contained)";
    } else {
      out << value;
    }
    out << "\n";
  });
  return out.str();
}

void require_compatible(const std::string& file, const CheckpointInfo& saved,
                        const CheckpointInfo& expected) {
  require(core::ModelConfig::from_json(saved.model_config) ==
              core::ModelConfig::from_json(expected.model_config),
          file + ": model config differs from [model]: saved " + saved.model_config +
              ", configured " + expected.model_config);
  require(saved.strategy == expected.strategy,
          file + ": saved by strategy '" + saved.strategy + "', but this run uses '" +
              expected.strategy + "' ([strategy] name)");
  if (saved.format_version >= 2) {
    require(saved.strategy_options == expected.strategy_options,
            file + ": strategy options differ: saved " + saved.strategy_options +
                ", configured " + expected.strategy_options);
  }
  require(saved.tokenizer == expected.tokenizer,
          file + ": tokenizer differs: saved '" + saved.tokenizer + "', configured '" +
              expected.tokenizer + "'");
}

namespace {
constexpr const char* kSeedPrefix = "seed:";
constexpr const char* kDigestMark = " digest:";
constexpr const char* kHfPrefix = "hf:";
}  // namespace

std::string seed_base(uint64_t seed) { return kSeedPrefix + std::to_string(seed); }

std::string file_base(const std::string& path, const std::string& digest) {
  return path + kDigestMark + digest;
}

std::string hf_base(const std::string& dir, const std::string& digest) {
  return kHfPrefix + dir + kDigestMark + digest;
}

BaseReference parse_base_reference(const std::string& text, const std::string& file) {
  BaseReference ref;
  if (text.empty()) return ref;
  if (base::starts_with(text, kSeedPrefix)) {
    ref.kind = BaseReference::Kind::kSeed;
    ref.seed = text.substr(std::string(kSeedPrefix).size());
    return ref;
  }
  const auto cut = text.rfind(kDigestMark);
  require(cut != std::string::npos, file + ": malformed base_model attribute '" + text + "'");
  const bool hf = base::starts_with(text, kHfPrefix);
  ref.kind = hf ? BaseReference::Kind::kHf : BaseReference::Kind::kFile;
  const size_t start = hf ? std::string(kHfPrefix).size() : 0;
  require(cut >= start, file + ": malformed base_model attribute '" + text + "'");
  ref.path = text.substr(start, cut - start);
  ref.digest = text.substr(cut + std::string(kDigestMark).size());
  return ref;
}

bool writes_piece(const core::ShardSpec& spec, size_t index, const WriterLayout& layout) {
  const int k = static_cast<int>(index);
  return spec.sharded() ? layout.dp_rank == k % layout.dp : layout.rank == k % layout.world;
}

std::vector<ShardedTensor> training_checkpoint_tensors(const TrainingTensors& t,
                                                       const WriterLayout& layout) {
  std::vector<ShardedTensor> out;
  auto add = [&](const std::string& path, const torch::Tensor& local, const core::ShardSpec& s) {
    out.push_back({path, local, s, writes_piece(s, out.size(), layout)});
  };
  for (size_t i = 0; i < t.names.size(); ++i) {
    add(model_tensor_path(t.names[i]), t.params[i], t.specs[i]);
  }
  for (size_t i = 0; i < t.names.size(); ++i) {
    add(exp_avg_path(t.names[i]), t.exp_avg[i], t.specs[i]);
    add(exp_avg_sq_path(t.names[i]), t.exp_avg_sq[i], t.specs[i]);
  }
  for (const auto& [stream, row] : t.rng) {
    // Row `rank` of [world, bytes]: every rank writes its own generator state.
    out.push_back({rng_path(stream), row,
                   core::split_spec({layout.world, row.numel()}, 0, layout.rank, layout.world),
                   true});
  }
  return out;
}

}  // namespace shardtune::io
