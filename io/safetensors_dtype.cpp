// safetensors dtypes: names, widths, and element conversion between F64, F32, F16 and BF16
// (round to nearest even). Reading is in safetensors.cpp, writing in safetensors_write.cpp.
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/errors.h"

namespace shardtune::io::safetensors {

namespace {

struct DtypeRow {
  Dtype dtype;
  const char* name;
  int bits;
};
// clang-format off
constexpr DtypeRow kDtypes[] = {
    {Dtype::kBool, "BOOL", 8},          {Dtype::kF4, "F4", 4},
    {Dtype::kF6_E2M3, "F6_E2M3", 6},    {Dtype::kF6_E3M2, "F6_E3M2", 6},
    {Dtype::kU8, "U8", 8},              {Dtype::kI8, "I8", 8},
    {Dtype::kF8_E5M2, "F8_E5M2", 8},    {Dtype::kF8_E4M3, "F8_E4M3", 8},
    {Dtype::kF8_E8M0, "F8_E8M0", 8},    {Dtype::kF8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {Dtype::kF8_E5M2FNUZ, "F8_E5M2FNUZ", 8}, {Dtype::kI16, "I16", 16},
    {Dtype::kU16, "U16", 16},           {Dtype::kF16, "F16", 16},
    {Dtype::kBF16, "BF16", 16},         {Dtype::kI32, "I32", 32},
    {Dtype::kU32, "U32", 32},           {Dtype::kF32, "F32", 32},
    {Dtype::kC64, "C64", 64},           {Dtype::kF64, "F64", 64},
    {Dtype::kI64, "I64", 64},           {Dtype::kU64, "U64", 64}};
// clang-format on


// ---- element conversion ----

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_f32(sign);
    // Subnormal half: normalise into a float exponent.
    uint32_t e = 127 - 15 + 1;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_half(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff)
    return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
  const int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent gives inf
  return static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

float load_as_float(const uint8_t* p, Dtype d) {
  switch (d) {
    case Dtype::kF16: return half_to_float(load<uint16_t>(p));
    case Dtype::kBF16: return bf16_to_float(load<uint16_t>(p));
    case Dtype::kF32: return load<float>(p);
    default: return static_cast<float>(load<double>(p));
  }
}
void store_float(uint8_t* p, Dtype d, float v) {
  switch (d) {
    case Dtype::kF16: store(p, float_to_half(v)); break;
    case Dtype::kBF16: store(p, float_to_bf16(v)); break;
    case Dtype::kF32: store(p, v); break;
    default: store(p, static_cast<double>(v)); break;
  }
}

}  // namespace


const char* dtype_name(Dtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.name;
  }
  return "?";
}

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& row : kDtypes) {
    if (name == row.name) return row.dtype;
  }
  return std::nullopt;
}

int dtype_bits(Dtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.bits;
  }
  return 0;
}

bool is_convertible_float(Dtype d) {
  return d == Dtype::kF64 || d == Dtype::kF32 || d == Dtype::kF16 || d == Dtype::kBF16;
}


void convert(const void* src_v, Dtype src_dtype, void* dst_v, Dtype dst_dtype, size_t n,
             const std::string& what) {
  const auto* src = static_cast<const uint8_t*>(src_v);
  auto* dst = static_cast<uint8_t*>(dst_v);
  if (src_dtype == dst_dtype) {
    const int bits = dtype_bits(src_dtype);
    if (bits % 8 != 0) {
      throw UserError(what + ": dtype " + dtype_name(src_dtype) + " cannot be read element-wise");
    }
    std::memcpy(dst, src, n * static_cast<size_t>(bits / 8));
    return;
  }
  if (!is_convertible_float(src_dtype) || !is_convertible_float(dst_dtype)) {
    throw UserError(what + ": dtype " + dtype_name(src_dtype) + " cannot be converted to " +
                    dtype_name(dst_dtype) + " (conversions exist between F64, F32, F16 and BF16)");
  }
  const size_t ss = static_cast<size_t>(dtype_bits(src_dtype) / 8);
  const size_t ds = static_cast<size_t>(dtype_bits(dst_dtype) / 8);
  // The common loads (BF16/F16 -> F32) get tight loops; everything else goes through float.
  if (dst_dtype == Dtype::kF32 && src_dtype == Dtype::kBF16) {
    // Widening writes twice the bytes it reads: a single core stays below the page cache's read
    // rate, so large tensors are split over the machine's cores (at most 4; each part is a
    // contiguous range, the result is the same bytes).
    const auto widen = [&](size_t from, size_t to) {
      for (size_t i = from; i < to; ++i)
        store(dst + 4 * i, bf16_to_float(load<uint16_t>(src + 2 * i)));
    };
    const size_t parts =
        n < (size_t{1} << 20) ? 1 : std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
    std::vector<std::thread> helpers;
    for (size_t p = 1; p < parts; ++p) helpers.emplace_back(widen, n * p / parts, n * (p + 1) / parts);
    widen(0, n / parts);
    for (auto& t : helpers) t.join();
  } else if (dst_dtype == Dtype::kF32 && src_dtype == Dtype::kF16) {
    for (size_t i = 0; i < n; ++i) store(dst + 4 * i, half_to_float(load<uint16_t>(src + 2 * i)));
  } else if (src_dtype == Dtype::kF64 && dst_dtype == Dtype::kF32) {
    for (size_t i = 0; i < n; ++i)
      store(dst + 4 * i, static_cast<float>(load<double>(src + 8 * i)));
  } else if (dst_dtype == Dtype::kF64) {
    for (size_t i = 0; i < n; ++i) {
      store(dst + 8 * i, static_cast<double>(load_as_float(src + ss * i, src_dtype)));
    }
  } else {
    // Narrowing to F16/BF16 (from F64 through F32: F64 -> F16 may round twice).
    for (size_t i = 0; i < n; ++i)
      store_float(dst + ds * i, dst_dtype, load_as_float(src + ss * i, src_dtype));
  }
}

}  // namespace shardtune::io::safetensors
