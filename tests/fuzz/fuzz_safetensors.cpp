// Fuzzes the safetensors header parser and reader (io/safetensors.cpp) on whole file images.
// Accepted: a File, or a UserError. Findings: any other exception, a crash, a sanitizer report, or
// a validated tensor whose bytes lie outside the image.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/safetensors.h"
#include "base/errors.h"

namespace st = shardtune::io::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  for (bool tiling : {true, false}) {
    std::unique_ptr<st::File> file;
    try {
      file = st::File::from_memory(data, size, "fuzz.safetensors", {1 << 20, tiling});
    } catch (const shardtune::UserError&) {
      continue;
    }
    for (const auto& t : file->tensors()) {
      const auto raw = file->raw(t);
      const auto* begin = reinterpret_cast<const uint8_t*>(raw.data());
      if (begin < data || begin + raw.size() > data + size) __builtin_trap();
      if (t.numel() > (1 << 16)) continue;  // the header can claim any size; the bytes must exist
      std::vector<float> out(static_cast<size_t>(t.numel()));
      try {
        file->read(t, st::Dtype::kF32, out.data(), out.size() * sizeof(float));
      } catch (const shardtune::UserError&) {
      }
      // A slice along the first dim, and one along the last with two parts when they divide.
      if (t.shape.empty()) continue;
      for (int dim : {0, static_cast<int>(t.shape.size()) - 1}) {
        const int64_t n = t.shape[static_cast<size_t>(dim)];
        const int64_t parts = n % 2 == 0 && n > 0 ? 2 : 1;
        const int64_t segment = parts ? n / parts : 0;
        st::Slice s{dim, parts, segment / 2, segment - segment / 2};
        try {
          const auto shape = st::File::slice_shape(t, s, "fuzz");
          int64_t m = 1;
          for (int64_t d : shape) m *= d;
          std::vector<uint16_t> half(static_cast<size_t>(m));
          file->read(t, s, st::Dtype::kBF16, half.data(), half.size() * 2);
        } catch (const shardtune::UserError&) {
        }
      }
    }
  }
  return 0;
}
