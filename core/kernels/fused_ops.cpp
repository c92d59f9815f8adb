#include "core/kernels/fused_ops.h"

#include <ATen/Parallel.h>

#include <cfloat>
#include <cmath>

#include "core/kernels/cpu_kernels.h"
#include "core/kernels/fused_common.h"

namespace shardtune::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using detail::as_rows;
using detail::bf16_ptr;
using detail::bf16_value;
using detail::check_float_or_bf16;
using detail::grain_rows;

// ---- cross-entropy ---------------------------------------------------------------------------

struct CrossEntropyFn : torch::autograd::Function<CrossEntropyFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets, int64_t offset, int64_t length,
                               int64_t comm_handle) {
    check_float_or_bf16(logits, "fused_cross_entropy logits");
    TORCH_CHECK(targets.scalar_type() == torch::kLong, "fused_cross_entropy: int64 targets");
    auto* comm = reinterpret_cast<parallel::Communicator*>(comm_handle);
    const int64_t chunk = logits.size(-1);
    TORCH_CHECK(length >= 0 && length <= chunk, "fused_cross_entropy: length ", length,
                " outside [0, ", chunk, "]");
    auto x = as_rows(logits);  // [N, chunk]
    auto t = targets.reshape({-1}).contiguous();
    const int64_t rows = x.size(0);
    TORCH_CHECK(t.numel() == rows, "fused_cross_entropy: ", t.numel(), " targets for ", rows,
                " rows of logits");
    // stats[:, 0] row max, [:, 1] sum of exp(x - max), [:, 2] target logit (0 if not here).
    auto stats = torch::empty({rows, 3}, torch::kFloat);
    float* st = stats.data_ptr<float>();
    const int64_t* tg = t.data_ptr<int64_t>();
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const int64_t ld = x.stride(0);
    const float* xf = bf16 ? nullptr : x.data_ptr<float>();
    const bf16_t* xb = bf16 ? bf16_ptr(x) : nullptr;
    at::parallel_for(0, rows, grain_rows(length), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* s = st + 3 * r;
        if (bf16) {
          row_max_sumexp_bf16(xb + r * ld, length, &s[0], &s[1]);
        } else {
          row_max_sumexp_f32(xf + r * ld, length, &s[0], &s[1]);
        }
        const int64_t local = tg[r] - offset;
        const bool mine = tg[r] != -100 && local >= 0 && local < length;
        s[2] = mine ? (bf16 ? bf16_value(xb[r * ld + local]) : xf[r * ld + local]) : 0.0f;
      }
    });
    if (comm != nullptr && comm->size() > 1) {
      // Each rank rescales its sum of exponentials to the global row max, then one sum.
      auto local_max = stats.select(1, 0).clone();
      auto global_max = local_max.clone();
      comm->all_reduce(global_max, parallel::ReduceOp::kMax);
      auto rescale = (local_max - global_max).exp_();
      stats.select(1, 1).mul_(rescale);
      stats.select(1, 0).copy_(global_max);
      auto sums = stats.narrow(1, 1, 2).contiguous();
      comm->all_reduce(sums, parallel::ReduceOp::kSum);
      stats.narrow(1, 1, 2).copy_(sums);
    }
    // loss = log(sum) + max - target logit; lse saved for the backward.
    auto lse = stats.select(1, 1).log() + stats.select(1, 0);
    auto ignored = t.eq(-100);
    auto loss = (lse - stats.select(1, 2)).masked_fill_(ignored, 0.0);
    ctx->save_for_backward({logits, t, lse});
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["length"] = length;
    return loss.view(targets.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    const auto& t = saved[1];
    const auto& lse = saved[2];
    const int64_t offset = ctx->saved_data["offset"].toInt();
    const int64_t length = ctx->saved_data["length"].toInt();
    auto x = as_rows(logits);
    const int64_t rows = x.size(0), chunk = x.size(1), ld = x.stride(0);
    auto g = grad[0].reshape({-1}).to(torch::kFloat).contiguous();
    auto out = torch::empty({rows, chunk}, logits.options().memory_format(
                                               torch::MemoryFormat::Contiguous));
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const float* gp = g.data_ptr<float>();
    const float* lp = lse.data_ptr<float>();
    const int64_t* tg = t.data_ptr<int64_t>();
    at::parallel_for(0, rows, grain_rows(chunk), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float scale = tg[r] == -100 ? 0.0f : gp[r];
        const int64_t local = tg[r] - offset;
        if (bf16) {
          bf16_t* o = bf16_ptr(out) + r * chunk;
          ce_row_grad_bf16(bf16_ptr(x) + r * ld, length, lp[r], local, scale, o);
          for (int64_t j = length; j < chunk; ++j) o[j] = 0;
        } else {
          float* o = out.data_ptr<float>() + r * chunk;
          ce_row_grad_f32(x.data_ptr<float>() + r * ld, length, lp[r], local, scale, o);
          for (int64_t j = length; j < chunk; ++j) o[j] = 0.0f;
        }
      }
    });
    return {out.view(logits.sizes()), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

// ---- RMSNorm ------------------------------------------------------------------------------------

struct RmsNormFn : torch::autograd::Function<RmsNormFn> {
  // (x, y) dtypes: (f32, f32), (bf16, bf16), or (f32, bf16): an fp32 residual stream normalised
  // into bf16 compute.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps, int64_t out_dtype) {
    check_float_or_bf16(x, "rms_norm input");
    const auto ydt = static_cast<torch::ScalarType>(out_dtype);
    const bool xb = x.scalar_type() == torch::kBFloat16, yb = ydt == torch::kBFloat16;
    TORCH_CHECK(ydt == torch::kFloat || ydt == torch::kBFloat16, "rms_norm: output dtype ", ydt);
    TORCH_CHECK(!xb || yb, "rms_norm: bf16 input with fp32 output is not supported");
    const int64_t n = x.size(-1);
    TORCH_CHECK(weight.dim() == 1 && weight.size(0) == n, "rms_norm: weight of shape ",
                weight.sizes(), " for rows of ", n);
    auto xr = as_rows(x);
    auto w = weight.to(torch::kFloat).contiguous();
    const int64_t rows = xr.size(0), ld = xr.stride(0);
    auto y = torch::empty({rows, n}, x.options().dtype(ydt).memory_format(
                                         torch::MemoryFormat::Contiguous));
    auto rstd = torch::empty({rows}, torch::kFloat);
    const float e = static_cast<float>(eps);
    const float* wp = w.data_ptr<float>();
    float* rp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, grain_rows(n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (xb) {
          rp[r] = rmsnorm_row_bf16(bf16_ptr(xr) + r * ld, wp, n, e, bf16_ptr(y) + r * n);
        } else if (yb) {
          rp[r] = rmsnorm_row_f32_to_bf16(xr.data_ptr<float>() + r * ld, wp, n, e,
                                          bf16_ptr(y) + r * n);
        } else {
          rp[r] = rmsnorm_row_f32(xr.data_ptr<float>() + r * ld, wp, n, e,
                                  y.data_ptr<float>() + r * n);
        }
      }
    });
    ctx->save_for_backward({xr, w, rstd});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["out_dtype"] = out_dtype;
    return y.view(x.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& xr = saved[0];
    const auto& w = saved[1];
    const auto& rstd = saved[2];
    const auto ydt = static_cast<torch::ScalarType>(ctx->saved_data["out_dtype"].toInt());
    const int64_t rows = xr.size(0), n = xr.size(1), ld = xr.stride(0);
    auto dy = grad[0].to(ydt).reshape({rows, n}).contiguous();
    auto dx = torch::empty({rows, n}, xr.options().memory_format(torch::MemoryFormat::Contiguous));
    const bool xb = xr.scalar_type() == torch::kBFloat16, yb = ydt == torch::kBFloat16;
    // One fp32 weight-gradient accumulator per task, summed in task order (deterministic for a
    // given row count: the tasks do not depend on the thread count).
    const int64_t grain = grain_rows(n);
    const int64_t tasks = (rows + grain - 1) / grain;
    auto dw_parts = torch::zeros({std::max<int64_t>(tasks, 1), n}, torch::kFloat);
    const float* wp = w.data_ptr<float>();
    const float* rp = rstd.data_ptr<float>();
    at::parallel_for(0, tasks, 1, [&](int64_t tb, int64_t te) {
      for (int64_t task = tb; task < te; ++task) {
        float* acc = dw_parts.data_ptr<float>() + task * n;
        for (int64_t r = task * grain; r < std::min(rows, (task + 1) * grain); ++r) {
          if (xb) {
            rmsnorm_row_backward_bf16(bf16_ptr(xr) + r * ld, wp, bf16_ptr(dy) + r * n, n, rp[r],
                                      bf16_ptr(dx) + r * n, acc);
          } else if (yb) {
            rmsnorm_row_backward_f32_bf16(xr.data_ptr<float>() + r * ld, wp, bf16_ptr(dy) + r * n,
                                          n, rp[r], dx.data_ptr<float>() + r * n, acc);
          } else {
            rmsnorm_row_backward_f32(xr.data_ptr<float>() + r * ld, wp,
                                     dy.data_ptr<float>() + r * n, n, rp[r],
                                     dx.data_ptr<float>() + r * n, acc);
          }
        }
      }
    });
    const auto wdtype = static_cast<torch::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    auto dw = dw_parts.sum(0).to(wdtype);
    return {dx.view(grad[0].sizes()), dw, torch::Tensor(), torch::Tensor()};
  }
};

// ---- SwiGLU -------------------------------------------------------------------------------------

struct SwigluFn : torch::autograd::Function<SwigluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
    check_float_or_bf16(gate, "swiglu gate");
    TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
                "swiglu: gate ", gate.sizes(), " and up ", up.sizes(), " differ");
    auto g = gate.contiguous(), u = up.contiguous();
    auto y = torch::empty_like(g, torch::MemoryFormat::Contiguous);
    const bool bf16 = g.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, g.numel(), 16384, [&](int64_t b, int64_t e) {
      if (bf16) {
        swiglu_bf16(bf16_ptr(g) + b, bf16_ptr(u) + b, e - b, bf16_ptr(y) + b);
      } else {
        swiglu_f32(g.data_ptr<float>() + b, u.data_ptr<float>() + b, e - b,
                   y.data_ptr<float>() + b);
      }
    });
    ctx->save_for_backward({g, u});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& g = saved[0];
    const auto& u = saved[1];
    auto dy = grad[0].to(g.scalar_type()).contiguous();
    auto dg = torch::empty_like(g), du = torch::empty_like(u);
    const bool bf16 = g.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, g.numel(), 16384, [&](int64_t b, int64_t e) {
      if (bf16) {
        swiglu_backward_bf16(bf16_ptr(g) + b, bf16_ptr(u) + b, bf16_ptr(dy) + b, e - b,
                             bf16_ptr(dg) + b, bf16_ptr(du) + b);
      } else {
        swiglu_backward_f32(g.data_ptr<float>() + b, u.data_ptr<float>() + b,
                            dy.data_ptr<float>() + b, e - b, dg.data_ptr<float>() + b,
                            du.data_ptr<float>() + b);
      }
    });
    return {dg, du};
  }
};

// ---- RoPE ---------------------------------------------------------------------------------------

// out[b, h, t] = rope(x[b, h, t], cos/sin row of (b, t)); sign = -1 applies the transpose.
void rope_apply(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& s,
                float sign, torch::Tensor& out) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), d = x.size(3);
  const bool per_batch = c.dim() == 4;  // [B, 1, T, d] vs [T, d]
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const int64_t sb = x.stride(0), sh = x.stride(1), st = x.stride(2);
  at::parallel_for(0, B * H * T, grain_rows(d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i % T, h = (i / T) % H, b = i / (T * H);
      const int64_t crow = per_batch ? (b * T + t) * d : t * d;
      const float* cp = c.data_ptr<float>() + crow;
      const float* sp = s.data_ptr<float>() + crow;
      const int64_t xo = b * sb + h * sh + t * st;
      if (bf16) {
        rope_row_bf16(bf16_ptr(x) + xo, cp, sp, d, sign, bf16_ptr(out) + i * d);
      } else {
        rope_row_f32(x.data_ptr<float>() + xo, cp, sp, d, sign, out.data_ptr<float>() + i * d);
      }
    }
  });
}

struct RopeFn : torch::autograd::Function<RopeFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    check_float_or_bf16(x, "apply_rotary input");
    TORCH_CHECK(x.dim() == 4 && x.size(-1) % 2 == 0, "apply_rotary: x must be [B, H, T, d] with ",
                "even d, got ", x.sizes());
    const int64_t B = x.size(0), T = x.size(2), d = x.size(3);
    const bool ok4 = cos.dim() == 4 && cos.size(0) == B && cos.size(1) == 1 && cos.size(2) == T &&
                     cos.size(3) == d;
    const bool ok2 = cos.dim() == 2 && cos.size(0) == T && cos.size(1) == d;
    TORCH_CHECK((ok4 || ok2) && cos.sizes() == sin.sizes(), "apply_rotary: cos/sin of shape ",
                cos.sizes(), " for x ", x.sizes());
    auto c = cos.to(torch::kFloat).contiguous(), s = sin.to(torch::kFloat).contiguous();
    auto xs = x.stride(-1) == 1 ? x : x.contiguous();
    auto out = torch::empty(x.sizes(), x.options().memory_format(torch::MemoryFormat::Contiguous));
    rope_apply(xs, c, s, 1.0f, out);
    ctx->save_for_backward({c, s});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    auto dy = grad[0].stride(-1) == 1 ? grad[0] : grad[0].contiguous();
    auto dx = torch::empty(dy.sizes(), dy.options().memory_format(torch::MemoryFormat::Contiguous));
    rope_apply(dy, saved[0], saved[1], -1.0f, dx);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

// ---- causal softmax -------------------------------------------------------------------------------

struct CausalSoftmaxFn : torch::autograd::Function<CausalSoftmaxFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor scores, double scale,
                               int64_t prefix) {
    check_float_or_bf16(scores, "causal_softmax_ scores");
    TORCH_CHECK(scores.is_contiguous() && scores.dim() == 4,
                "causal_softmax_: contiguous [B, H, T, S] scores, got ", scores.sizes());
    const int64_t T = scores.size(2), S = scores.size(3);
    TORCH_CHECK(prefix >= 0 && prefix + T == S, "causal_softmax_: ", S, " keys for ", T,
                " queries and a prefix of ", prefix);
    const int64_t rows = scores.numel() / S;
    const bool bf16 = scores.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, rows, grain_rows(S), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t visible = prefix + r % T + 1;
        if (bf16) {
          causal_softmax_row_bf16(bf16_ptr(scores) + r * S, S, visible, static_cast<float>(scale));
        } else {
          causal_softmax_row_f32(scores.data_ptr<float>() + r * S, S, visible,
                                 static_cast<float>(scale));
        }
      }
    });
    ctx->mark_dirty({scores});
    ctx->save_for_backward({scores});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["prefix"] = prefix;
    return scores;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto probs = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t prefix = ctx->saved_data["prefix"].toInt();
    auto dy = grad[0].to(probs.scalar_type()).contiguous();
    auto dx = torch::empty_like(probs);
    const int64_t T = probs.size(2), S = probs.size(3);
    const int64_t rows = probs.numel() / S;
    const bool bf16 = probs.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, rows, grain_rows(S), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t visible = prefix + r % T + 1;
        if (bf16) {
          causal_softmax_row_backward_bf16(bf16_ptr(probs) + r * S, bf16_ptr(dy) + r * S,
                                           bf16_ptr(dx) + r * S, S, visible,
                                           static_cast<float>(scale));
        } else {
          causal_softmax_row_backward_f32(probs.data_ptr<float>() + r * S,
                                          dy.data_ptr<float>() + r * S,
                                          dx.data_ptr<float>() + r * S, S, visible,
                                          static_cast<float>(scale));
        }
      }
    });
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fused_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                  int64_t offset, int64_t length, parallel::Communicator* tp) {
  return CrossEntropyFn::apply(logits, targets, offset, length, reinterpret_cast<int64_t>(tp));
}

torch::Tensor next_token_targets(const torch::Tensor& labels) {
  TORCH_CHECK(labels.dim() == 2, "next_token_targets: labels must be [B, T]");
  auto t = torch::full(labels.sizes(), -100, labels.options().dtype(torch::kLong));
  const int64_t T = labels.size(1);
  if (T > 1) t.narrow(1, 0, T - 1).copy_(labels.narrow(1, 1, T - 1));
  return t;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                       c10::optional<torch::ScalarType> out_dtype) {
  return RmsNormFn::apply(x, weight, eps,
                          static_cast<int64_t>(out_dtype.value_or(x.scalar_type())));
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  return SwigluFn::apply(gate, up);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  return RopeFn::apply(x, cos, sin);
}

torch::Tensor causal_softmax_(torch::Tensor scores, double scale, int64_t prefix) {
  return CausalSoftmaxFn::apply(scores, scale, prefix);
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t prefix) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // fp32 with the oneDNN switch on: both products (and their backward) on oneDNN's sgemm, one
  // head per task, reading the transposed and head-split views in place.
  if (onednn_fp32_gemm() && q.scalar_type() == torch::kFloat && q.device().is_cpu()) {
    auto scores = matmul_f32(q, k.transpose(-2, -1));
    return matmul_f32(causal_softmax_(scores, scale, prefix), v);
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)).contiguous();
  return torch::matmul(causal_softmax_(scores, scale, prefix), v);
}

}  // namespace shardtune::kernels
