// Compiled with -O3 -fno-math-errno -ffp-contract=off (core/kernels/CMakeLists.txt): GCC vectorises these loops,
// and each exported function is cloned for AVX-512 and for the baseline ISA (target_clones), the
// dynamic loader choosing once per process. Helpers are always_inline so that they are compiled
// inside each clone (a plain inline helper would be compiled once, for the baseline ISA).
// Reductions keep 16 partial sums so that they vectorise without -ffast-math (which would let
// the compiler reorder every sum); the order is fixed, so results are deterministic per ISA.
#include "core/kernels/cpu_kernels.h"

#include <cfloat>
#include <cmath>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(SHARDTUNE_KERNELS_NO_CLONES)
#define ST_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define ST_CLONES
#endif
#define ST_INLINE static inline __attribute__((always_inline))

namespace shardtune::kernels {

namespace {

constexpr int kLanes = 16;

ST_INLINE float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
ST_INLINE uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

ST_INLINE float load(const float* p, int64_t i) { return p[i]; }
ST_INLINE float load(const bf16_t* p, int64_t i) {
  return bits_to_f32(static_cast<uint32_t>(p[i]) << 16);
}
ST_INLINE void store(float* p, int64_t i, float v) { p[i] = v; }
ST_INLINE void store(bf16_t* p, int64_t i, float v) {
  const uint32_t u = f32_to_bits(v);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;  // quiet NaN, sign and payload's top kept
  p[i] = static_cast<bf16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

// exp(x) for x in fp32: Cody-Waite range reduction by ln 2 and Cephes' degree-6 polynomial
// (about 1 ulp on [-87, 88]); inputs are clamped to that range, so -inf gives ~1e-38, never NaN.
ST_INLINE float exp_f32(float x) {
  x = x < -87.33654f ? -87.33654f : (x > 88.37626f ? 88.37626f : x);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the mantissa
  const float t = x * 1.44269504088896341f + magic;
  const int32_t n = static_cast<int32_t>(f32_to_bits(t) - f32_to_bits(magic));
  const float fn = t - magic;
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // 2^n by building the exponent; n in [-126, 127] after the clamp except at the very ends,
  // where splitting keeps both factors normal.
  const int32_t n1 = n / 2, n2 = n - n1;
  return y * bits_to_f32(static_cast<uint32_t>(n1 + 127) << 23) *
         bits_to_f32(static_cast<uint32_t>(n2 + 127) << 23);
}

ST_INLINE float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

template <typename T>
ST_INLINE float row_max(const T* x, int64_t n) {
  float acc[kLanes];
  for (int k = 0; k < kLanes; ++k) acc[k] = -FLT_MAX;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const float v = load(x, i + k);
      acc[k] = v > acc[k] ? v : acc[k];
    }
  }
  float m = -FLT_MAX;
  for (int k = 0; k < kLanes; ++k) m = acc[k] > m ? acc[k] : m;
  for (; i < n; ++i) m = load(x, i) > m ? load(x, i) : m;
  return m;
}

template <typename T>
ST_INLINE float row_sum_exp(const T* x, int64_t n, float shift) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += exp_f32(load(x, i + k) - shift);
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += exp_f32(load(x, i) - shift);
  float s = 0.0f;
  for (int k = 0; k < kLanes; ++k) s += acc[k];
  return s + tail;
}

template <typename T>
ST_INLINE void max_sumexp(const T* x, int64_t n, float* row_max_out, float* sum_exp) {
  const float m = row_max(x, n);
  *row_max_out = m;
  *sum_exp = n > 0 ? row_sum_exp(x, n, m) : 0.0f;
}

template <typename T>
ST_INLINE void ce_grad(const T* x, int64_t n, float lse, int64_t target, float scale, T* out) {
  if (scale == 0.0f) {
    for (int64_t i = 0; i < n; ++i) store(out, i, 0.0f);
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(out, i, scale * exp_f32(load(x, i) - lse));
  if (target >= 0 && target < n) store(out, target, load(out, target) - scale);
}

template <typename T>
ST_INLINE float sum_squares(const T* x, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const float v = load(x, i + k);
      acc[k] += v * v;
    }
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += load(x, i) * load(x, i);
  float s = 0.0f;
  for (int k = 0; k < kLanes; ++k) s += acc[k];
  return s + tail;
}

template <typename T, typename U>
ST_INLINE float rmsnorm(const T* x, const float* w, int64_t n, float eps, U* y) {
  const float rstd = 1.0f / std::sqrt(sum_squares(x, n) / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) store(y, i, w[i] * (load(x, i) * rstd));
  return rstd;
}

template <typename T, typename U>
ST_INLINE void rmsnorm_backward(const T* x, const float* w, const U* dy, int64_t n, float rstd,
                                T* dx, float* dw_acc) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += w[i + k] * load(dy, i + k) * load(x, i + k);
  }
  float dot = 0.0f;
  for (; i < n; ++i) dot += w[i] * load(dy, i) * load(x, i);
  for (int k = 0; k < kLanes; ++k) dot += acc[k];
  const float c = rstd * rstd * dot / static_cast<float>(n);
  for (int64_t j = 0; j < n; ++j) {
    const float xv = load(x, j), g = load(dy, j);
    store(dx, j, rstd * (w[j] * g - xv * c));
    dw_acc[j] += g * xv * rstd;
  }
}

template <typename T>
ST_INLINE void swiglu(const T* g, const T* u, int64_t n, T* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float gv = load(g, i);
    store(y, i, gv * sigmoid_f32(gv) * load(u, i));
  }
}

template <typename T>
ST_INLINE void swiglu_backward(const T* g, const T* u, const T* dy, int64_t n, T* dg, T* du) {
  for (int64_t i = 0; i < n; ++i) {
    const float gv = load(g, i), uv = load(u, i), d = load(dy, i);
    const float s = sigmoid_f32(gv);
    store(dg, i, d * uv * s * (1.0f + gv * (1.0f - s)));
    store(du, i, d * gv * s);
  }
}

template <typename T>
ST_INLINE void rope(const T* x, const float* c, const float* s, int64_t d, float sign, T* out) {
  const int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    const float a = load(x, i), b = load(x, i + h);
    store(out, i, a * c[i] - sign * b * s[i]);
    store(out, i + h, b * c[i + h] + sign * a * s[i + h]);
  }
}

}  // namespace

namespace {

// One AdamW element loop for both entry points; `decay_mask` null = every element decays. Inlined
// into each (target-cloned) caller, so each keeps its own vectorised loop.
inline __attribute__((always_inline)) void adamw_loop(float* p, const float* g, float* m,
                                                      float* v, int64_t n, const AdamWScalars& s,
                                                      const uint8_t* decay_mask) {
  const float b1 = s.beta1, b2 = s.beta2, one_b1 = 1.0f - s.beta1, one_b2 = 1.0f - s.beta2;
  const float decay = s.decay, step = s.step_size, ib = s.inv_sqrt_bc2, eps = s.eps;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] * b1 + one_b1 * gi;
    const float vi = v[i] * b2 + one_b2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) * ib + eps;
    const float keep = decay_mask == nullptr || decay_mask[i] ? decay : 1.0f;
    p[i] = p[i] * keep - step * (mi / denom);
  }
}

}  // namespace

ST_CLONES void adamw_f32(float* p, const float* g, float* m, float* v, int64_t n,
                         const AdamWScalars& s) {
  adamw_loop(p, g, m, v, n, s, nullptr);
}

ST_CLONES void adamw_masked_f32(float* p, const float* g, float* m, float* v, int64_t n,
                                const AdamWScalars& s, const uint8_t* decay_mask) {
  adamw_loop(p, g, m, v, n, s, decay_mask);
}

ST_CLONES void row_max_sumexp_f32(const float* x, int64_t n, float* m, float* s) {
  max_sumexp(x, n, m, s);
}
ST_CLONES void row_max_sumexp_bf16(const bf16_t* x, int64_t n, float* m, float* s) {
  max_sumexp(x, n, m, s);
}
ST_CLONES void ce_row_grad_f32(const float* x, int64_t n, float lse, int64_t target, float scale,
                               float* out) {
  ce_grad(x, n, lse, target, scale, out);
}
ST_CLONES void ce_row_grad_bf16(const bf16_t* x, int64_t n, float lse, int64_t target,
                                float scale, bf16_t* out) {
  ce_grad(x, n, lse, target, scale, out);
}

ST_CLONES float rmsnorm_row_f32(const float* x, const float* w, int64_t n, float eps, float* y) {
  return rmsnorm(x, w, n, eps, y);
}
ST_CLONES float rmsnorm_row_bf16(const bf16_t* x, const float* w, int64_t n, float eps,
                                 bf16_t* y) {
  return rmsnorm(x, w, n, eps, y);
}
ST_CLONES void rmsnorm_row_backward_f32(const float* x, const float* w, const float* dy, int64_t n,
                                        float rstd, float* dx, float* dw_acc) {
  rmsnorm_backward(x, w, dy, n, rstd, dx, dw_acc);
}
ST_CLONES void rmsnorm_row_backward_bf16(const bf16_t* x, const float* w, const bf16_t* dy,
                                         int64_t n, float rstd, bf16_t* dx, float* dw_acc) {
  rmsnorm_backward(x, w, dy, n, rstd, dx, dw_acc);
}
ST_CLONES float rmsnorm_row_f32_to_bf16(const float* x, const float* w, int64_t n, float eps,
                                        bf16_t* y) {
  return rmsnorm(x, w, n, eps, y);
}
ST_CLONES void rmsnorm_row_backward_f32_bf16(const float* x, const float* w, const bf16_t* dy,
                                             int64_t n, float rstd, float* dx, float* dw_acc) {
  rmsnorm_backward(x, w, dy, n, rstd, dx, dw_acc);
}

ST_CLONES void swiglu_f32(const float* g, const float* u, int64_t n, float* y) {
  swiglu(g, u, n, y);
}
ST_CLONES void swiglu_bf16(const bf16_t* g, const bf16_t* u, int64_t n, bf16_t* y) {
  swiglu(g, u, n, y);
}
ST_CLONES void swiglu_backward_f32(const float* g, const float* u, const float* dy, int64_t n,
                                   float* dg, float* du) {
  swiglu_backward(g, u, dy, n, dg, du);
}
ST_CLONES void swiglu_backward_bf16(const bf16_t* g, const bf16_t* u, const bf16_t* dy, int64_t n,
                                    bf16_t* dg, bf16_t* du) {
  swiglu_backward(g, u, dy, n, dg, du);
}

ST_CLONES void rope_row_f32(const float* x, const float* c, const float* s, int64_t d, float sign,
                            float* out) {
  rope(x, c, s, d, sign, out);
}
ST_CLONES void rope_row_bf16(const bf16_t* x, const float* c, const float* s, int64_t d,
                             float sign, bf16_t* out) {
  rope(x, c, s, d, sign, out);
}

namespace {

template <typename T>
ST_INLINE void causal_softmax(T* x, int64_t n, int64_t visible, float scale) {
  float m = -FLT_MAX;
  for (int64_t i = 0; i < visible; ++i) m = load(x, i) > m ? load(x, i) : m;
  const float shift = m * scale;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= visible; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += exp_f32(load(x, i + k) * scale - shift);
  }
  float sum = 0.0f;
  for (; i < visible; ++i) sum += exp_f32(load(x, i) * scale - shift);
  for (int k = 0; k < kLanes; ++k) sum += acc[k];
  const float inv = 1.0f / sum;
  // exp again rather than storing it first: the stored value would be rounded to T (bf16).
  for (int64_t j = 0; j < visible; ++j) store(x, j, exp_f32(load(x, j) * scale - shift) * inv);
  for (int64_t j = visible; j < n; ++j) store(x, j, 0.0f);
}

template <typename T>
ST_INLINE void causal_softmax_backward(const T* p, const T* dy, T* dx, int64_t n, int64_t visible,
                                       float scale) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= visible; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += load(dy, i + k) * load(p, i + k);
  }
  float dot = 0.0f;
  for (; i < visible; ++i) dot += load(dy, i) * load(p, i);
  for (int k = 0; k < kLanes; ++k) dot += acc[k];
  for (int64_t j = 0; j < visible; ++j) {
    store(dx, j, scale * load(p, j) * (load(dy, j) - dot));
  }
  for (int64_t j = visible; j < n; ++j) store(dx, j, 0.0f);
}

}  // namespace

ST_CLONES void causal_softmax_row_f32(float* x, int64_t n, int64_t visible, float scale) {
  causal_softmax(x, n, visible, scale);
}
ST_CLONES void causal_softmax_row_bf16(bf16_t* x, int64_t n, int64_t visible, float scale) {
  causal_softmax(x, n, visible, scale);
}
ST_CLONES void causal_softmax_row_backward_f32(const float* p, const float* dy, float* dx,
                                               int64_t n, int64_t visible, float scale) {
  causal_softmax_backward(p, dy, dx, n, visible, scale);
}
ST_CLONES void causal_softmax_row_backward_bf16(const bf16_t* p, const bf16_t* dy, bf16_t* dx,
                                                int64_t n, int64_t visible, float scale) {
  causal_softmax_backward(p, dy, dx, n, visible, scale);
}

ST_CLONES void bf16_to_f32(const bf16_t* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = load(x, i);
}
ST_CLONES void f32_to_bf16(const float* x, int64_t n, bf16_t* y) {
  for (int64_t i = 0; i < n; ++i) store(y, i, x[i]);
}

}  // namespace shardtune::kernels
