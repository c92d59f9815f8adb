// Checkpoint I/O benchmark: write and read throughput of a sharded checkpoint of the benchmark
// model (bench_config.h's ~30M llama: parameters + AdamW exp_avg + exp_avg_sq, 3 x 4 bytes per
// parameter), against `dd` of the same bytes to the same disk, measured in the same repetition
// (benchmarks/run_checkpoint_bench.sh).
//
//   mpirun -np N bench_checkpoint DIR [--tp T] [--reps R] [--xfer collective|independent]
//
// Layout: tp = T (default N), dp = N / T. Each tensor is written by one rank per piece exactly as
// Trainer::save does (TP shards by their TP rank, DP replicas taking turns by tensor index).
//   write: io::save_sharded_checkpoint (checksums, collective HDF5 create/write, flush, fsync on
//          every rank, rename, `latest`), timed from a barrier to the slowest rank's return;
//   read:  io::load_sharded_tensors of every tensor at this rank's spec into existing tensors
//          (as a resuming trainer's), after the file's pages are dropped from the page cache
//          (posix_fadvise DONTNEED after fsync), so the read comes from the disk; slowest rank.
//   dd:    in every repetition, right after our write, rank 0 runs `dd if=<checkpoint>
//          of=DIR/dd.bin bs=4M conv=fsync` (source in the page cache, as our tensors are in
//          memory), and `dd if=<checkpoint> of=/dev/null bs=4M` after the same cache drop as our
//          read. The two reads alternate in order between repetitions (ours first in even ones),
//          so neither always meets the disk first after a write. Ranks that wait (for dd, or for
//          the slowest rank) wait in a sleeping barrier, not MPI's busy poll, so they do not take
//          cores from the process being timed on a machine with fewer cores than ranks.
// MB/s = file bytes / time (1 MB = 1e6 bytes); medians over R repetitions; ratio = dd seconds /
// our seconds (>= 0.5 is the target). Prints JSON on rank 0.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_config.h"
#include "core/model.h"
#include "core/shard.h"
#include "io/checkpoint.h"
#include "launch/bootstrap.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A barrier whose waiters sleep between polls instead of spinning.
void quiet_barrier() {
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  int done = 0;
  while (!done) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (!done) ::usleep(200);
  }
}

double slowest(double t) {
  quiet_barrier();
  double out = 0;
  MPI_Allreduce(&t, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void drop_cache(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Seconds one `dd <args>` took (fork and exec included, a few ms); exits on failure.
double run_dd(const std::string& args) {
  const double t0 = now();
  const std::string command = "dd " + args + " status=none";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "bench_checkpoint: `%s` failed\n", command.c_str());
    std::exit(1);
  }
  return now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  if (argc < 2) {
    if (mpi.rank() == 0) std::fprintf(stderr, "usage: bench_checkpoint DIR [--tp T] [--reps R]\n");
    return 2;
  }
  const std::string dir = argv[1];
  int tp = mpi.world_size(), reps = 3;
  io::SaveOptions save_options;
  save_options.keep_last = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--tp") tp = std::atoi(argv[i + 1]);
    if (k == "--reps") reps = std::atoi(argv[i + 1]);
    if (k == "--xfer") save_options.collective_transfer = std::string(argv[i + 1]) == "collective";
  }
  auto grid = parallel::RankGrid::create(mpi.world(), tp);
  const auto config = bench::llama30m_config(dir, 128, 4);
  core::validate_tp(config.model, tp);
  auto model = core::build_model(config.model, 1234, parallel::TpGroup{grid.tp_ptr()});
  const int world = grid.dims().world(), dp = grid.dims().dp;

  // A training checkpoint's tensors (io/checkpoint/schema.h) without RNG streams: every parameter
  // and random moments (same seed on every rank: replicated optimizer tensors must be equal across
  // ranks, as in training).
  io::TrainingTensors contents;
  auto params = model->named_parameters();
  torch::manual_seed(7);
  int64_t global_bytes = 0;
  for (const auto& [name, spec] : core::parameter_specs(*model)) {
    contents.names.push_back(name);
    contents.specs.push_back(spec);
    contents.params.push_back(params[name].detach());
    contents.exp_avg.push_back(torch::randn_like(params[name]).detach());
    int64_t n = 3 * 4;
    for (auto d : spec.global_shape) n *= d;
    global_bytes += n;
  }
  for (const auto& p : contents.params) contents.exp_avg_sq.push_back(torch::randn_like(p));
  const auto tensors = io::training_checkpoint_tensors(
      contents, {grid.rank(), world, grid.coord().dp_rank, dp});
  io::CheckpointInfo info;
  info.shardtune_version = "bench";
  info.model_config = config.model.to_json();
  info.strategy = "sft";
  info.layout = io::layout_name(tp, dp, 0);
  info.tp = tp;
  info.dp = dp;
  info.world = world;

  std::vector<double> writes, reads, dd_writes, dd_reads, write_ratios, read_ratios;
  std::string file;
  const bool root = mpi.rank() == 0;
  const std::string dd_file = (std::filesystem::path(dir) / "dd.bin").string();
  for (int r = 0; r < reps; ++r) {
    info.step = r + 1;
    quiet_barrier();
    double t0 = now();
    file = io::save_sharded_checkpoint(dir, info, tensors, grid.world(), save_options);
    writes.push_back(slowest(now() - t0));
    if (root) {
      run_dd("if=" + file + " of=/dev/null bs=4M");  // dd's source in the page cache, as ours
      dd_writes.push_back(run_dd("if=" + file + " of=" + dd_file + " bs=4M conv=fsync"));
      write_ratios.push_back(dd_writes.back() / writes.back());
      std::filesystem::remove(dd_file);
    }
    std::vector<io::ShardedTensor> dest;
    for (const auto& t : tensors) {
      // Existing (touched) memory, as a resuming trainer's parameters and optimizer state.
      dest.push_back({t.path, torch::zeros_like(t.local), t.spec, false});
    }
    double ours = 0, theirs = 0;
    for (int turn = 0; turn < 2; ++turn) {
      if (root) drop_cache(file);
      quiet_barrier();
      if ((turn == 0) == (r % 2 == 0)) {
        t0 = now();
        io::load_sharded_tensors(file, dest);
        ours = slowest(now() - t0);
      } else {
        if (root) theirs = run_dd("if=" + file + " of=/dev/null bs=4M");
        quiet_barrier();
      }
    }
    reads.push_back(ours);
    if (root) {
      dd_reads.push_back(theirs);
      read_ratios.push_back(theirs / ours);
    }
    for (size_t i = 0; i < dest.size(); ++i) {
      auto a = core::real_part(dest[i].local, dest[i].spec);
      if (!torch::equal(a, core::real_part(tensors[i].local, tensors[i].spec))) {
        std::fprintf(stderr, "bench_checkpoint: %s read back differs\n", tensors[i].path.c_str());
        return 1;
      }
    }
  }
  if (root) {
    const double bytes = static_cast<double>(std::filesystem::file_size(file));
    const char* xfer = save_options.collective_transfer ? "collective" : "independent";
    const double w = median(writes), dw = median(dd_writes), rd = median(reads),
                 drd = median(dd_reads);
    std::printf("{\"np\": %d, \"tp\": %d, \"dp\": %d, \"xfer\": \"%s\", \"reps\": %d, "
                "\"file_bytes\": %.0f, \"tensor_bytes\": %lld, \"write_s\": %.3f, "
                "\"write_MBps\": %.1f, \"dd_write_s\": %.3f, \"write_vs_dd\": %.2f, "
                "\"write_vs_dd_paired_median\": %.2f, \"read_s\": %.3f, \"read_MBps\": %.1f, "
                "\"dd_read_s\": %.3f, \"read_vs_dd\": %.2f, \"read_vs_dd_paired_median\": %.2f}\n",
                world, tp, dp, xfer, reps, bytes,
                static_cast<long long>(global_bytes), w, bytes / w / 1e6, dw, dw / w,
                median(write_ratios), rd, bytes / rd / 1e6, drd, drd / rd, median(read_ratios));
  }
  return 0;
}
