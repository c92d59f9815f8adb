// The checkpoint schema, in one place: where every tensor lives in the file, which rank writes
// which piece, the metadata (root attributes) with the format version that introduced each, the
// base-model reference, and what must match for a run to resume from a file. The writer, the
// reader, `ckpt inspect`, resume, export and strategy tensors (launch/) all use these, so a path or
// a field is spelt once. docs/checkpoint-format.md describes the same in prose.
//
// File layout (format 2):
//   /model/<parameter>                 a parameter at its global shape (Hugging Face names)
//   /optimizer/<parameter>/exp_avg     AdamW moments, shaped and sharded like the parameter
//   /optimizer/<parameter>/exp_avg_sq
//   /rng/<stream>                      uint8 [world, bytes]: row r = rank r's generator state
// and in the checkpoint directory step-00000100.h5 files plus the text file `latest`.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/shard.h"

namespace shardtune::io {

inline constexpr int kCheckpointFormatVersion = 2;
inline constexpr const char* kChecksumAlgorithm = "fnv1a64x4";
inline constexpr const char* kLatestPointer = "latest";

// ---- where tensors and files live ------------------------------------------------------------
std::string model_tensor_path(const std::string& parameter);  // /model/<parameter>
std::string exp_avg_path(const std::string& parameter);       // /optimizer/<parameter>/exp_avg
std::string exp_avg_sq_path(const std::string& parameter);    // /optimizer/<parameter>/exp_avg_sq
std::string rng_path(const std::string& stream);              // /rng/<stream>
std::string step_file_name(int64_t step);                     // step-00000100.h5
std::string layout_name(int64_t tp, int64_t dp, int64_t zero);  // "tp=2,dp=1,zero=0"

// ---- metadata: the root attributes -------------------------------------------------------------
// Every field is listed once, in fields(): the writer, the reader and `ckpt inspect` walk that
// list. `since` is the format version that introduced a field; older files lack it.
struct CheckpointInfo {
  int64_t format_version = kCheckpointFormatVersion;
  std::string shardtune_version;
  std::string model_config;      // core::ModelConfig JSON
  std::string strategy;          // strategy name
  std::string strategy_options;  // JSON object of the strategy's options
  std::string tokenizer;         // tokenizer identity
  std::string layout;            // layout_name(tp, dp, zero) of the run that saved it
  int64_t tp = 1, dp = 1, zero = 0;
  int64_t world = 1;             // ranks that wrote the file (rows of the /rng datasets)
  int64_t step = 0;
  int64_t consumed_samples = 0;  // core::DistributedSampler position
  int64_t sampler_seed = 0;
  int64_t optimizer_step = 0;    // AdamW step count (bias correction); format 1: = step
  // Frozen parameters are not stored: their source. "" = every parameter is in the file;
  // seed_base(n) = the seeded initialisation; file_base(path, digest) = [checkpoint] init_from;
  // hf_base(dir, digest) = [model] from_hf.
  std::string base_model;
  std::string checksum_algorithm = kChecksumAlgorithm;

  // v(name, member, since): int64_t and std::string members, in the order attributes are written
  // and shown.
  template <typename V>
  void fields(V&& v) {
    v("format_version", format_version, 1);
    v("shardtune_version", shardtune_version, 1);
    v("step", step, 1);
    v("consumed_samples", consumed_samples, 1);
    v("layout", layout, 1);
    v("strategy", strategy, 1);
    v("strategy_options", strategy_options, 2);
    v("tokenizer", tokenizer, 1);
    v("model_config", model_config, 1);
    v("tp", tp, 2);
    v("dp", dp, 2);
    v("zero", zero, 2);
    v("world", world, 2);
    v("sampler_seed", sampler_seed, 2);
    v("optimizer_step", optimizer_step, 2);
    v("base_model", base_model, 2);
    v("checksum_algorithm", checksum_algorithm, 2);
  }
};

// "name: value" lines of every field the file's format has, as `shardtune ckpt inspect` prints
// them (an empty base_model shows as "(self-contained)").
std::string describe(CheckpointInfo info);

// UserError naming `file` when the saved model config, strategy, strategy options (format 2) or
// tokenizer differ from `expected`'s.
void require_compatible(const std::string& file, const CheckpointInfo& saved,
                        const CheckpointInfo& expected);

// ---- base-model references ---------------------------------------------------------------------
std::string seed_base(uint64_t seed);                                      // "seed:<n>"
std::string file_base(const std::string& path, const std::string& digest);  // "<path> digest:<hex>"
// [model] from_hf: a Hugging Face folder and its digest (io/hf_weights.h hf_folder_digest).
std::string hf_base(const std::string& dir, const std::string& digest);  // "hf:<dir> digest:<hex>"
struct BaseReference {
  enum class Kind { kNone, kSeed, kFile, kHf } kind = Kind::kNone;
  std::string seed;    // kSeed: the decimal seed
  std::string path;    // kFile: a checkpoint; kHf: a Hugging Face model folder
  std::string digest;  // kFile, kHf
};
// Parses CheckpointInfo::base_model of `file`; UserError naming it when malformed.
BaseReference parse_base_reference(const std::string& text, const std::string& file);

// ---- who writes what ---------------------------------------------------------------------------
// One tensor of a sharded save or load. `local` is this rank's tensor (padding included, as the
// model holds it); `spec` relates it to the global shape.
struct ShardedTensor {
  std::string path;        // "/model/model.norm.weight"
  torch::Tensor local;     // save: source; load: destination (filled in place)
  core::ShardSpec spec;
  bool write = true;       // save only: this rank writes its piece (exactly one rank per piece)
};

struct WriterLayout {
  int rank = 0, world = 1;   // in the world
  int dp_rank = 0, dp = 1;   // on the data-parallel axis
};
// Whether this rank writes its piece of the `index`-th tensor of a save: a TP-sharded tensor by
// the DP replica with dp_rank == index % dp, a replicated one by world rank index % world. So all
// ranks share the writing and every piece has exactly one writer.
bool writes_piece(const core::ShardSpec& spec, size_t index, const WriterLayout& layout);

// What a training checkpoint holds, as this rank sees it.
struct TrainingTensors {
  std::vector<std::string> names;        // trainable parameters, in order
  std::vector<core::ShardSpec> specs;    // one per name
  std::vector<torch::Tensor> params, exp_avg, exp_avg_sq;  // one per name, this rank's tensors
  std::map<std::string, torch::Tensor> rng;  // stream -> this rank's state [1, bytes]; may be empty
};
// The tensors of a training checkpoint in file order: /model/ of every trainable parameter, their
// /optimizer/ moments, then each RNG stream's row of this rank; `write` set per writes_piece (RNG
// rows: every rank its own).
std::vector<ShardedTensor> training_checkpoint_tensors(const TrainingTensors& t,
                                                       const WriterLayout& layout);

}  // namespace shardtune::io
