#include "core/recompute.h"

#include <map>
#include <string>

#include "parallel/tp_ops.h"

namespace shardtune::core {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs besides tensors: the function and the RNG states of the first run.
// Held by the autograd node through an IValue capsule, so it lives exactly as long as the graph.
struct RecomputeState : torch::CustomClassHolder {
  RecomputeFn fn;
  std::map<std::string, at::Tensor> rng;
};

struct RecomputeFnNode : torch::autograd::Function<RecomputeFnNode> {
  static torch::Tensor forward(AutogradContext* ctx, at::TensorList inputs_list,
                               at::TensorList params, c10::IValue state) {
    const variable_list inputs = inputs_list.vec();
    auto* s = static_cast<RecomputeState*>(state.toCapsule().get());
    s->rng = parallel::rng_tracker().get_states();
    torch::Tensor out;
    {
      // Autograd's Function already runs forward without recording; be explicit anyway.
      torch::NoGradGuard no_grad;
      out = s->fn(inputs);
    }
    ctx->save_for_backward(inputs);
    ctx->saved_data["state"] = std::move(state);
    ctx->saved_data["params"] = static_cast<int64_t>(params.size());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto inputs = ctx->get_saved_variables();
    auto capsule = ctx->saved_data["state"].toCapsule();
    auto* s = static_cast<RecomputeState*>(capsule.get());
    // Detached copies of the inputs as new leaves, so the recomputed graph ends at them.
    std::vector<torch::Tensor> leaves;
    std::vector<torch::Tensor> wanted;
    for (const auto& in : inputs) {
      auto leaf = in.detach();
      leaf.set_requires_grad(in.requires_grad());
      if (in.requires_grad()) wanted.push_back(leaf);
      leaves.push_back(leaf);
    }
    const auto now = parallel::rng_tracker().get_states();
    parallel::rng_tracker().set_states(s->rng);
    torch::Tensor out;
    {
      torch::AutoGradMode enable(true);
      out = s->fn(leaves);
    }
    parallel::rng_tracker().set_states(now);
    // Backpropagate through the recomputed graph: parameters accumulate into .grad (their hooks
    // fire), and the inputs' gradients are captured on the leaves.
    if (out.requires_grad()) {
      torch::autograd::backward({out}, {grad[0]}, /*retain_graph=*/false, /*create_graph=*/false);
    }
    variable_list result;
    for (size_t i = 0; i < leaves.size(); ++i) {
      result.push_back(inputs[i].requires_grad() ? leaves[i].grad() : torch::Tensor());
    }
    // Parameters already received their gradients from the inner backward (accumulated into
    // .grad, hooks fired): nothing more flows to them through this node.
    const int64_t n_params = ctx->saved_data["params"].toInt();
    for (int64_t i = 0; i < n_params; ++i) result.push_back(torch::Tensor());
    result.push_back(torch::Tensor());  // the state capsule
    return result;
  }
};

}  // namespace

torch::Tensor recompute(const RecomputeFn& fn, const std::vector<torch::Tensor>& inputs,
                        const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  for (const auto& t : inputs) TORCH_CHECK(t.defined(), "recompute: undefined input");
  // The parameters are not inputs of the node: an edge from it to a parameter's AccumulateGrad
  // would run that node a second time (with no gradient) after the inner backward, firing its
  // post-hooks twice, and DP gradient sync (parallel::GradSync) counts those hooks to know when
  // a bucket is complete. When no input requires grad but a parameter does (a frozen backbone
  // feeding adapters), one floating input is replaced by a detached leaf that requires grad: the
  // node is then recorded and recomputes; that leaf's gradient is computed and dropped.
  std::vector<torch::Tensor> in = inputs;
  bool any_input = false, any_param = false;
  for (const auto& t : in) any_input = any_input || t.requires_grad();
  for (const auto& p : params) any_param = any_param || (p.defined() && p.requires_grad());
  if (!any_input && any_param) {
    for (auto& t : in) {
      if (t.is_floating_point()) {
        t = t.detach().requires_grad_(true);
        break;
      }
    }
  }
  auto state = c10::make_intrusive<RecomputeState>();
  state->fn = fn;
  return RecomputeFnNode::apply(at::TensorList(in), at::TensorList(),
                                c10::IValue::make_capsule(std::move(state)));
}

}  // namespace shardtune::core
