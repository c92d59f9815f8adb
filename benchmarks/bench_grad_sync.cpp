// Data-parallel gradient-sync benchmark: how fast the bucketed GradSync all-reduce is next to raw
// MPI_Allreduce, and how much of it a training step hides behind backward.
//
//   mpirun -np N bench_grad_sync [--bench.KEY=VALUE ...] [--section.key=value ...]
//
// Part 1 (bench "busbw"): for two parameter sets with the shapes of a llama model (the Trainer's
// model below, 128.5 MiB of fp32 gradients at the defaults, and a smaller one of 40.1 MiB: hidden
// 256, ffn 688), times with a barrier before every repetition and the slowest rank's time per
// repetition, median over --bench.reps:
//   gradsync_finish     GradSync (default 25 MiB buckets) over the parameters: a backward of
//                       sum(p * 1) with set_sync(false) (untimed), then finish(), which launches
//                       every bucket's all-reduce and waits for them (timed: pure communication);
//   gradsync_backward   backward with sync on (buckets launched from the hooks) + finish(), minus
//                       the same backward with sync off: communication as seen by a step;
//   raw_flat            one blocking MPI_Allreduce(MPI_IN_PLACE, MPI_FLOAT, MPI_SUM) of all bytes;
//   raw_buckets         blocking MPI_Allreduce of each bucket's bytes, in sequence;
//   raw_ibuckets        MPI_Iallreduce of every bucket, then MPI_Waitall: GradSync's MPI pattern
//                       under SHARDTUNE_MPI_NONBLOCKING=1, without GradSync (separates wrapper
//                       cost from MPI's non-blocking path; see docs/benchmarks-comm.md).
// busbw = bytes * 2 (n - 1) / n / time (nccl-tests' convention). Then one "busbw_ratio" line:
// gradsync_finish busbw / raw_flat busbw (target >= 0.9).
//
// Part 2 (bench "overlap"): the Trainer's model (bench_train's ~30M llama; seq 128, micro-batch 4
// here to keep the run short) on synthetic tokens. Alternating, per repetition:
//   t_sync    one Trainer::step() with dp = world (gradient sync on);
//   t_nosync  one step of a Trainer on a one-rank local grid (global batch = the per-rank batch),
//             run on every rank at the same time so compute contends for the cores alike.
// t_comm = part 1's gradsync_finish time for the same parameters. hidden fraction =
// 1 - (t_sync - t_nosync) / t_comm, clamped to [0, 1].
//
// Bench options: --bench.reps=7 --bench.warmup=2 --bench.train_reps=7 --bench.comm=1
// --bench.train=1 --bench.small=1 (0 skips a part). Everything else goes to the Trainer's config
// (e.g. --train.seq_len=256 --train.micro_batch=8). Prints JSON lines on rank 0.
#include <mpi.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_config.h"
#include "core/model.h"
#include "core/model_config.h"
#include "launch/bootstrap.h"
#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/grad_sync.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchOptions {
  int reps = 7;
  int warmup = 2;
  int train_reps = 7;
  bool comm = true;
  bool train = true;
  bool small = true;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double max_over_ranks(double x, MPI_Comm comm) {
  double out = 0.0;
  MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_MAX, comm);
  return out;
}

// Runs pre() (untimed), a barrier, then body() (timed); the rep's time is the slowest rank's.
// Returns the median over `reps` after `warmup` untimed runs.
double timed(MPI_Comm comm, int warmup, int reps, const std::function<void()>& pre,
             const std::function<void()>& body) {
  std::vector<double> times;
  for (int i = 0; i < warmup + reps; ++i) {
    pre();
    MPI_Barrier(comm);
    const auto t0 = Clock::now();
    body();
    const double t = max_over_ranks(seconds_since(t0), comm);
    if (i >= warmup) times.push_back(t);
  }
  return median(times);
}

double busbw_gbps(double bytes, int world, double seconds) {
  return bytes * 2.0 * (world - 1) / world / seconds / 1e9;
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("bench_grad_sync: ") + what);
}

struct CommResult {
  double bytes = 0;
  int64_t buckets = 0;
  double gradsync_finish_s = 0;
  double raw_flat_s = 0;
};

// Part 1 for one parameter set (the parameters of `model_config`'s model).
CommResult bench_comm(const std::string& set_name, const core::ModelConfig& model_config,
                      double bucket_mb, parallel::MpiCommunicator& world, const BenchOptions& o) {
  const MPI_Comm comm = world.native_handle();
  const int n = world.size();
  auto model = core::build_model(model_config, 1234);
  std::vector<torch::Tensor> params = model->parameters();
  int64_t numel = 0;
  for (auto& p : params) numel += p.numel();
  const double bytes = static_cast<double>(numel) * 4.0;
  const auto bucket_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  parallel::GradSync sync(params, world, bucket_bytes);
  std::vector<int64_t> bucket_numel;
  for (int64_t i = 0; i < sync.num_buckets(); ++i) bucket_numel.push_back(sync.bucket_numel(i));

  torch::Tensor loss;
  auto build_loss = [&]() {
    loss = torch::zeros({});
    for (auto& p : params) loss = loss + (p * 1).sum();
  };

  // (a) finish() after a backward with sync off: every bucket is launched by finish().
  const double t_finish = timed(
      comm, o.warmup, o.reps,
      [&]() {
        sync.zero_grad();
        sync.set_sync(false);
        build_loss();
        loss.backward();
      },
      [&]() { sync.finish(); });
  // Correctness of what was timed: every gradient element is 1 on each rank, so n after the sum.
  double worst = 0.0;
  for (auto& p : params) {
    worst = std::max(worst, (p.grad() - n).abs().max().item<double>());
  }
  if (worst > 0) throw std::runtime_error("bench_grad_sync: GradSync result is wrong");

  // (a') backward with sync on + finish, minus backward with sync off.
  const double t_bwd_sync = timed(
      comm, o.warmup, o.reps,
      [&]() {
        sync.zero_grad();
        sync.set_sync(true);
        build_loss();
      },
      [&]() {
        loss.backward();
        sync.finish();
      });
  const double t_bwd_nosync = timed(
      comm, o.warmup, o.reps,
      [&]() {
        sync.zero_grad();
        sync.set_sync(false);
        build_loss();
      },
      [&]() { loss.backward(); });
  sync.finish();  // leaves GradSync in a clean state (the last backward had sync off)
  sync.set_sync(true);

  // (b) raw MPI on one flat buffer of the same bytes.
  auto flat = torch::empty({numel}, torch::kFloat);
  float* base = flat.data_ptr<float>();
  auto refill = [&]() { flat.fill_(1.0f); };
  const double t_raw_flat = timed(comm, o.warmup, o.reps, refill, [&]() {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, base, static_cast<int>(numel), MPI_FLOAT, MPI_SUM, comm),
              "MPI_Allreduce");
  });
  const double t_raw_buckets = timed(comm, o.warmup, o.reps, refill, [&]() {
    int64_t off = 0;
    for (int64_t k : bucket_numel) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, base + off, static_cast<int>(k), MPI_FLOAT, MPI_SUM,
                              comm),
                "MPI_Allreduce");
      off += k;
    }
  });
  const double t_raw_ibuckets = timed(comm, o.warmup, o.reps, refill, [&]() {
    std::vector<MPI_Request> req(bucket_numel.size(), MPI_REQUEST_NULL);
    int64_t off = 0;
    for (size_t i = 0; i < bucket_numel.size(); ++i) {
      check_mpi(MPI_Iallreduce(MPI_IN_PLACE, base + off, static_cast<int>(bucket_numel[i]),
                               MPI_FLOAT, MPI_SUM, comm, &req[i]),
                "MPI_Iallreduce");
      off += bucket_numel[i];
    }
    check_mpi(MPI_Waitall(static_cast<int>(req.size()), req.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall");
  });

  if (world.rank() == 0) {
    auto line = [&](const char* method, double t) {
      std::printf(
          "{\"bench\": \"busbw\", \"set\": \"%s\", \"world\": %d, \"bytes\": %.0f, "
          "\"params\": %zu, \"buckets\": %lld, \"method\": \"%s\", \"time_s\": %.5f, "
          "\"busbw_gbps\": %.3f}\n",
          set_name.c_str(), n, bytes, params.size(), static_cast<long long>(bucket_numel.size()),
          method, t, busbw_gbps(bytes, n, t));
    };
    line("gradsync_finish", t_finish);
    line("gradsync_backward", std::max(t_bwd_sync - t_bwd_nosync, 1e-9));
    line("raw_flat", t_raw_flat);
    line("raw_buckets", t_raw_buckets);
    line("raw_ibuckets", t_raw_ibuckets);
    const double ratio = t_raw_flat / t_finish;
    std::printf(
        "{\"bench\": \"busbw_ratio\", \"set\": \"%s\", \"world\": %d, "
        "\"gradsync_vs_raw_flat\": %.3f, \"gradsync_vs_raw_buckets\": %.3f, "
        "\"gradsync_vs_raw_ibuckets\": %.3f, \"backward_s_sync_off\": %.4f, "
        "\"backward_plus_finish_s_sync_on\": %.4f, \"target\": 0.9, \"met\": %s}\n",
        set_name.c_str(), n, ratio, t_raw_buckets / t_finish, t_raw_ibuckets / t_finish,
        t_bwd_nosync, t_bwd_sync, ratio >= 0.9 ? "true" : "false");
    std::fflush(stdout);
  }
  return {bytes, static_cast<int64_t>(bucket_numel.size()), t_finish, t_raw_flat};
}

// Part 2: Trainer steps with and without data-parallel communication.
void bench_overlap(const launch::Config& base, launch::MpiRuntime& mpi, double t_comm,
                   const BenchOptions& o) {
  const MPI_Comm comm = mpi.world()->native_handle();
  const int n = mpi.world_size();
  const std::string out = base.train.out_dir + "/rank" + std::to_string(mpi.rank());

  launch::Config dp_config = base;
  dp_config.train.global_batch = base.train.micro_batch * n;
  dp_config.train.out_dir = out + "/dp";
  auto dp_grid = parallel::RankGrid::create(mpi.world(), 1);
  launch::Trainer dp_trainer(dp_config, dp_grid);

  launch::Config local_config = base;
  local_config.train.global_batch = base.train.micro_batch;
  local_config.train.out_dir = out + "/local";
  auto local_grid =
      parallel::RankGrid::create(std::make_shared<parallel::LocalCommunicator>("world"), 1);
  launch::Trainer local_trainer(local_config, local_grid);

  auto time_step = [&](launch::Trainer& t) {
    MPI_Barrier(comm);
    const auto t0 = Clock::now();
    t.step();
    return max_over_ranks(seconds_since(t0), comm);
  };
  // Warm-up: allocations, first touch of the optimizer state.
  time_step(dp_trainer);
  time_step(local_trainer);
  std::vector<double> sync_times, nosync_times;
  for (int i = 0; i < o.train_reps; ++i) {
    sync_times.push_back(time_step(dp_trainer));
    nosync_times.push_back(time_step(local_trainer));
  }
  const double t_sync = median(sync_times);
  const double t_nosync = median(nosync_times);
  const double exposed = t_sync - t_nosync;
  const double hidden = std::clamp(1.0 - exposed / t_comm, 0.0, 1.0);
  if (mpi.rank() == 0) {
    std::printf(
        "{\"bench\": \"overlap\", \"world\": %d, \"threads\": %d, \"params\": %lld, "
        "\"seq_len\": %lld, \"micro_batch\": %lld, \"bucket_mb\": %.1f, \"reps\": %d, "
        "\"t_sync_s\": %.4f, \"t_nosync_s\": %.4f, \"t_comm_s\": %.4f, \"exposed_comm_s\": %.4f, "
        "\"hidden_fraction\": %.3f, \"t_sync_min_s\": %.4f, \"t_sync_max_s\": %.4f, "
        "\"t_nosync_min_s\": %.4f, \"t_nosync_max_s\": %.4f}\n",
        n, mpi.threads(), static_cast<long long>(core::parameter_count(base.model)),
        static_cast<long long>(base.train.seq_len), static_cast<long long>(base.train.micro_batch),
        base.parallel.bucket_mb, o.train_reps, t_sync, t_nosync, t_comm, exposed, hidden,
        *std::min_element(sync_times.begin(), sync_times.end()),
        *std::max_element(sync_times.begin(), sync_times.end()),
        *std::min_element(nosync_times.begin(), nosync_times.end()),
        *std::max_element(nosync_times.begin(), nosync_times.end()));
    std::fflush(stdout);
  }
}

bool take_bench_option(const std::string& arg, BenchOptions& o) {
  const std::string prefix = "--bench.";
  if (arg.rfind(prefix, 0) != 0) return false;
  const auto eq = arg.find('=');
  if (eq == std::string::npos) throw std::runtime_error("expected " + arg + "=VALUE");
  const std::string key = arg.substr(prefix.size(), eq - prefix.size());
  const int value = std::stoi(arg.substr(eq + 1));
  if (key == "reps") o.reps = std::max(1, value);
  else if (key == "warmup") o.warmup = std::max(0, value);
  else if (key == "train_reps") o.train_reps = std::max(1, value);
  else if (key == "comm") o.comm = value != 0;
  else if (key == "train") o.train = value != 0;
  else if (key == "small") o.small = value != 0;
  else throw std::runtime_error("unknown option --bench." + key);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  try {
    spdlog::set_level(spdlog::level::warn);  // the Trainers' startup lines would drown the JSON
    launch::Config c = bench::llama30m_config("runs/bench_grad_sync", /*seq_len=*/128,
                                              /*micro_batch=*/4);
    c.train.steps = 1000;  // only sets the LR schedule's length; steps are called one by one
    BenchOptions o;
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
      if (!take_bench_option(argv[i], o)) args.emplace_back(argv[i]);
    }
    std::string help;
    if (!launch::parse_config(args, c, help)) {
      if (mpi.rank() == 0) std::puts(help.c_str());
      return 0;
    }
    c.data.max_eval_samples = 0;
    if (mpi.rank() == 0) {
      std::printf("{\"bench\": \"setup\", \"world\": %d, \"threads\": %d, \"reps\": %d, "
                  "\"warmup\": %d, \"bucket_mb\": %.1f}\n",
                  mpi.world_size(), mpi.threads(), o.reps, o.warmup, c.parallel.bucket_mb);
      std::fflush(stdout);
    }
    auto& world = *mpi.world();
    double t_comm = 0.0;
    if (o.comm || o.train) {
      t_comm = bench_comm("model-h" + std::to_string(c.model.hidden_size), c.model,
                          c.parallel.bucket_mb, world, o)
                   .gradsync_finish_s;
    }
    if (o.comm && o.small) {
      core::ModelConfig small = c.model;
      small.hidden_size = 256;
      small.intermediate_size = 688;
      bench_comm("small-h256", small, c.parallel.bucket_mb, world, o);
    }
    if (o.train && mpi.world_size() > 1) bench_overlap(c, mpi, t_comm, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_grad_sync rank %d: %s\n", mpi.rank(), e.what());
    launch::abort_all(1);
  }
  return 0;
}
