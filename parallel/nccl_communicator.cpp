#include "parallel/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <ATen/MemoryOverlap.h>

#include <cstring>
#include <thread>

#include "parallel/mpi_communicator.h"

namespace shardtune::parallel {

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;

  ~State() {
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = device;
    cudaSetDevice(device);
    if (stream) cudaStreamSynchronize(stream);
    if (comm) ncclCommDestroy(comm);
    if (stream) cudaStreamDestroy(stream);
    cudaSetDevice(previous);
  }
};

namespace {

using State = NcclCommunicator::State;

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

[[noreturn]] void throw_nccl_error(ncclResult_t code, ncclComm_t comm, const char* call,
                                   const std::string& context, const char* file, int line) {
  std::string detail = ncclGetErrorString(code);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  const char* last = ncclGetLastError(comm);
  if (last && *last) detail += "; " + std::string(last);
#endif
  throw CommunicationError(context + ": " + call + " failed: " + detail + " at " +
                           base_name(file) + ":" + std::to_string(line));
}

[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const std::string& context,
                                   const char* file, int line) {
  throw CommunicationError(context + ": " + call + " failed: " + cudaGetErrorString(code) +
                           " at " + base_name(file) + ":" + std::to_string(line));
}

#define SHARDTUNE_NCCL_CHECK(call, comm, context)                                        \
  do {                                                                                   \
    ncclResult_t shardtune_rc_ = (call);                                                 \
    if (shardtune_rc_ != ncclSuccess)                                                    \
      throw_nccl_error(shardtune_rc_, (comm), #call, (context), __FILE__, __LINE__);     \
  } while (0)

#define SHARDTUNE_CUDA_CHECK(call, context)                                              \
  do {                                                                                   \
    cudaError_t shardtune_rc_ = (call);                                                  \
    if (shardtune_rc_ != cudaSuccess)                                                    \
      throw_cuda_error(shardtune_rc_, #call, (context), __FILE__, __LINE__);             \
  } while (0)

// Makes `device` current for a scope and restores the caller's device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }

 private:
  int previous_ = -1;
};

bool nccl_reduce_type(c10::ScalarType dtype, ncclDataType_t* type) {
  switch (dtype) {
    case c10::kFloat: *type = ncclFloat32; return true;
    case c10::kDouble: *type = ncclFloat64; return true;
    case c10::kHalf: *type = ncclFloat16; return true;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case c10::kBFloat16: *type = ncclBfloat16; return true;
#endif
    case c10::kInt: *type = ncclInt32; return true;
    case c10::kLong: *type = ncclInt64; return true;
    case c10::kByte: *type = ncclUint8; return true;
    case c10::kChar: *type = ncclInt8; return true;
    default: return false;
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  return ncclSum;
}

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<State> state, cudaEvent_t done, std::string context,
           torch::Tensor buffer, torch::Tensor target, torch::Tensor keep)
      : state_(std::move(state)),
        done_event_(done),
        context_(std::move(context)),
        buffer_(std::move(buffer)),
        target_(std::move(target)),
        keep_(std::move(keep)) {}

  ~NcclWork() override {
    // The staging buffers return to LibTorch's caching allocator, which does not know about our
    // stream: they must not be freed while NCCL may still use them.
    if (!done_) {
      try {
        wait();
      } catch (...) {
      }
    }
    if (done_event_) cudaEventDestroy(done_event_);
  }

  void wait() override {
    if (done_) return;
    // Poll rather than cudaEventSynchronize so a failed peer (async NCCL error) ends the wait
    // with an exception instead of a hang.
    while (!poll()) std::this_thread::yield();
  }

  bool is_completed() override { return done_ || poll(); }

 private:
  bool poll() {
    DeviceGuard guard(state_->device);
    const cudaError_t status = cudaEventQuery(done_event_);
    if (status == cudaErrorNotReady) {
      ncclResult_t async_error = ncclSuccess;
      SHARDTUNE_NCCL_CHECK(ncclCommGetAsyncError(state_->comm, &async_error), state_->comm,
                           context_);
      SHARDTUNE_NCCL_CHECK(async_error, state_->comm, context_);
      return false;
    }
    SHARDTUNE_CUDA_CHECK(status, context_);
    done_ = true;
    // The copy back runs on LibTorch's stream after the host saw the collective finish.
    if (target_.defined()) target_.copy_(buffer_.view(target_.sizes()));
    buffer_ = torch::Tensor();
    target_ = torch::Tensor();
    keep_ = torch::Tensor();
    return true;
  }

  std::shared_ptr<State> state_;
  cudaEvent_t done_event_ = nullptr;
  std::string context_;
  torch::Tensor buffer_;
  torch::Tensor target_;
  torch::Tensor keep_;
  bool done_ = false;
};

std::pair<torch::Tensor, torch::Tensor> stage_output(torch::Tensor& t, bool copy_in) {
  if (t.is_contiguous()) return {t, torch::Tensor()};
  torch::Tensor buffer = copy_in ? t.reshape({-1}).clone() : torch::empty({t.numel()}, t.options());
  return {buffer, t};
}

torch::Tensor stage_input(const torch::Tensor& in, const torch::Tensor& out) {
  torch::Tensor send = in.contiguous();
  const bool is_callers = send.numel() > 0 && send.data_ptr() == in.data_ptr();
  if (is_callers && at::get_overlap_status(send, out) != at::MemOverlapStatus::No) {
    send = send.clone();
  }
  return send;
}

// Orders our stream after the work queued so far on the legacy default stream (LibTorch's).
void wait_for_default_stream(const State& state, const std::string& context) {
  cudaEvent_t ready = nullptr;
  SHARDTUNE_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), context);
  SHARDTUNE_CUDA_CHECK(cudaEventRecord(ready, cudaStreamLegacy), context);
  SHARDTUNE_CUDA_CHECK(cudaStreamWaitEvent(state.stream, ready, 0), context);
  cudaEventDestroy(ready);  // legal while pending: resources go once the event completes
}

cudaEvent_t record_done(const State& state, const std::string& context) {
  cudaEvent_t done = nullptr;
  SHARDTUNE_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), context);
  SHARDTUNE_CUDA_CHECK(cudaEventRecord(done, state.stream), context);
  return done;
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::shared_ptr<MpiCommunicator> group, int device,
                                   std::string label)
    : Communicator(group->rank(), group->size(), label.empty() ? group->label() : label),
      group_(std::move(group)),
      device_(device),
      state_(std::make_shared<State>()) {
  const std::string context = describe("init", "device " + std::to_string(device));
  state_->device = device;
  DeviceGuard guard(device);
  SHARDTUNE_CUDA_CHECK(cudaSetDevice(device), context);

  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank() == 0) SHARDTUNE_NCCL_CHECK(ncclGetUniqueId(&id), nullptr, context);
  if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, group_->native_handle()) != MPI_SUCCESS) {
    throw CommunicationError(context + ": MPI_Bcast of the NCCL unique id failed");
  }
  SHARDTUNE_NCCL_CHECK(ncclCommInitRank(&state_->comm, size(), id, rank()), nullptr, context);
  // Non-blocking: the legacy default stream must not wait for our collectives (that would undo
  // the overlap); the order we need is expressed with events instead.
  SHARDTUNE_CUDA_CHECK(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking), context);
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::check_cuda(const torch::Tensor& t, const char* op_name) const {
  if (!t.defined()) throw CommunicationError(describe(op_name, "undefined tensor"));
  if (!t.is_cuda() || t.device().index() != device_) {
    throw CommunicationError(describe(op_name, "NcclCommunicator takes tensors on cuda:" +
                                                   std::to_string(device_) + ", got one on " +
                                                   t.device().str()));
  }
}

WorkPtr NcclCommunicator::all_reduce_async(torch::Tensor& t, ReduceOp op) {
  check_cuda(t, "all_reduce");
  check_avg_dtype(t, op, "all_reduce");
  ncclDataType_t type;
  if (!nccl_reduce_type(t.scalar_type(), &type)) {
    throw CommunicationError(describe("all_reduce", std::string("NCCL cannot reduce dtype ") +
                                                        c10::toString(t.scalar_type())));
  }
  const std::string context = describe("all_reduce", to_string(op));
  DeviceGuard guard(device_);
  auto [buffer, target] = stage_output(t, /*copy_in=*/true);
  wait_for_default_stream(*state_, context);
  SHARDTUNE_NCCL_CHECK(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), type,
                                     nccl_op(op), state_->comm, state_->stream),
                       state_->comm, context);
  cudaEvent_t done = record_done(*state_, context);
  return std::make_shared<NcclWork>(state_, done, context, std::move(buffer), std::move(target),
                                    torch::Tensor());
}

WorkPtr NcclCommunicator::all_gather_async(torch::Tensor& out, const torch::Tensor& in) {
  check_cuda(out, "all_gather");
  check_cuda(in, "all_gather");
  check_all_gather_sizes(out, in);
  const std::string context = describe("all_gather", "");
  DeviceGuard guard(device_);
  auto [buffer, target] = stage_output(out, /*copy_in=*/false);
  const size_t piece_bytes = static_cast<size_t>(in.numel()) * in.element_size();
  void* my_piece = static_cast<char*>(buffer.data_ptr()) + piece_bytes * rank();
  // NCCL's in-place form: the send buffer is this rank's piece of the receive buffer.
  const bool in_place = in.numel() > 0 && in.is_contiguous() && in.data_ptr() == my_piece;
  torch::Tensor send = in_place ? torch::Tensor() : stage_input(in, buffer);
  wait_for_default_stream(*state_, context);
  // Moved as bytes: any dtype, no reduction.
  SHARDTUNE_NCCL_CHECK(ncclAllGather(in_place ? my_piece : send.data_ptr(), buffer.data_ptr(),
                                     piece_bytes, ncclUint8, state_->comm, state_->stream),
                       state_->comm, context);
  cudaEvent_t done = record_done(*state_, context);
  return std::make_shared<NcclWork>(state_, done, context, std::move(buffer), std::move(target),
                                    std::move(send));
}

WorkPtr NcclCommunicator::reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in,
                                               ReduceOp op) {
  check_cuda(out, "reduce_scatter");
  check_cuda(in, "reduce_scatter");
  check_reduce_scatter_sizes(out, in);
  check_avg_dtype(in, op, "reduce_scatter");
  ncclDataType_t type;
  if (!nccl_reduce_type(in.scalar_type(), &type)) {
    throw CommunicationError(describe("reduce_scatter", std::string("NCCL cannot reduce dtype ") +
                                                            c10::toString(in.scalar_type())));
  }
  const std::string context = describe("reduce_scatter", to_string(op));
  DeviceGuard guard(device_);
  auto [buffer, target] = stage_output(out, /*copy_in=*/false);
  torch::Tensor send = stage_input(in, buffer);
  wait_for_default_stream(*state_, context);
  SHARDTUNE_NCCL_CHECK(ncclReduceScatter(send.data_ptr(), buffer.data_ptr(), buffer.numel(), type,
                                         nccl_op(op), state_->comm, state_->stream),
                       state_->comm, context);
  cudaEvent_t done = record_done(*state_, context);
  return std::make_shared<NcclWork>(state_, done, context, std::move(buffer), std::move(target),
                                    std::move(send));
}

WorkPtr NcclCommunicator::broadcast_async(torch::Tensor& t, int root) {
  check_cuda(t, "broadcast");
  check_root(root);
  const std::string context = describe("broadcast", "root " + std::to_string(root));
  DeviceGuard guard(device_);
  auto [buffer, target] = stage_output(t, /*copy_in=*/rank() == root);
  wait_for_default_stream(*state_, context);
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  SHARDTUNE_NCCL_CHECK(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), bytes, ncclUint8, root,
                                     state_->comm, state_->stream),
                       state_->comm, context);
  cudaEvent_t done = record_done(*state_, context);
  return std::make_shared<NcclWork>(state_, done, context, std::move(buffer), std::move(target),
                                    torch::Tensor());
}

void NcclCommunicator::barrier() {
  {
    DeviceGuard guard(device_);
    SHARDTUNE_CUDA_CHECK(cudaStreamSynchronize(state_->stream), describe("barrier", ""));
  }
  group_->barrier();
}

SplitFn nccl_split_fn(std::shared_ptr<MpiCommunicator> parent, int device) {
  return [parent = std::move(parent), device](int color, int key, const std::string& label) {
    std::shared_ptr<MpiCommunicator> group = parent->split(color, key, label);
    if (!group) return std::shared_ptr<Communicator>();
    return std::shared_ptr<Communicator>(std::make_shared<NcclCommunicator>(group, device, label));
  };
}

}  // namespace shardtune::parallel
