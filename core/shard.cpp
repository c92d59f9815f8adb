#include "core/shard.h"

#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "base/strings.h"

namespace shardtune::core {

std::vector<int64_t> ShardSpec::local_shape() const {
  auto shape = global_shape;
  if (sharded()) shape[static_cast<size_t>(dim)] = parts * chunk;
  return shape;
}

std::string ShardSpec::describe() const {
  std::ostringstream s;
  s << base::shape_string(global_shape);
  if (!sharded()) {
    s << " replicated";
  } else {
    s << " split dim " << dim;
    if (parts > 1) s << " (" << parts << " parts)";
    s << " [" << offset << ", " << offset + length << ")";
  }
  return s.str();
}

bool ShardSpec::operator==(const ShardSpec& o) const {
  return global_shape == o.global_shape && dim == o.dim && parts == o.parts && chunk == o.chunk &&
         offset == o.offset && length == o.length;
}

ShardSpec replicated_spec(std::vector<int64_t> global_shape) {
  ShardSpec s;
  s.global_shape = std::move(global_shape);
  return s;
}

ShardSpec split_spec(std::vector<int64_t> global_shape, int dim, int tp_rank, int tp_size,
                     int64_t parts) {
  if (tp_size == 1) return replicated_spec(std::move(global_shape));
  ShardSpec s;
  s.global_shape = std::move(global_shape);
  s.dim = dim;
  s.parts = parts;
  const int64_t n = s.global_shape.at(static_cast<size_t>(dim)) / parts;
  if (parts > 1 && n % tp_size != 0) {
    throw std::invalid_argument("split_spec: segment of " + std::to_string(n) +
                                " not divisible by tp=" + std::to_string(tp_size));
  }
  s.chunk = (n + tp_size - 1) / tp_size;
  s.offset = std::min<int64_t>(n, tp_rank * s.chunk);
  s.length = std::max<int64_t>(0, std::min<int64_t>(s.chunk, n - s.offset));
  return s;
}

namespace {
// local viewed with `dim` unfolded into [parts, chunk].
torch::Tensor segments(const torch::Tensor& t, const ShardSpec& spec, int64_t per_part) {
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  shape[static_cast<size_t>(spec.dim)] = per_part;
  shape.insert(shape.begin() + spec.dim, spec.parts);
  return t.view(shape);
}
std::vector<int64_t> folded(const torch::Tensor& seg, int dim) {
  std::vector<int64_t> shape(seg.sizes().begin(), seg.sizes().end());
  shape[static_cast<size_t>(dim)] *= shape[static_cast<size_t>(dim) + 1];
  shape.erase(shape.begin() + dim + 1);
  return shape;
}
}  // namespace

torch::Tensor real_part(const torch::Tensor& local, const ShardSpec& spec) {
  if (!spec.sharded() || spec.length == spec.chunk) return local;
  if (spec.parts == 1) return local.narrow(spec.dim, 0, spec.length);
  auto seg = segments(local, spec, spec.chunk).narrow(spec.dim + 1, 0, spec.length);
  return seg.reshape(folded(seg, spec.dim));
}

torch::Tensor slice_of(const torch::Tensor& full, const ShardSpec& spec) {
  if (!spec.sharded()) return full.contiguous();
  const int64_t n = spec.global_shape[static_cast<size_t>(spec.dim)] / spec.parts;
  auto seg = segments(full.contiguous(), spec, n).narrow(spec.dim + 1, spec.offset, spec.length);
  return seg.reshape(folded(seg, spec.dim)).contiguous();
}

void assign_from_full(torch::Tensor& local, const torch::Tensor& full, const ShardSpec& spec) {
  torch::NoGradGuard no_grad;
  if (!spec.sharded()) {
    local.copy_(full);
    return;
  }
  if (spec.length < spec.chunk) local.zero_();
  if (spec.parts == 1) {
    local.narrow(spec.dim, 0, spec.length).copy_(slice_of(full, spec));
  } else {
    segments(local, spec, spec.chunk)
        .narrow(spec.dim + 1, 0, spec.length)
        .copy_(segments(slice_of(full, spec), spec, spec.length));
  }
}

torch::Tensor gather_full(const torch::Tensor& local, const ShardSpec& spec,
                          const parallel::TpGroup& tp) {
  if (!spec.sharded() || !tp.active()) return real_part(local, spec).contiguous().clone();
  // Every rank's local tensor has the same (padded) shape: gather them, then drop padding.
  auto in = local.detach().movedim(spec.dim, 0).contiguous();  // [parts*chunk, ...]
  auto out = torch::empty({tp.size() * in.numel()}, in.options());
  tp.comm->all_gather(out, in);
  std::vector<int64_t> shape{tp.size(), spec.parts, spec.chunk};
  shape.insert(shape.end(), in.sizes().begin() + 1, in.sizes().end());
  const int64_t n = spec.global_shape[static_cast<size_t>(spec.dim)] / spec.parts;
  // [tp, parts, chunk, ...] -> [parts, tp * chunk, ...] -> first n of each segment.
  auto g = out.view(shape).transpose(0, 1).reshape({spec.parts, tp.size() * spec.chunk, -1});
  g = g.narrow(1, 0, n);
  std::vector<int64_t> moved{spec.parts * n};
  moved.insert(moved.end(), in.sizes().begin() + 1, in.sizes().end());
  return g.reshape(moved).movedim(0, spec.dim).contiguous();
}

std::vector<std::pair<std::string, ShardSpec>> parameter_specs(const torch::nn::Module& root) {
  // Each module describes its own parameters; the result follows root.named_parameters()'s order
  // (a parameter registered on a parent after its children comes later there than in a module
  // walk), so callers can zip the two.
  std::unordered_map<std::string, ShardSpec> specs;
  for (const auto& item : root.named_modules("", /*include_self=*/true)) {
    const auto& module = *item.value();
    const auto* sharded = dynamic_cast<const ShardedModule*>(&module);
    for (const auto& p : module.named_parameters(/*recurse=*/false)) {
      const std::string name = item.key().empty() ? p.key() : item.key() + "." + p.key();
      specs.emplace(name, sharded ? sharded->shard_spec(p.key())
                                  : replicated_spec(p.value().sizes().vec()));
    }
  }
  std::vector<std::pair<std::string, ShardSpec>> ordered;
  ordered.reserve(specs.size());
  for (const auto& p : root.named_parameters()) ordered.emplace_back(p.key(), specs.at(p.key()));
  return ordered;
}

}  // namespace shardtune::core
