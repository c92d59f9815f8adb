#include "parallel/grad_sync.h"

#include <torch/csrc/autograd/function_hook.h>

namespace shardtune::parallel {

// Post-hook on a parameter's AccumulateGrad node: runs after the gradient has been added into
// .grad (LibTorch 1.13 has no Tensor-level post-accumulate hook; the node hook is what DDP uses).
class GradSync::ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(GradSync* owner, size_t index) : owner_(owner), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    owner_->mark_ready(index_);
    return outputs;
  }

 private:
  GradSync* owner_;
  size_t index_;
};

GradSync::GradSync(std::vector<torch::Tensor> params, Communicator& dp, int64_t bucket_bytes,
                   bool shard_gradients)
    : params_(std::move(params)), bucket_of_(params_.size()), offset_of_(params_.size()),
      shard_(shard_gradients), dp_(dp) {
  // Reverse registration order: the order in which backward produces gradients.
  std::vector<size_t> current;
  int64_t current_bytes = 0;
  auto close_bucket = [&]() {
    if (current.empty()) return;
    Bucket b;
    b.params = current;
    int64_t numel = 0;
    for (size_t i : current) numel += params_[i].numel();
    const int64_t n = dp_.size();
    if (shard_) numel = (numel + n - 1) / n * n;  // equal shards; the tail is padding
    const auto opts = params_[current.front()].options().requires_grad(false);
    b.buffer = torch::zeros({numel}, opts);
    if (shard_) b.shard = torch::zeros({numel / n}, opts);
    int64_t offset = 0;
    for (size_t i : current) {
      auto& p = params_[i];
      auto view = b.buffer.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) view.copy_(p.grad());
      p.mutable_grad() = view;
      bucket_of_[i] = buckets_.size();
      offset_of_[i] = offset;
      offset += p.numel();
    }
    buckets_.push_back(std::move(b));
    current.clear();
    current_bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t bytes = params_[k].numel() * params_[k].element_size();
    if (!current.empty() && current_bytes + bytes > bucket_bytes) close_bucket();
    current.push_back(k);
    current_bytes += bytes;
  }
  close_bucket();
  if (dp_.size() > 1 || shard_) {
    for (size_t i = 0; i < params_.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
      acc->add_post_hook(std::make_unique<ReadyHook>(this, i));
      accumulators_.push_back(std::move(acc));
    }
  }
  reset_pending();
}

GradSync::~GradSync() {
  // Never leave a collective in flight with buffers about to be freed.
  for (auto& b : buckets_) {
    if (b.work) b.work->wait();
  }
}

void GradSync::set_sync(bool sync) { sync_ = sync; }

void GradSync::reset_pending() {
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.launched = false;
    b.work.reset();
  }
  next_to_launch_ = 0;
}

void GradSync::poll() {
  for (size_t i = 0; i < next_to_launch_; ++i) {
    if (buckets_[i].work) buckets_[i].work->is_completed();
  }
}

void GradSync::launch_ready_in_order(bool from_hook) {
  while (next_to_launch_ < buckets_.size() && buckets_[next_to_launch_].pending == 0) {
    auto& b = buckets_[next_to_launch_];
    b.work = shard_ ? dp_.reduce_scatter_async(b.shard, b.buffer, ReduceOp::kSum)
                    : dp_.all_reduce_async(b.buffer, ReduceOp::kSum);
    b.launched = true;
    if (from_hook) ++launched_in_hooks_;
    ++next_to_launch_;
  }
}

void GradSync::mark_ready(size_t param_index) {
  if (!sync_) return;
  auto& b = buckets_[bucket_of_[param_index]];
  if (b.pending > 0) --b.pending;
  launch_ready_in_order(/*from_hook=*/true);
  poll();
}

void GradSync::finish() {
  if (dp_.size() > 1 || shard_) {
    for (auto& b : buckets_) b.pending = 0;  // unused parameters: communicate zeros
    launch_ready_in_order(/*from_hook=*/false);
    for (auto& b : buckets_) b.work->wait();
  }
  reset_pending();
}

void GradSync::zero_grad() {
  for (auto& b : buckets_) {
    b.buffer.zero_();
    if (b.shard.defined()) b.shard.zero_();
  }
}

}  // namespace shardtune::parallel
