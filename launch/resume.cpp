#include "launch/resume.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "base/errors.h"
#include "base/hash.h"
#include "core/shard.h"
#include "launch/agree.h"
#include "launch/weights.h"
#include "parallel/tp_ops.h"

namespace fs = std::filesystem;

namespace shardtune::launch {

namespace {

io::CheckpointInfo expected_info(const TrainingState& s) {
  const auto& dims = s.grid.dims();
  io::CheckpointInfo info;
  info.shardtune_version = SHARDTUNE_VERSION;
  info.model_config = s.config.model.to_json();
  info.strategy = s.strategy.name();
  info.strategy_options = nlohmann::json(s.config.strategy_options).dump();
  info.tokenizer = s.tokenizer.identity();
  info.layout = io::layout_name(dims.tp, dims.dp, s.config.parallel.zero);
  info.tp = dims.tp;
  info.dp = dims.dp;
  info.zero = s.config.parallel.zero;
  info.world = dims.world();
  info.sampler_seed = static_cast<int64_t>(s.config.train.seed);
  info.run_id = s.config.checkpoint.run_id;
  if (s.train_data) info.data_fingerprint = data_fingerprint(*s.train_data);
  return info;
}

io::WriterLayout writer_layout(const parallel::RankGrid& grid) {
  return {grid.rank(), grid.dims().world(), grid.coord().dp_rank, grid.dims().dp};
}

// The trainable parameters with their specs, in the optimizer's order.
io::TrainingTensors trainable_tensors(TrainingState& s) {
  std::map<std::string, core::ShardSpec> specs;
  for (auto& [name, spec] : core::parameter_specs(s.model)) specs[name] = spec;
  io::TrainingTensors t;
  for (const auto& p : s.step.trainable()) {
    t.names.push_back(p.name);
    t.specs.push_back(specs.at(p.name));
    t.params.push_back(p.param.detach());
  }
  return t;
}

bool all_trainable(core::CausalLMImpl& model) {
  for (const auto& p : model.parameters()) {
    if (!p.requires_grad()) return false;
  }
  return true;
}

}  // namespace

std::string base_model_reference(const Config& config, core::CausalLMImpl& model) {
  if (all_trainable(model)) return "";
  if (config.checkpoint.init_from.empty()) {
    return config.model_source.from_hf.empty() ? io::seed_base(config.train.seed)
                                               : hf_base_reference(config.model_source.from_hf);
  }
  const std::string file = io::resolve_checkpoint(config.checkpoint.init_from);
  return io::file_base(fs::absolute(file).lexically_normal().string(),
                       io::checkpoint_digest(file));
}

std::string save_training_checkpoint(TrainingState& s) {
  // Optimizer state at this rank's TP-local shape (ZeRO-1 gathers its shards over DP).
  const core::OptimizerState state = s.step.optimizer().state();
  io::TrainingTensors t = trainable_tensors(s);
  t.exp_avg = state.exp_avg;
  t.exp_avg_sq = state.exp_avg_sq;
  for (const auto& [stream, rng] : parallel::rng_tracker().get_states()) {
    t.rng[stream] = rng.reshape({1, rng.numel()}).contiguous();
  }
  auto info = expected_info(s);
  info.step = s.steps_done;
  info.consumed_samples = s.sampler.consumed_samples();
  info.optimizer_step = state.step;
  info.base_model = base_model_reference(s.config, s.model);
  io::SaveOptions options;
  options.keep_last = s.config.checkpoint.keep_last;
  options.collective_transfer = s.config.checkpoint.transfer == "collective";
  options.before_close = s.inside_write;
  const std::string path =
      io::save_sharded_checkpoint(s.config.checkpoint_dir(), info,
                                  io::training_checkpoint_tensors(t, writer_layout(s.grid)),
                                  s.grid.world(), options);
  if (s.grid.rank() == 0) spdlog::info("checkpoint saved: {}", path);
  return path;
}

std::string resume_file(const Config& config) {
  const std::string& r = config.checkpoint.resume;
  if (r.empty()) return "";
  if (r == "auto") {
    const auto dir = config.checkpoint_dir();
    std::error_code ec;
    // symlink_status: a `latest` that is a symlink is there (and refused by resolve_checkpoint).
    if (!fs::exists(fs::symlink_status(fs::path(dir) / io::kLatestPointer, ec))) return "";
    return io::resolve_checkpoint(dir);
  }
  return io::resolve_checkpoint(r);
}

std::string new_run_id() {
  std::random_device rd;
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return hex;
}

std::string data_fingerprint(const std::vector<core::Example>& examples) {
  uint64_t h = base::kShardTuneFnvBasis;
  auto mix = [&](const void* p, size_t n) { h = base::fnv1a64(p, n, h); };
  const uint64_t count = examples.size();
  mix(&count, sizeof count);
  for (const auto& e : examples) {
    const uint64_t sizes[2] = {e.tokens.size(), e.labels.size()};
    mix(sizes, sizeof sizes);
    // fnv1a64x4 of each vector (fast), chained into the byte-wise hash.
    const uint64_t sums[2] = {base::fnv1a64x4(e.tokens.data(), e.tokens.size() * 8),
                              base::fnv1a64x4(e.labels.data(), e.labels.size() * 8)};
    mix(sums, sizeof sums);
    // Packed rows: their document lengths (unpacked examples add nothing, as before packing).
    if (!e.documents.empty()) {
      const uint64_t docs = base::fnv1a64x4(e.documents.data(), e.documents.size() * 8);
      mix(&docs, sizeof docs);
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::string claim_checkpoint_dir(const std::string& dir, bool resuming,
                                 const std::string& resumed_run, bool overwrite,
                                 std::vector<std::string>* deleted) {
  const std::string run = resuming && !resumed_run.empty() ? resumed_run : new_run_id();
  const bool legacy_continues = resuming && resumed_run.empty();
  std::vector<std::string> foreign;
  std::string first_owner;
  for (const auto& f : io::list_step_files(dir)) {
    std::string owner;
    try {
      owner = io::read_run_id((fs::path(dir) / f.name).string());
    } catch (const std::exception&) {
      owner = "?";
    }
    if (owner == run || (owner.empty() && legacy_continues)) continue;
    if (foreign.empty()) {
      first_owner = owner == "?" ? "unreadable" : owner.empty() ? "no run id" : "run " + owner;
    }
    foreign.push_back(f.name);
  }
  if (foreign.empty()) return run;
  require(overwrite,
          dir + ": holds checkpoints of another run (" + foreign.front() + ", " + first_owner +
              (foreign.size() > 1 ? ", and " + std::to_string(foreign.size() - 1) + " more"
                                  : std::string()) +
              "); continue that run with --resume auto, choose another [checkpoint] dir, or set "
              "[checkpoint] overwrite = true to delete them");
  for (const auto& name : foreign) {
    std::error_code ec;
    fs::remove(fs::path(dir) / name, ec);
    require(!ec, (fs::path(dir) / name).string() + ": cannot delete (" + ec.message() + ")");
    if (deleted) deleted->push_back(name);
  }
  return run;
}

namespace {

// Broadcasts rank `root`'s strings to every rank (collective; same count everywhere).
std::vector<std::string> broadcast_strings(parallel::Communicator& world,
                                           std::vector<std::string> values, int root) {
  std::vector<int64_t> sizes;
  std::string joined;
  for (const auto& v : values) {
    sizes.push_back(static_cast<int64_t>(v.size()));
    joined += v;
  }
  auto size_t_ = torch::tensor(sizes, torch::kLong);
  world.broadcast(size_t_, root);
  int64_t total = 0;
  for (int64_t i = 0; i < size_t_.numel(); ++i) total += size_t_[i].item<int64_t>();
  auto bytes = torch::zeros({std::max<int64_t>(total, 1)}, torch::kByte);
  if (world.rank() == root && total > 0) std::memcpy(bytes.data_ptr(), joined.data(), joined.size());
  world.broadcast(bytes, root);
  const auto* p = static_cast<const char*>(bytes.data_ptr());
  for (size_t i = 0, off = 0; i < values.size(); ++i) {
    const auto n = static_cast<size_t>(size_t_[static_cast<int64_t>(i)].item<int64_t>());
    values[i].assign(p + off, n);
    off += n;
  }
  return values;
}

std::string probe_path(const std::string& dir, const std::string& token, int rank) {
  return (fs::path(dir) / (".shardtune-probe-" + token + "-rank" + std::to_string(rank))).string();
}

// Creates `path` exclusively (no symlink followed) holding `content`; UserError otherwise.
void write_probe(const std::string& path, const std::string& content, const std::string& dir,
                 int rank) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw UserError(dir + ": rank " + std::to_string(rank) +
                    " cannot write in the checkpoint directory (" + std::strerror(errno) + ")");
  }
  const bool ok = ::write(fd, content.data(), content.size()) ==
                  static_cast<ssize_t>(content.size());
  ::close(fd);
  require(ok, dir + ": rank " + std::to_string(rank) +
                  " cannot write in the checkpoint directory (disk full?)");
}

std::string read_small(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace

int prepare_checkpoints(parallel::Communicator& world, Config& config, bool saves) {
  const int rank = world.rank();
  const std::string dir = config.checkpoint_dir();
  // Round 1 (rank 0): resolve, identify, claim, probe.
  std::vector<std::string> answer(6);  // resume, resume id, init, init id, run id, probe token
  int rc = agree(world, [&] {
    if (rank != 0) return;
    const std::string resume = resume_file(config);
    if (!resume.empty()) {
      // As resolved, not made absolute: every rank resolves a relative path in its own working
      // directory, as it would open it.
      answer[0] = resume;
      answer[1] = io::checkpoint_identity(answer[0]);
    }
    if (!config.checkpoint.init_from.empty()) {
      answer[2] = io::resolve_checkpoint(config.checkpoint.init_from);
      answer[3] = io::checkpoint_identity(answer[2]);
    }
    if (!saves) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    require(!ec, dir + ": cannot create checkpoint directory (" + ec.message() + ")");
    std::vector<std::string> deleted;
    answer[4] = claim_checkpoint_dir(dir, !resume.empty(),
                                     resume.empty() ? "" : io::read_run_id(answer[0]),
                                     config.checkpoint.overwrite, &deleted);
    if (!deleted.empty()) {
      spdlog::warn("{}: deleted {} checkpoint(s) of another run ([checkpoint] overwrite), "
                   "the newest {}",
                   dir, deleted.size(), deleted.back());
    }
    answer[5] = new_run_id();
    write_probe(probe_path(dir, answer[5], 0), answer[5], dir, 0);
  });
  if (rc != 0) return rc;
  answer = broadcast_strings(world, answer, 0);
  const std::string& token = answer[5];
  auto cleanup = [&] {
    if (saves) ::unlink(probe_path(dir, token, rank).c_str());
  };
  // Round 2 (every rank): the same files, the same directory, writable.
  rc = agree(world, [&] {
    auto confirm = [&](const std::string& file, const std::string& identity, const char* what) {
      if (file.empty()) return;
      std::string mine;
      try {
        mine = io::checkpoint_identity(file);
      } catch (const std::exception& e) {
        throw UserError("rank " + std::to_string(rank) + " cannot read the " + what +
                        " checkpoint rank 0 chose: " + e.what());
      }
      require(mine == identity, file + ": rank " + std::to_string(rank) + " sees other content "
                                       "than rank 0 (" + what + " checkpoint; a node-local or "
                                       "differently mounted path?)");
    };
    confirm(answer[0], answer[1], "resume");
    confirm(answer[2], answer[3], "init_from");
    if (!saves || rank == 0) return;
    require(read_small(probe_path(dir, token, 0)) == token,
            dir + ": rank " + std::to_string(rank) + " does not see the checkpoint directory "
                  "rank 0 writes (its probe file is missing: a node-local or differently mounted "
                  "path?)");
    write_probe(probe_path(dir, token, rank), token, dir, rank);
  });
  if (rc != 0) {
    cleanup();
    return rc;
  }
  // Round 3 (rank 0): every rank's probe is visible here.
  rc = agree(world, [&] {
    if (!saves || rank != 0) return;
    for (int r = 1; r < world.size(); ++r) {
      struct stat st {};
      require(::lstat(probe_path(dir, token, r).c_str(), &st) == 0,
              dir + ": rank 0 does not see the probe file rank " + std::to_string(r) +
                  " wrote in the checkpoint directory (a node-local or differently mounted path?)");
    }
  });
  cleanup();
  if (rc != 0) return rc;
  config.checkpoint.resume = answer[0];  // "" when `auto` found no checkpoint
  if (!answer[2].empty()) config.checkpoint.init_from = answer[2];
  config.checkpoint.run_id = answer[4];
  return 0;
}

void load_training_checkpoint(const std::string& file, TrainingState& s) {
  const auto saved = io::read_checkpoint_info(file);
  const auto expected = expected_info(s);
  io::require_compatible(file, saved, expected);
  const std::string base = base_model_reference(s.config, s.model);
  require(saved.base_model == base,
          file + ": base model differs: saved '" + io::printable(saved.base_model) +
              "', this run's '" + base + "' ([checkpoint] init_from / [model] from_hf / [train] seed)");
  if (!saved.data_fingerprint.empty() && !expected.data_fingerprint.empty() &&
      saved.data_fingerprint != expected.data_fingerprint) {
    const std::string what = file + ": the training data differ from the data it was trained on "
                             "(fingerprint " + saved.data_fingerprint + ", now " +
                             expected.data_fingerprint + ")";
    require(s.config.checkpoint.allow_data_change,
            what + "; set [checkpoint] allow_data_change = true to resume anyway");
    if (s.grid.rank() == 0) {
      spdlog::warn("{}; resuming anyway ([checkpoint] allow_data_change): the sampler position "
                   "now indexes other examples", what);
    }
  }
  io::TrainingTensors t = trainable_tensors(s);
  core::OptimizerState state;
  state.step = saved.optimizer_step;
  for (const auto& p : t.params) {
    state.exp_avg.push_back(torch::zeros_like(p));
    state.exp_avg_sq.push_back(torch::zeros_like(p));
  }
  t.exp_avg = state.exp_avg;
  t.exp_avg_sq = state.exp_avg_sq;
  // RNG streams: exact only on the layout that saved them (the rows are per rank).
  const auto& dims = s.grid.dims();
  if (saved.world == dims.world() && saved.tp == dims.tp && saved.format_version >= 2) {
    for (const auto& [stream, rng] : parallel::rng_tracker().get_states()) {
      t.rng[stream] = torch::empty({1, rng.numel()}, torch::kByte);
    }
  }
  auto tensors = io::training_checkpoint_tensors(t, writer_layout(s.grid));
  io::load_sharded_tensors(file, tensors);
  s.step.optimizer().load_state(state);
  s.sampler.set_consumed_samples(saved.consumed_samples);
  s.steps_done = saved.step;
  if (!t.rng.empty()) {
    std::map<std::string, torch::Tensor> states;
    for (auto& [stream, row] : t.rng) states[stream] = row.reshape({-1}).contiguous();
    parallel::rng_tracker().set_states(states);
  }
  if (s.grid.rank() == 0) {
    spdlog::info("resumed from {} at step {} (saved at {}, now {}{})", file, saved.step,
                 saved.layout, expected.layout,
                 t.rng.empty() ? "; RNG streams re-seeded: another layout" : "");
  }
}

}  // namespace shardtune::launch
