// fp32 GEMMs through oneDNN's sgemm (fused_ops.h "fp32 GEMM"): the symbol lookup, the strided
// 2-D and batched products, the linear layer and the batched product with their backward.
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "core/kernels/fused_ops.h"

namespace shardtune::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// oneDNN's C API: row-major C = alpha * op(A) * op(B) + beta * C; returns dnnl_success (0) or an
// error status. Declared here (the prototype of dnnl.h, oneDNN 2.x and 3.x) so that no oneDNN
// development package is needed: the library is the one LibTorch itself links.
using DnnlSgemm = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                          float* c, int64_t ldc);

DnnlSgemm find_dnnl_sgemm() {
  // Already in the process when LibTorch links oneDNN dynamically (Debian's libtorch1.13); a
  // LibTorch with oneDNN linked in statically hides the symbol, and then a separately installed
  // libdnnl is tried. Neither: LibTorch's own mm.
  if (void* sym = dlsym(RTLD_DEFAULT, "dnnl_sgemm")) return reinterpret_cast<DnnlSgemm>(sym);
  for (const char* name : {"libdnnl.so.2", "libdnnl.so.3"}) {
    if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
      if (void* sym = dlsym(lib, "dnnl_sgemm")) return reinterpret_cast<DnnlSgemm>(sym);
    }
  }
  return nullptr;
}

DnnlSgemm dnnl_sgemm() {
  static const DnnlSgemm fn = find_dnnl_sgemm();
  return fn;
}

std::atomic<bool> g_onednn_fp32{false};

// How oneDNN reads each [rows, cols] matrix of an fp32 operand (its last two dims) in place: 'N'
// with the row stride, 'T' with the column stride (a transposed view), or 0 when neither fits (a
// copy is needed).
char layout_of(const torch::Tensor& t, int64_t* ld) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t row_stride = t.stride(-2), col_stride = t.stride(-1);
  if (col_stride == 1 && row_stride >= std::max<int64_t>(1, cols)) {
    *ld = row_stride;
    return 'N';
  }
  if (row_stride == 1 && col_stride >= std::max<int64_t>(1, rows)) {
    *ld = col_stride;
    return 'T';
  }
  return 0;
}

// The operand as oneDNN reads it: `t` itself when its layout fits, else a contiguous copy; sets
// `trans` and `ld`.
torch::Tensor as_operand(const torch::Tensor& t, char* trans, int64_t* ld) {
  *trans = layout_of(t, ld);
  if (*trans != 0) return t;
  auto c = t.contiguous();
  *trans = layout_of(c, ld);
  return c;
}

void check_f32_cpu(const char* what, const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.scalar_type() == torch::kFloat && b.scalar_type() == torch::kFloat &&
                  a.device().is_cpu() && b.device().is_cpu(),
              what, ": fp32 CPU operands expected");
}

// Element offset of matrix `i` (row-major over the leading dims) of `t`.
int64_t matrix_offset(const torch::Tensor& t, int64_t i) {
  int64_t offset = 0;
  for (int64_t d = t.dim() - 3; d >= 0; --d) {
    offset += (i % t.size(d)) * t.stride(d);
    i /= t.size(d);
  }
  return offset;
}

// a [..., m, k] @ b [..., k, n] (shapes checked by the caller: mm_f32, bmm_f32) into a new
// contiguous [..., m, n], one oneDNN sgemm per matrix; LibTorch's matmul when oneDNN is absent or
// the product is empty. One matrix runs on oneDNN's own threads; several are spread one per task
// over LibTorch's (oneDNN then runs single-threaded inside the parallel region), since a single
// attention head's product is too small to split.
torch::Tensor sgemm_each_matrix(const char* what, const torch::Tensor& a, const torch::Tensor& b) {
  check_f32_cpu(what, a, b);
  const DnnlSgemm sgemm = dnnl_sgemm();
  if (sgemm == nullptr || a.numel() == 0 || b.numel() == 0) return torch::matmul(a, b);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  int64_t lda = 0, ldb = 0;
  char ta = 0, tb = 0;
  const torch::Tensor ac = as_operand(a, &ta, &lda), bc = as_operand(b, &tb, &ldb);
  auto sizes = a.sizes().vec();
  sizes.back() = n;
  auto c = torch::empty(sizes, a.options().memory_format(torch::MemoryFormat::Contiguous));
  const int64_t batch = c.numel() / (m * n);
  const float* pa = ac.data_ptr<float>();
  const float* pb = bc.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  std::atomic<int> failed{0};
  auto product = [&](int64_t i) {
    const int status = sgemm(ta, tb, m, n, k, 1.0f, pa + matrix_offset(ac, i), lda,
                             pb + matrix_offset(bc, i), ldb, 0.0f, pc + i * m * n, n);
    if (status != 0) failed.store(status);
  };
  if (batch == 1) {
    product(0);
  } else {
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) product(i);
    });
  }
  TORCH_CHECK(failed.load() == 0, what, ": oneDNN sgemm failed with status ", failed.load(),
              " for ", a.sizes(), " x ", b.sizes());
  return c;
}

struct LinearF32Fn : torch::autograd::Function<LinearF32Fn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias_opt) {
    const torch::Tensor bias = bias_opt.value_or(torch::Tensor());
    const int64_t out = weight.size(0), in = weight.size(1);
    auto x2 = x.reshape({-1, in});
    auto y = mm_f32(x2, weight.t());
    if (bias.defined()) y.add_(bias);
    ctx->save_for_backward({x, weight});
    ctx->saved_data["has_bias"] = bias.defined();
    auto sizes = x.sizes().vec();
    sizes.back() = out;
    return y.view(sizes);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const int64_t out = weight.size(0), in = weight.size(1);
    auto g2 = grad[0].reshape({-1, out});
    // Frozen weights (LoRA, P-tuning backbones, Freeze) skip their GEMM.
    torch::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = mm_f32(g2, weight).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = mm_f32(g2.t(), x.reshape({-1, in}));
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) db = g2.sum(0);
    return {dx, dw, db};
  }
};

struct BmmF32Fn : torch::autograd::Function<BmmF32Fn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b) {
    ctx->save_for_backward({a, b});
    return bmm_f32(a, b);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& g = grad[0];
    torch::Tensor da, db;
    if (ctx->needs_input_grad(0)) da = bmm_f32(g, saved[1].transpose(-2, -1));
    if (ctx->needs_input_grad(1)) db = bmm_f32(saved[0].transpose(-2, -1), g);
    return {da, db};
  }
};

}  // namespace

bool onednn_sgemm_available() { return dnnl_sgemm() != nullptr; }

void set_onednn_fp32_gemm(bool on) { g_onednn_fp32.store(on && onednn_sgemm_available()); }

bool onednn_fp32_gemm() { return g_onednn_fp32.load(); }

torch::Tensor mm_f32(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "mm_f32: [m, k] x [k, n] expected, got ", a.sizes(), " and ", b.sizes());
  return sgemm_each_matrix("mm_f32", a, b);
}

torch::Tensor bmm_f32(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.dim() >= 3 && a.dim() == b.dim() && a.size(-1) == b.size(-2) &&
                  a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2),
              "bmm_f32: [..., m, k] x [..., k, n] with the same leading dims expected, got ",
              a.sizes(), " and ", b.sizes());
  return sgemm_each_matrix("bmm_f32", a, b);
}

torch::Tensor linear_f32(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
  return LinearF32Fn::apply(x, weight,
                            bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt);
}

torch::Tensor matmul_f32(const torch::Tensor& a, const torch::Tensor& b) {
  return BmmF32Fn::apply(a, b);
}

}  // namespace shardtune::kernels
