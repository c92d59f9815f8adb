#include "parallel/mpi_communicator.h"

#include <cstdlib>

#include <ATen/MemoryOverlap.h>

#include <climits>
#include <cstring>
#include <utility>

namespace shardtune::parallel {

namespace {

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

[[noreturn]] void throw_mpi_error(int code, const char* call, const std::string& context,
                                  const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw CommunicationError(context + ": " + call + " failed with MPI error " +
                           std::to_string(code) + " (" + std::string(text, length) + ") at " +
                           base_name(file) + ":" + std::to_string(line));
}

// `context` is only built when the call fails.
#define SHARDTUNE_MPI_CHECK(call, context)                                               \
  do {                                                                                   \
    int shardtune_rc_ = (call);                                                          \
    if (shardtune_rc_ != MPI_SUCCESS)                                                    \
      throw_mpi_error(shardtune_rc_, #call, (context), __FILE__, __LINE__);              \
  } while (0)

int comm_rank(MPI_Comm comm) {
  int rank = 0;
  SHARDTUNE_MPI_CHECK(MPI_Comm_rank(comm, &rank), "[parallel] MpiCommunicator");
  return rank;
}

int comm_size(MPI_Comm comm) {
  int size = 0;
  SHARDTUNE_MPI_CHECK(MPI_Comm_size(comm, &size), "[parallel] MpiCommunicator");
  return size;
}

MPI_Comm dup_with_error_return(MPI_Comm comm) {
  MPI_Comm dup = MPI_COMM_NULL;
  SHARDTUNE_MPI_CHECK(MPI_Comm_dup(comm, &dup), "[parallel] MpiCommunicator");
  // Error codes, not MPI's default abort: the caller gets an exception naming the op and rank,
  // and the CLI then ends all ranks itself (abort_all).
  SHARDTUNE_MPI_CHECK(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN),
                      "[parallel] MpiCommunicator");
  return dup;
}

// The MPI type that moves elements of `dtype` bit for bit, and how many of them one element is.
std::pair<MPI_Datatype, int64_t> move_type(c10::ScalarType dtype) {
  switch (c10::elementSize(dtype)) {
    case 1: return {MPI_UINT8_T, 1};
    case 2: return {MPI_UINT16_T, 1};
    case 4: return {MPI_UINT32_T, 1};
    case 8: return {MPI_UINT64_T, 1};
    default: return {MPI_BYTE, static_cast<int64_t>(c10::elementSize(dtype))};
  }
}

// The dtype a reduction runs in on the wire; 16-bit floats are widened (no MPI type sums them).
bool reduce_wire_dtype(c10::ScalarType dtype, c10::ScalarType* wire, MPI_Datatype* type) {
  switch (dtype) {
    case c10::kFloat: *wire = dtype; *type = MPI_FLOAT; return true;
    case c10::kDouble: *wire = dtype; *type = MPI_DOUBLE; return true;
    case c10::kInt: *wire = dtype; *type = MPI_INT32_T; return true;
    case c10::kLong: *wire = dtype; *type = MPI_INT64_T; return true;
    case c10::kByte: *wire = dtype; *type = MPI_UINT8_T; return true;
    case c10::kChar: *wire = dtype; *type = MPI_INT8_T; return true;
    case c10::kShort: *wire = dtype; *type = MPI_INT16_T; return true;
    case c10::kHalf:
    case c10::kBFloat16: *wire = c10::kFloat; *type = MPI_FLOAT; return true;
    default: return false;
  }
}

// The dtype a reduction of `dtype` travels in and its MPI type; CommunicationError (message from
// `describe`) when MPI cannot reduce it.
template <typename Describe>
std::pair<c10::ScalarType, MPI_Datatype> reduce_type(c10::ScalarType dtype, Describe&& describe) {
  c10::ScalarType wire;
  MPI_Datatype type;
  if (!reduce_wire_dtype(dtype, &wire, &type)) {
    throw CommunicationError(describe(std::string("MPI cannot reduce dtype ") +
                                      c10::toString(dtype)));
  }
  return {wire, type};
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

// One in-flight MPI collective. `buffer_` is what MPI writes (contiguous, wire dtype); when it is
// a staging copy, `target_` is the caller's tensor that receives it on completion. `keep_` holds
// send-side staging alive until MPI is done reading it.
class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request request, std::string context, torch::Tensor buffer, torch::Tensor target,
          torch::Tensor keep, int64_t divisor)
      : request_(request),
        context_(std::move(context)),
        buffer_(std::move(buffer)),
        target_(std::move(target)),
        keep_(std::move(keep)),
        divisor_(divisor) {}

  ~MpiWork() override {
    // MPI may still be writing into buffers this object owns: never free them early. After
    // MPI_Finalize nothing can be waited on any more.
    if (done_ || mpi_finalized()) return;
    try {
      wait();
    } catch (...) {
      // A destructor must not throw; the failure already ended this collective.
    }
  }

  void wait() override {
    if (done_) return;
    SHARDTUNE_MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE), context_);
    finish();
  }

  bool is_completed() override {
    if (done_) return true;
    int flag = 0;
    SHARDTUNE_MPI_CHECK(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE), context_);
    if (flag) finish();
    return done_;
  }

 private:
  void finish() {
    done_ = true;  // even if a copy below throws, the MPI request is gone
    if (divisor_ > 1) buffer_.div_(divisor_);
    if (target_.defined()) target_.copy_(buffer_.view(target_.sizes()));
    buffer_ = torch::Tensor();
    target_ = torch::Tensor();
    keep_ = torch::Tensor();
  }

  MPI_Request request_;
  std::string context_;
  torch::Tensor buffer_;
  torch::Tensor target_;
  torch::Tensor keep_;
  int64_t divisor_;
  bool done_ = false;
};

// Output staging: MPI needs a contiguous buffer of the wire dtype. Returns {buffer, target}; target
// is undefined when t itself can be used.
std::pair<torch::Tensor, torch::Tensor> stage_output(torch::Tensor& t, c10::ScalarType wire,
                                                     bool copy_in) {
  if (t.is_contiguous() && t.scalar_type() == wire) return {t, torch::Tensor()};
  torch::Tensor buffer = copy_in ? t.reshape({-1}).to(wire, /*non_blocking=*/false, /*copy=*/true)
                                 : torch::empty({t.numel()}, t.options().dtype(wire));
  return {buffer.contiguous(), t};
}

// Input staging: a contiguous tensor of the wire dtype that MPI may read while the caller's
// out buffer is written, so it must not share memory with `out`.
torch::Tensor stage_input(const torch::Tensor& in, c10::ScalarType wire, const torch::Tensor& out) {
  torch::Tensor send = in.contiguous().to(wire);
  const bool is_callers = send.numel() > 0 && send.data_ptr() == in.data_ptr();
  if (is_callers && at::get_overlap_status(send, out) != at::MemOverlapStatus::No) {
    send = send.clone();
  }
  return send;
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string label, MpiOptions options)
    : MpiCommunicator(dup_with_error_return(comm), std::move(label), options, Adopt{}) {}

MpiCommunicator::MpiCommunicator(MPI_Comm owned, std::string label, MpiOptions options, Adopt)
    : Communicator(comm_rank(owned), comm_size(owned), std::move(label)), comm_(owned),
      options_(options) {}

MpiCommunicator::~MpiCommunicator() {
  // MPI_Comm_free is legal with collectives still pending (they complete first); after
  // MPI_Finalize it is not.
  if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
}

std::shared_ptr<MpiCommunicator> MpiCommunicator::world(std::string label, MpiOptions options) {
  return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, std::move(label), options);
}

std::shared_ptr<MpiCommunicator> MpiCommunicator::split(int color, int key,
                                                        std::string label) const {
  MPI_Comm sub = MPI_COMM_NULL;
  SHARDTUNE_MPI_CHECK(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub),
                      describe("split", "label " + label));
  if (sub == MPI_COMM_NULL) return nullptr;
  SHARDTUNE_MPI_CHECK(MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN),
                      describe("split", "label " + label));
  return std::shared_ptr<MpiCommunicator>(
      new MpiCommunicator(sub, std::move(label), options_, Adopt{}));
}

std::vector<int> MpiCommunicator::world_ranks() const {
  MPI_Group group = MPI_GROUP_NULL;
  MPI_Group world_group = MPI_GROUP_NULL;
  SHARDTUNE_MPI_CHECK(MPI_Comm_group(comm_, &group), describe("world_ranks", ""));
  SHARDTUNE_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group), describe("world_ranks", ""));
  std::vector<int> ours(size());
  std::vector<int> theirs(size());
  for (int i = 0; i < size(); ++i) ours[i] = i;
  SHARDTUNE_MPI_CHECK(
      MPI_Group_translate_ranks(group, size(), ours.data(), world_group, theirs.data()),
      describe("world_ranks", ""));
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return theirs;
}

void MpiCommunicator::check_cpu(const torch::Tensor& t, const char* op_name) const {
  if (!t.defined()) throw CommunicationError(describe(op_name, "undefined tensor"));
  if (!t.device().is_cpu()) {
    throw CommunicationError(describe(op_name, "MpiCommunicator takes CPU tensors, got one on " +
                                                   t.device().str() +
                                                   " (use NcclCommunicator for CUDA tensors)"));
  }
}

int MpiCommunicator::checked_count(int64_t count, const char* op_name) const {
  if (count > INT_MAX) {
    throw CommunicationError(describe(op_name, std::to_string(count) +
                                                   " elements per rank exceed MPI's int count "
                                                   "limit; split the tensor"));
  }
  return static_cast<int>(count);
}

bool MpiCommunicator::eager(int64_t bytes) const {
  // Open MPI 4.1's non-blocking reductions (libnbc) measured 4.4x slower than the blocking ones
  // for 25 MiB buckets on 2 ranks (docs/benchmarks-comm.md), and without a progress thread they
  // barely overlap anyway, so large reductions run blocking at call time.
  return options_.eager_reduce_bytes >= 0 && bytes >= options_.eager_reduce_bytes;
}

WorkPtr MpiCommunicator::all_reduce_async(torch::Tensor& t, ReduceOp op) {
  check_cpu(t, "all_reduce");
  check_avg_dtype(t, op, "all_reduce");
  const auto [wire, type] = reduce_type(t.scalar_type(), [&](const std::string& what) {
    return describe("all_reduce", what);
  });
  auto [buffer, target] = stage_output(t, wire, /*copy_in=*/true);
  MPI_Request request = MPI_REQUEST_NULL;
  const int count = checked_count(t.numel(), "all_reduce");
  const bool blocking = eager(static_cast<int64_t>(buffer.numel()) * buffer.element_size());
  SHARDTUNE_MPI_CHECK(
      blocking ? MPI_Allreduce(MPI_IN_PLACE, buffer.data_ptr(), count, type, mpi_op(op), comm_)
               : MPI_Iallreduce(MPI_IN_PLACE, buffer.data_ptr(), count, type, mpi_op(op), comm_,
                                &request),
      describe("all_reduce", to_string(op)));
  auto work = std::make_shared<MpiWork>(request, describe("all_reduce", to_string(op)),
                                        std::move(buffer), std::move(target), torch::Tensor(),
                                        op == ReduceOp::kAvg ? size() : 1);
  if (blocking) work->wait();  // a null request: only the divide / copy-back remain
  return work;
}

WorkPtr MpiCommunicator::all_gather_async(torch::Tensor& out, const torch::Tensor& in) {
  check_cpu(out, "all_gather");
  check_cpu(in, "all_gather");
  check_all_gather_sizes(out, in);
  auto [type, per_element] = move_type(in.scalar_type());
  const int count = checked_count(in.numel() * per_element, "all_gather");
  auto [buffer, target] = stage_output(out, out.scalar_type(), /*copy_in=*/false);

  // A contiguous `in` sitting exactly at this rank's piece of the output buffer (ZeRO-style
  // shard views) is MPI_IN_PLACE: MPI forbids overlapping send and receive buffers otherwise.
  const auto piece_bytes = static_cast<int64_t>(in.numel()) * in.element_size();
  void* my_piece = static_cast<char*>(buffer.data_ptr()) + piece_bytes * rank();
  const bool in_place = in.numel() > 0 && in.is_contiguous() && in.data_ptr() == my_piece;
  torch::Tensor send = in_place ? torch::Tensor() : stage_input(in, in.scalar_type(), buffer);

  MPI_Request request = MPI_REQUEST_NULL;
  SHARDTUNE_MPI_CHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : send.data_ptr(), count, type,
                                     buffer.data_ptr(), count, type, comm_, &request),
                      describe("all_gather", ""));
  return std::make_shared<MpiWork>(request, describe("all_gather", ""), std::move(buffer),
                                   std::move(target), std::move(send), 1);
}

WorkPtr MpiCommunicator::reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in,
                                              ReduceOp op) {
  check_cpu(out, "reduce_scatter");
  check_cpu(in, "reduce_scatter");
  check_reduce_scatter_sizes(out, in);
  check_avg_dtype(in, op, "reduce_scatter");
  const auto [wire, type] = reduce_type(in.scalar_type(), [&](const std::string& what) {
    return describe("reduce_scatter", what);
  });
  auto [buffer, target] = stage_output(out, wire, /*copy_in=*/false);
  torch::Tensor send = stage_input(in, wire, buffer);
  MPI_Request request = MPI_REQUEST_NULL;
  const int count = checked_count(out.numel(), "reduce_scatter");
  const bool blocking = eager(static_cast<int64_t>(send.numel()) * send.element_size());
  SHARDTUNE_MPI_CHECK(
      blocking ? MPI_Reduce_scatter_block(send.data_ptr(), buffer.data_ptr(), count, type,
                                          mpi_op(op), comm_)
               : MPI_Ireduce_scatter_block(send.data_ptr(), buffer.data_ptr(), count, type,
                                           mpi_op(op), comm_, &request),
      describe("reduce_scatter", to_string(op)));
  auto work = std::make_shared<MpiWork>(request, describe("reduce_scatter", to_string(op)),
                                        std::move(buffer), std::move(target), std::move(send),
                                        op == ReduceOp::kAvg ? size() : 1);
  if (blocking) work->wait();
  return work;
}

WorkPtr MpiCommunicator::broadcast_async(torch::Tensor& t, int root) {
  check_cpu(t, "broadcast");
  check_root(root);
  auto [type, per_element] = move_type(t.scalar_type());
  // Only the root's content is sent; elsewhere a staging buffer's old content is irrelevant.
  auto [buffer, target] = stage_output(t, t.scalar_type(), /*copy_in=*/rank() == root);
  MPI_Request request = MPI_REQUEST_NULL;
  const int count = checked_count(t.numel() * per_element, "broadcast");
  SHARDTUNE_MPI_CHECK(MPI_Ibcast(buffer.data_ptr(), count, type, root, comm_, &request),
                      describe("broadcast", "root " + std::to_string(root)));
  return std::make_shared<MpiWork>(request, describe("broadcast", "root " + std::to_string(root)),
                                   std::move(buffer), std::move(target), torch::Tensor(), 1);
}

void MpiCommunicator::barrier() {
  SHARDTUNE_MPI_CHECK(MPI_Barrier(comm_), describe("barrier", ""));
}

}  // namespace shardtune::parallel
