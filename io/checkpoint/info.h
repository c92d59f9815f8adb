// The checkpoint's metadata (internal to io/checkpoint; free of LibTorch so that the reader's
// metadata path builds fast and is fuzzed on its own: tests/fuzz/fuzz_checkpoint.cpp): the format
// version, the root attributes (CheckpointInfo) and their range checks.
#pragma once

#include <cstdint>
#include <string>

namespace shardtune::io {

inline constexpr int kCheckpointFormatVersion = 3;
inline constexpr const char* kChecksumAlgorithm = "fnv1a64x4";
inline constexpr const char* kLatestPointer = "latest";

std::string step_file_name(int64_t step);                       // step-00000100.h5
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
  // Format 3. The run that wrote the file (launch/ gives every run an id; a resumed run keeps
  // the id of the checkpoint it resumed): a directory belongs to one run, and pruning deletes only
  // the run's own files. "" for library saves outside a run.
  std::string run_id;
  // Format 3. A digest of the tokenized training examples (launch/resume.h); "" when unknown.
  std::string data_fingerprint;

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
    v("run_id", run_id, 3);
    v("data_fingerprint", data_fingerprint, 3);
  }
};

// Largest step, sample count or optimizer step a file may claim (2^53: exact as a double, far
// beyond any run, and far from int64 overflow when training continues from it).
inline constexpr int64_t kMaxCount = int64_t{1} << 53;

// UserError naming `file` and the field when a value read from a file is out of range: negative or
// huge counts, a layout that is not tp x dp, zero outside {0, 1}, a run id or fingerprint that is
// not short plain text. Called by the reader on every file before anything uses its metadata.
void validate_info(const std::string& file, const CheckpointInfo& info);

// Text read from a file, made safe to print on one line: control characters (newlines included)
// shown as \xNN, at most `max` bytes (then "...").
std::string printable(const std::string& text, size_t max = 200);

// "name: value" lines of every field the file's format has, as `shardtune ckpt inspect` prints
// them (an empty base_model shows as "(self-contained)").
std::string describe(CheckpointInfo info);

}  // namespace shardtune::io
