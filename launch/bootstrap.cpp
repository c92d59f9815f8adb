#include "launch/bootstrap.h"

#include <mpi.h>
#include <sched.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>

#include "base/env.h"
#include "base/errors.h"
#include "core/kernels/caching_allocator.h"
#include "parallel/mpi_communicator.h"

namespace shardtune::launch {

namespace {

void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  throw std::runtime_error(std::string("[launch] ") + call + " failed: " +
                           std::string(text, length));
}

int to_mpi(ThreadLevel level) {
  switch (level) {
    case ThreadLevel::kSingle: return MPI_THREAD_SINGLE;
    case ThreadLevel::kFunneled: return MPI_THREAD_FUNNELED;
    case ThreadLevel::kSerialized: return MPI_THREAD_SERIALIZED;
    case ThreadLevel::kMultiple: return MPI_THREAD_MULTIPLE;
  }
  return MPI_THREAD_SINGLE;
}

ThreadLevel from_mpi(int level) {
  if (level >= MPI_THREAD_MULTIPLE) return ThreadLevel::kMultiple;
  if (level >= MPI_THREAD_SERIALIZED) return ThreadLevel::kSerialized;
  if (level >= MPI_THREAD_FUNNELED) return ThreadLevel::kFunneled;
  return ThreadLevel::kSingle;
}

}  // namespace

const char* to_string(ThreadLevel level) {
  switch (level) {
    case ThreadLevel::kSingle: return "MPI_THREAD_SINGLE";
    case ThreadLevel::kFunneled: return "MPI_THREAD_FUNNELED";
    case ThreadLevel::kSerialized: return "MPI_THREAD_SERIALIZED";
    case ThreadLevel::kMultiple: return "MPI_THREAD_MULTIPLE";
  }
  return "?";
}

ThreadChoice choose_threads(int cpus_in_mask, int ranks_sharing_cpus, const char* env_override) {
  if (env_override != nullptr && *env_override != '\0') {
    errno = 0;
    char* end = nullptr;
    const long value = std::strtol(env_override, &end, 10);
    require(errno == 0 && end != env_override && *end == '\0' && value >= 1 && value <= 4096,
            std::string("[launch] SHARDTUNE_THREADS=") + env_override +
                ": expected a positive integer (intra-op threads per rank)");
    return {static_cast<int>(value), "SHARDTUNE_THREADS=" + std::to_string(value)};
  }
  const int cpus = std::max(1, cpus_in_mask);
  const int sharing = std::max(1, ranks_sharing_cpus);
  const int threads = std::max(1, cpus / sharing);
  std::ostringstream reason;
  reason << cpus << " CPU" << (cpus == 1 ? "" : "s") << " in this rank's affinity mask";
  if (sharing > 1) reason << ", shared by " << sharing << " ranks on this node";
  return {threads, reason.str()};
}

MpiRuntime::MpiRuntime(int* argc, char*** argv, ThreadLevel required, bool set_threads) {
  int initialized = 0;
  mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    mpi_check(MPI_Query_thread(&provided), "MPI_Query_thread");
  } else {
    mpi_check(MPI_Init_thread(argc, argv, to_mpi(required), &provided), "MPI_Init_thread");
    owns_mpi_ = true;
  }
  provided_ = from_mpi(provided);
  if (provided < to_mpi(required)) {
    if (owns_mpi_) MPI_Finalize();
    owns_mpi_ = false;
    throw UserError(std::string("[launch] the MPI library provides ") + to_string(provided_) +
                    " but ShardTune needs " + to_string(required) +
                    ": use an MPI built with thread support (Open MPI and MPICH are)");
  }
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &world_size_), "MPI_Comm_size");

  MPI_Comm node = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  mpi_check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(node, &local_size_), "MPI_Comm_size");

  // Node ids: name each node by the world rank of its local rank 0, then number those densely in
  // rank order, so node 0 holds rank 0.
  int leader = rank_;
  mpi_check(MPI_Bcast(&leader, 1, MPI_INT, 0, node), "MPI_Bcast");
  std::vector<int> leaders(world_size_);
  mpi_check(MPI_Allgather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, MPI_COMM_WORLD),
            "MPI_Allgather");
  std::map<int, int> dense;
  for (int l : leaders) dense.emplace(l, 0);
  int next = 0;
  for (auto& entry : dense) entry.second = next++;
  num_nodes_ = next;
  node_of_rank_.resize(world_size_);
  for (int r = 0; r < world_size_; ++r) node_of_rank_[r] = dense[leaders[r]];

  // Threads: count the local ranks whose CPU sets overlap ours. Bound ranks (mpirun's default
  // --bind-to core) each own their CPUs; unbound ones all see every CPU and must share them.
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof mine, &mine) != 0) {
    CPU_ZERO(&mine);
    CPU_SET(0, &mine);  // unknown: assume one CPU rather than oversubscribe
  }
  std::vector<cpu_set_t> masks(local_size_);
  mpi_check(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, masks.data(), sizeof mine, MPI_BYTE, node),
            "MPI_Allgather");
  MPI_Comm_free(&node);
  int sharing = 0;
  for (cpu_set_t& other : masks) {
    cpu_set_t both;
    CPU_AND(&both, &mine, &other);
    if (CPU_COUNT(&both) > 0) ++sharing;
  }
  threads_ = choose_threads(CPU_COUNT(&mine), sharing, base::read_env(base::kEnvThreads));
  if (set_threads) {
    at::set_num_threads(threads_.threads);
    // Large CPU tensors are reused across steps instead of being unmapped and faulted in again
    // (core/kernels/caching_allocator.h); the ranks of a node share the default cap.
    kernels::install_caching_cpu_allocator(kernels::default_cpu_cache_cap() / local_size_);
  }

  parallel::MpiOptions options;
  if (const char* v = base::read_env(base::kEnvMpiNonblocking); v && std::string(v) == "1") {
    options.eager_reduce_bytes = -1;
  }
  world_ = parallel::MpiCommunicator::world("world", options);
}

MpiRuntime::~MpiRuntime() {
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

std::string MpiRuntime::describe() const {
  std::ostringstream s;
  s << "rank " << rank_ << "/" << world_size_ << ", node " << node_id() << "/" << num_nodes_
    << " (local rank " << local_rank_ << "/" << local_size_ << "), " << threads_.threads
    << " intra-op thread" << (threads_.threads == 1 ? "" : "s") << " (" << threads_.reason << ")";
  return s.str();
}

void abort_all(int code) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace shardtune::launch
