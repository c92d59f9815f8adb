// MPI bootstrap: the process's view of the job (rank, world, node, local rank) and its intra-op
// thread count. Standard MPI only, so it works the same under mpirun, mpiexec and srun.
//
// Typical use in main():
//     launch::MpiRuntime mpi(&argc, &argv);          // MPI_Init_thread ... MPI_Finalize (RAII)
//     auto grid = parallel::RankGrid::create(mpi.world(), tp);
//     if (auto w = parallel::tp_span_warning(grid.dims(), mpi.node_of_rank()); !w.empty()) log(w);
//     try { ... } catch (...) { report; launch::abort_all(code); }
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace shardtune::parallel {
class MpiCommunicator;
}

namespace shardtune::launch {

// MPI's thread-support levels, in increasing order (MPI_THREAD_SINGLE .. MPI_THREAD_MULTIPLE).
enum class ThreadLevel { kSingle = 0, kFunneled = 1, kSerialized = 2, kMultiple = 3 };
const char* to_string(ThreadLevel level);

// The intra-op thread count for one rank, and why (for the startup log).
struct ThreadChoice {
  int threads = 1;
  std::string reason;
};

// Pure. `env_override` is the value of SHARDTUNE_THREADS (nullptr or "" when unset) and wins when
// set; it must be a positive integer, else UserError. Otherwise
// threads = max(1, cpus_in_mask / ranks_sharing_cpus), where cpus_in_mask counts the CPUs in this
// process's affinity mask and ranks_sharing_cpus the ranks on this node whose masks overlap it
// (this rank included). So a rank bound to its own cores (mpirun's default binding) uses all of
// them, and unbound ranks (mask = every CPU) split the node evenly.
ThreadChoice choose_threads(int cpus_in_mask, int ranks_sharing_cpus, const char* env_override);

// RAII for MPI. The constructor:
//  - calls MPI_Init_thread requesting `required` (default MPI_THREAD_SERIALIZED: one thread at a
//    time calls MPI, as the communicators need) and throws UserError if MPI provides less. If MPI
//    is already initialized (e.g. by a test's main), it only checks the level and will not
//    finalize;
//  - finds rank, world size, node-local rank and size (MPI_Comm_split_type with
//    MPI_COMM_TYPE_SHARED), and dense node ids of every rank (for tp_span_warning);
//  - picks the intra-op thread count (choose_threads with sched_getaffinity and the local ranks'
//    masks) and, if `set_threads`, applies it with at::set_num_threads and makes LibTorch's CPU
//    allocator the caching one of core/kernels/caching_allocator.h (its default cap divided among
//    the node's ranks): a process that computes gets both, one that only talks MPI neither.
// Collective over MPI_COMM_WORLD. One per process; not copyable. The destructor calls
// MPI_Finalize (if this object initialized MPI); every communicator should be gone by then.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv, ThreadLevel required = ThreadLevel::kSerialized,
             bool set_threads = true);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }  // among ranks on this node
  int local_size() const { return local_size_; }
  int node_id() const { return node_of_rank_[rank_]; }  // dense, in [0, num_nodes)
  int num_nodes() const { return num_nodes_; }
  // node_of_rank()[r] = node id of world rank r; size world_size().
  const std::vector<int>& node_of_rank() const { return node_of_rank_; }
  ThreadLevel provided() const { return provided_; }
  int threads() const { return threads_.threads; }
  const std::string& threads_reason() const { return threads_.reason; }

  // A communicator over a dup of MPI_COMM_WORLD (label "world"), made at construction.
  const std::shared_ptr<parallel::MpiCommunicator>& world() const { return world_; }

  // "rank 3/8, node 1/2 (local rank 1/4), 2 intra-op threads (...)", for the startup log.
  std::string describe() const;

 private:
  bool owns_mpi_ = false;
  ThreadLevel provided_ = ThreadLevel::kSingle;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int num_nodes_ = 1;
  std::vector<int> node_of_rank_;
  ThreadChoice threads_;
  std::shared_ptr<parallel::MpiCommunicator> world_;
};

// Ends every rank of the job with exit code `code` (MPI_Abort on MPI_COMM_WORLD), so one failing
// rank never leaves the others hanging in a collective. Falls back to _Exit when MPI is not
// running. Use when an exception escapes on some ranks only.
[[noreturn]] void abort_all(int code);

}  // namespace shardtune::launch
