#include "io/hf_weights.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "base/errors.h"
#include "base/hash.h"
#include "base/strings.h"
#include "core/shard.h"
#include "io/hf_config.h"

namespace shardtune::io {

namespace fs = std::filesystem;
namespace st = safetensors;

namespace {

using base::shape_string;
using base::starts_with;

// "<prefix><digits><suffix>"
bool matches_layer_pattern(const std::string& name, const std::string& prefix,
                           const std::string& suffix) {
  if (!starts_with(name, prefix) || name.size() <= prefix.size() + suffix.size()) return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  const std::string digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  return !digits.empty() && std::all_of(digits.begin(), digits.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0; });
}

// Buffers that some checkpoints store and no model parameter corresponds to.
bool is_ignorable_buffer(const core::ModelConfig& c, const std::string& name) {
  if (c.family == "gpt2") {
    const std::string n = starts_with(name, "transformer.") ? name.substr(12) : name;
    return matches_layer_pattern(n, "h.", ".attn.bias") ||
           matches_layer_pattern(n, "h.", ".attn.masked_bias");
  }
  return matches_layer_pattern(name, "model.layers.", ".self_attn.rotary_emb.inv_freq");
}

std::string embedding_name(const core::ModelConfig& c) {
  return c.family == "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
}

// The hyperslab of the file's tensor that holds this rank's part of a parameter.
st::Slice file_slice(const core::ShardSpec& spec, bool transposed) {
  st::Slice s;
  if (!spec.sharded()) return s;
  s.dim = transposed ? 1 - spec.dim : spec.dim;
  s.parts = spec.parts;
  s.offset = spec.offset;
  s.length = spec.length;
  return s;
}

// Reads this rank's part of `info` into `param` (local, padding zeroed). Returns file bytes read.
uint64_t read_into(torch::Tensor& param, const core::ShardSpec& spec, const st::File& file,
                   const st::TensorInfo& info, bool transposed) {
  torch::NoGradGuard no_grad;
  const auto slice = file_slice(spec, transposed);
  const auto shape = st::File::slice_shape(info, slice, file.path());
  const auto dst = dtype_of(param.scalar_type());
  if (spec.sharded() && spec.length < spec.chunk) param.zero_();
  auto real = core::real_part(param, spec);
  if (!transposed && real.is_contiguous() && real.sizes().vec() == shape) {
    file.read(info, slice, dst, real.data_ptr(), real.nbytes());
  } else {
    auto tmp = torch::empty(shape, param.options());
    file.read(info, slice, dst, tmp.data_ptr(), tmp.nbytes());
    real.copy_(transposed ? tmp.t() : tmp);
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return static_cast<uint64_t>(n) * static_cast<uint64_t>(st::dtype_bits(info.dtype) / 8);
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw UserError(tmp.string() + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw UserError(path.string() + ": cannot rename: " + ec.message());
}

}  // namespace

st::Dtype dtype_from_torch_name(const std::string& name) {
  if (name == "float32" || name == "float") return st::Dtype::kF32;
  if (name == "bfloat16") return st::Dtype::kBF16;
  if (name == "float16" || name == "half") return st::Dtype::kF16;
  throw UserError("dtype '" + name + "' is not one of float32, bfloat16, float16");
}

torch::ScalarType scalar_type_of(st::Dtype dtype) {
  switch (dtype) {
    case st::Dtype::kF32: return torch::kFloat;
    case st::Dtype::kBF16: return torch::kBFloat16;
    case st::Dtype::kF16: return torch::kHalf;
    case st::Dtype::kF64: return torch::kDouble;
    default:
      throw std::invalid_argument(std::string("no torch dtype for ") + st::dtype_name(dtype));
  }
}

st::Dtype dtype_of(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return st::Dtype::kF32;
    case torch::kBFloat16: return st::Dtype::kBF16;
    case torch::kHalf: return st::Dtype::kF16;
    case torch::kDouble: return st::Dtype::kF64;
    default: throw std::invalid_argument("parameters must be floating point");
  }
}

HfLoadReport load_hf_weights(core::CausalLMImpl& model, const std::string& dir) {
  return load_hf_weights(model, st::Folder::open(dir));
}

HfLoadReport load_hf_weights(core::CausalLMImpl& model, const st::Folder& folder) {
  const auto& config = model.config();
  const std::string& dir = folder.dir();
  const auto specs = core::parameter_specs(model);
  auto params = model.named_parameters();
  const auto expected = hf_parameter_names(config);
  std::set<std::string> names;
  for (const auto& [name, spec] : specs) names.insert(name);
  if (names != std::set<std::string>(expected.begin(), expected.end())) {
    throw std::logic_error(
        "load_hf_weights: the model's parameters are not the HF set of its "
        "config (call it before Strategy::apply)");
  }

  HfLoadReport report;
  std::set<std::string> consumed;
  for (const auto& [name, spec] : specs) {
    // GPT-2 hub files drop the "transformer." prefix; save_pretrained keeps it.
    std::vector<std::string> keys{name};
    if (config.family == "gpt2" && starts_with(name, "transformer."))
      keys.push_back(name.substr(12));
    std::string key;
    for (const auto& k : keys) {
      if (!folder.find(k)) continue;
      if (!key.empty()) {
        throw UserError(dir + ": tensors '" + key + "' and '" + k +
                        "' are both present; they name the same parameter");
      }
      key = k;
    }
    if (key.empty()) {
      std::string why = "the model config.json describes needs it";
      if (name == "lm_head.weight") why = "config.json tie_word_embeddings=false needs it";
      throw UserError(dir + ": tensor '" + name + "' is missing (" + why + ")");
    }
    const st::File& file = *folder.file_of(key);
    const st::TensorInfo& info = *file.find(key);
    const std::string where = file.path() + ": tensor '" + key + "'";
    if (!st::is_convertible_float(info.dtype)) {
      throw UserError(where + " has dtype " + st::dtype_name(info.dtype) +
                      "; expected a floating dtype (F32, BF16, F16 or F64)");
    }
    const bool transposed = is_conv1d_weight(config, name);
    auto want = spec.global_shape;
    if (transposed) std::swap(want[0], want[1]);
    if (info.shape != want) {
      throw UserError(where + " has shape " + shape_string(info.shape) + ", expected " +
                      shape_string(want) + (transposed ? " (GPT-2 Conv1D layout [in, out])" : "") +
                      " for the sizes in config.json");
    }
    auto& param = params[name];
    report.bytes_read += read_into(param, spec, file, info, transposed);
    ++report.tensors;
    consumed.insert(key);
  }

  std::vector<std::string> unexpected;
  for (const auto& name : folder.names()) {
    if (consumed.count(name)) continue;
    if (is_ignorable_buffer(config, name)) {
      report.ignored.push_back(name);
      continue;
    }
    if (name == "lm_head.weight" && config.ties_embeddings()) {
      // A tied model's head is its embedding; a stored copy must not say otherwise.
      const std::string emb = embedding_name(config);
      const auto& spec = std::find_if(specs.begin(), specs.end(), [&](const auto& p) {
                           return p.first == emb;
                         })->second;
      const st::File& file = *folder.file_of(name);
      const st::TensorInfo& info = *file.find(name);
      const std::string where = file.path() + ": tensor 'lm_head.weight'";
      if (!st::is_convertible_float(info.dtype) || info.shape != spec.global_shape) {
        throw UserError(where + " (" + st::dtype_name(info.dtype) + " " + shape_string(info.shape) +
                        ") does not match the tied embedding " + shape_string(spec.global_shape));
      }
      auto copy = torch::empty_like(params[emb]);
      read_into(copy, spec, file, info, false);
      if (!torch::equal(core::real_part(copy, spec), core::real_part(params[emb].detach(), spec))) {
        throw UserError(where + " differs from the embedding '" + emb +
                        "' although config.json ties them (tie_word_embeddings); which is meant?");
      }
      report.ignored.push_back(name);
      continue;
    }
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    std::string more =
        unexpected.size() > 1 ? " and " + std::to_string(unexpected.size() - 1) + " more" : "";
    throw UserError(dir + ": unexpected tensor '" + unexpected[0] + "'" + more +
                    " (not a parameter of the model config.json describes)");
  }
  return report;
}

std::string hf_folder_digest(const std::string& dir) {
  const auto folder = st::Folder::open(dir);
  std::vector<std::string> paths = {(fs::path(dir) / "config.json").string()};
  const auto index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) paths.push_back(index.string());
  for (const auto& f : folder.files()) paths.push_back(f->path());
  // Identity of the files as they are now: the same key gives the remembered digest.
  std::string key = fs::absolute(dir).lexically_normal().string();
  std::error_code ec;
  for (const auto& p : paths) {
    const auto size = fs::file_size(p, ec);
    require(!ec, dir + ": cannot read " + p);
    const auto time = fs::last_write_time(p, ec).time_since_epoch().count();
    key += "|" + p + ":" + std::to_string(size) + ":" + std::to_string(time);
  }
  static std::mutex mutex;
  static std::map<std::string, std::string> remembered;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = remembered.find(key); it != remembered.end()) return it->second;
  uint64_t h = base::kShardTuneFnvBasis;
  std::vector<char> buffer(8u << 20);
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    require(static_cast<bool>(in), dir + ": cannot read " + p);
    const std::string name = fs::path(p).filename().string();
    h = base::fnv1a64(name, h);
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const auto n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      const uint64_t chunk = base::fnv1a64x4(buffer.data(), n);
      h = base::fnv1a64(&chunk, sizeof chunk, h);
    }
    require(in.eof(), dir + ": read error in " + p);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  remembered[key] = hex;
  return hex;
}

std::shared_ptr<core::CausalLMImpl> load_hf_model(const std::string& dir, parallel::TpGroup tp,
                                                  HfLoadReport* report) {
  const auto hf = read_hf_config(dir);
  auto model = core::build_model(hf.config, /*seed=*/0, std::move(tp));
  auto r = load_hf_weights(*model, dir);
  if (report) *report = std::move(r);
  return model;
}

const std::vector<std::string>& hf_tokenizer_files() {
  static const std::vector<std::string> files{"tokenizer.json",
                                              "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "tokenizer.model",
                                              "vocab.json",
                                              "merges.txt",
                                              "added_tokens.json",
                                              "chat_template.jinja",
                                              "chat_template.json",
                                              "generation_config.json"};
  return files;
}

std::vector<std::string> export_hf(core::CausalLMImpl& model, const std::string& out_dir,
                                   bool writer, const HfExportOptions& options) {
  const auto& config = model.config();
  const st::Dtype dtype = dtype_from_torch_name(options.dtype);
  const auto wanted = hf_parameter_names(config);
  const std::set<std::string> hf_names(wanted.begin(), wanted.end());
  auto params = model.named_parameters();

  std::vector<std::pair<std::string, core::ShardSpec>> specs;
  std::vector<st::TensorEntry> entries;
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (!hf_names.count(name)) continue;  // adapters, prefixes: merged or exported separately
    specs.emplace_back(name, spec);
    auto shape = spec.global_shape;
    if (is_conv1d_weight(config, name)) std::swap(shape[0], shape[1]);
    entries.push_back({name, dtype, shape});
  }
  if (specs.size() != hf_names.size()) {
    throw std::logic_error("export_hf: the model lacks parameters of its HF layout");
  }

  std::unique_ptr<st::ShardedWriter> out;
  if (writer) out = std::make_unique<st::ShardedWriter>(out_dir, entries, options.max_shard_bytes);
  const parallel::TpGroup& tp = model.tp();
  torch::NoGradGuard no_grad;
  for (const auto& [name, spec] : specs) {
    auto full = core::gather_full(params[name].detach(), spec, tp);  // collective over TP
    if (!writer) continue;
    if (is_conv1d_weight(config, name)) full = full.t();
    full = full.to(scalar_type_of(dtype)).contiguous();
    out->write(name, full.data_ptr(), full.nbytes());
  }
  if (!writer) return {};
  auto files = out->finish();

  std::string base;
  if (!options.source_dir.empty()) {
    std::ifstream in(fs::path(options.source_dir) / "config.json", std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      base = text.str();
    }
  }
  write_text_atomically(fs::path(out_dir) / "config.json",
                        hf_config_json(config, options.model_type, options.dtype, base));
  files.push_back("config.json");

  const std::string from =
      !options.tokenizer_dir.empty() ? options.tokenizer_dir : options.source_dir;
  if (!from.empty()) {
    std::error_code ec;
    const bool same = fs::equivalent(from, out_dir, ec);
    for (const auto& name : hf_tokenizer_files()) {
      const fs::path src = fs::path(from) / name;
      if (same || !fs::is_regular_file(src)) continue;
      fs::copy_file(src, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
      if (ec)
        throw UserError((fs::path(out_dir) / name).string() + ": cannot copy: " + ec.message());
      files.push_back(name);
    }
  }
  return files;
}

// The parameter names of hf_config.h, beside the loader and exporter that use them.
std::vector<std::string> hf_parameter_names(const core::ModelConfig& c) {
  std::vector<std::string> names;
  const auto layer = [](const char* prefix, int64_t i, const char* rest) {
    return std::string(prefix) + std::to_string(i) + "." + rest;
  };
  if (c.family == "gpt2") {
    names = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
             "transformer.ln_f.bias"};
    for (int64_t i = 0; i < c.num_layers; ++i) {
      for (const char* m :
           {"ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"}) {
        names.push_back(layer("transformer.h.", i, m) + ".weight");
        names.push_back(layer("transformer.h.", i, m) + ".bias");
      }
    }
  } else {
    names = {"model.embed_tokens.weight", "model.norm.weight"};
    if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
    for (int64_t i = 0; i < c.num_layers; ++i) {
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}) {
        names.push_back(layer("model.layers.", i, m) + ".weight");
        if (c.attention_bias) names.push_back(layer("model.layers.", i, m) + ".bias");
      }
      for (const char* m : {"self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                            "input_layernorm", "post_attention_layernorm"}) {
        names.push_back(layer("model.layers.", i, m) + ".weight");
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool is_conv1d_weight(const core::ModelConfig& c, const std::string& name) {
  if (c.family != "gpt2") return false;
  for (const char* suffix :
       {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
      return true;
  }
  return false;
}

}  // namespace shardtune::io
