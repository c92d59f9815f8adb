// Loading a Hugging Face model folder (io::load_hf_weights) against `dd` reading the same files.
//
//   mpirun -np N bench_hf_load DIR [--reps R] [--dtype float32|bfloat16] [--hidden H]
//                                  [--layers L] [--vocab V] [--shard-mb M]
//
// DIR: an HF folder to load; when it has no config.json, rank 0 first writes a synthetic llama
// there (io::export_hf of a seeded model: H hidden, L layers, V vocabulary, intermediate 2.75 H,
// stored as --dtype, shards of M MB; defaults 1024, 8, 32000, float32, 200: ~170M parameters,
// 0.68 GB in float32). The model is built once per rank at TP = N (build_model is not timed).
// Each repetition, for both a cold and a warm page cache:
//   ours: io::load_hf_weights from a barrier to the slowest rank's return (header parsing, the
//         mmap of every file, each rank copying and converting its slices into the parameters);
//   dd:   rank 0 runs `dd if=<file> of=/dev/null bs=16M` over every file of the folder.
// Cold: before each of the two reads, rank 0 drops the folder's pages from the page cache with
// posix_fadvise(DONTNEED) (no root needed); the order of ours and dd alternates between
// repetitions. Warm: both right after a read of the same files.
// MB/s = folder bytes / seconds (1 MB = 1e6 bytes); medians; ratio = dd seconds / our seconds
// (the target is >= 0.5). At TP > 1 every rank reads only its slices, so the bytes each reads are
// about 1/TP of the folder (plus replicated tensors) while dd reads all of it once. Verifies the
// loaded parameters against a one-time full read before timing. Prints JSON on rank 0.
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

#include "core/model.h"
#include "core/shard.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "io/safetensors.h"
#include "launch/bootstrap.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;
namespace fs = std::filesystem;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::vector<std::string> folder_files(const std::string& dir) {
  std::vector<std::string> files;
  const auto folder = io::safetensors::Folder::open(dir);
  for (const auto& f : folder.files()) files.push_back(f->path());
  return files;
}

void drop_cache(const std::vector<std::string>& files) {
  for (const auto& file : files) {
    const int fd = ::open(file.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

double run_dd(const std::vector<std::string>& files) {
  const double t0 = now();
  for (const auto& f : files) {
    const std::string command = "dd if=" + f + " of=/dev/null bs=16M status=none";
    if (std::system(command.c_str()) != 0) {
      std::fprintf(stderr, "bench_hf_load: `%s` failed\n", command.c_str());
      std::exit(1);
    }
  }
  return now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  if (argc < 2) {
    if (mpi.rank() == 0)
      std::fprintf(stderr, "usage: bench_hf_load DIR [--reps R] [--dtype D] ...\n");
    return 2;
  }
  const std::string dir = argv[1];
  int reps = 3;
  std::string dtype = "float32";
  int64_t hidden = 1024, layers = 8, vocab = 32000, shard_mb = 200;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--reps") reps = std::atoi(v.c_str());
    if (k == "--dtype") dtype = v;
    if (k == "--hidden") hidden = std::atoll(v.c_str());
    if (k == "--layers") layers = std::atoll(v.c_str());
    if (k == "--vocab") vocab = std::atoll(v.c_str());
    if (k == "--shard-mb") shard_mb = std::atoll(v.c_str());
  }
  const bool root = mpi.rank() == 0;
  if (root && !fs::exists(fs::path(dir) / "config.json")) {
    core::ModelConfig c;
    c.family = "llama";
    c.vocab_size = vocab;
    c.hidden_size = hidden;
    c.num_layers = layers;
    c.num_heads = hidden / 64;
    c.num_kv_heads = std::max<int64_t>(1, hidden / 256);
    c.intermediate_size = hidden * 11 / 4;
    c.max_position_embeddings = 2048;
    auto model = core::build_model(c, 1);
    io::HfExportOptions options;
    options.dtype = dtype;
    options.max_shard_bytes = static_cast<uint64_t>(shard_mb) * 1'000'000;
    io::export_hf(*model, dir, true, options);
    std::fprintf(stderr, "bench_hf_load: wrote a synthetic model to %s\n", dir.c_str());
  }
  quiet_barrier();

  auto grid = parallel::RankGrid::create(mpi.world(), mpi.world_size());
  const auto hf = io::read_hf_config(dir);
  auto model = core::build_model(hf.config, 1, parallel::TpGroup{grid.tp_ptr()});
  const auto files = folder_files(dir);
  uint64_t bytes = 0;
  for (const auto& f : files) bytes += fs::file_size(f);

  // Correctness first: the timed loads must give what a plain full read gives.
  io::load_hf_weights(*model, dir);
  {
    auto folder = io::safetensors::Folder::open(dir);
    auto params = model->named_parameters();
    for (const auto& [name, spec] : core::parameter_specs(*model)) {
      const std::string key =
          folder.find(name) ? name : name.substr(name.find('.') + 1);  // GPT-2 hub
      const auto* info = folder.find(key);
      auto full = torch::empty(info->shape);
      folder.file_of(key)->read(*info, io::safetensors::Dtype::kF32, full.data_ptr(),
                                full.nbytes());
      if (io::is_conv1d_weight(hf.config, name)) full = full.t();
      if (!torch::equal(core::real_part(params[name].detach(), spec), core::slice_of(full, spec))) {
        std::fprintf(stderr, "bench_hf_load: %s differs from a full read\n", name.c_str());
        return 1;
      }
    }
  }

  std::vector<double> cold, dd_cold, warm, dd_warm, cold_ratio, warm_ratio;
  uint64_t rank_bytes = 0;
  for (int r = 0; r < reps; ++r) {
    double ours = 0, theirs = 0;
    for (int turn = 0; turn < 2; ++turn) {
      if (root) drop_cache(files);
      quiet_barrier();
      if ((turn == 0) == (r % 2 == 0)) {
        const double t0 = now();
        rank_bytes = io::load_hf_weights(*model, dir).bytes_read;
        ours = slowest(now() - t0);
      } else {
        if (root) theirs = run_dd(files);
        quiet_barrier();
      }
    }
    cold.push_back(ours);
    if (root) {
      dd_cold.push_back(theirs);
      cold_ratio.push_back(theirs / ours);
    }
    // Warm: the pages are now cached; time both again.
    quiet_barrier();
    const double t0 = now();
    io::load_hf_weights(*model, dir);
    const double w = slowest(now() - t0);
    warm.push_back(w);
    if (root) {
      const double d = run_dd(files);
      dd_warm.push_back(d);
      warm_ratio.push_back(d / w);
    }
    quiet_barrier();
  }
  if (root) {
    const double c = median(cold), dc = median(dd_cold), w = median(warm), dw = median(dd_warm);
    std::printf(
        "{\"np\": %d, \"reps\": %d, \"files\": %zu, \"folder_bytes\": %llu, "
        "\"rank0_bytes_read\": %llu, \"dtype\": \"%s\", "
        "\"cold_s\": %.3f, \"cold_MBps\": %.1f, \"dd_cold_s\": %.3f, \"cold_vs_dd\": %.2f, "
        "\"cold_vs_dd_paired_median\": %.2f, \"warm_s\": %.3f, \"warm_MBps\": %.1f, "
        "\"dd_warm_s\": %.3f, \"warm_vs_dd\": %.2f, \"warm_vs_dd_paired_median\": %.2f}\n",
        mpi.world_size(), reps, files.size(), static_cast<unsigned long long>(bytes),
        static_cast<unsigned long long>(rank_bytes), hf.dtype.c_str(), c, bytes / c / 1e6, dc,
        dc / c, median(cold_ratio), w, bytes / w / 1e6, dw, dw / w, median(warm_ratio));
  }
  return 0;
}
