#include "io/checkpoint/metadata.h"

#include <algorithm>
#include <type_traits>

#include "base/hash.h"

namespace shardtune::io {

uint64_t metadata_checksum(const CheckpointInfo& info, std::vector<DatasetMeta> datasets) {
  // Length-prefixed strings: no value can imitate a separator.
  std::string text;
  auto str = [&](const std::string& s) { text += std::to_string(s.size()) + ":" + s + ";"; };
  CheckpointInfo copy = info;
  const int64_t version = info.format_version;
  copy.fields([&](const char* name, auto& value, int since) {
    if (since > version) return;
    text += name;
    text += "=";
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      str(value);
    } else {
      text += std::to_string(value) + ";";
    }
  });
  std::sort(datasets.begin(), datasets.end(),
            [](const DatasetMeta& a, const DatasetMeta& b) { return a.path < b.path; });
  for (const auto& d : datasets) {
    text += "\npath=";
    str(d.path);
    text += "shape=";
    for (auto v : d.shape) text += std::to_string(v) + ",";
    text += ";dtype=";
    str(d.dtype);
    text += "dim=" + std::to_string(d.dim) + ";parts=" + std::to_string(d.parts) +
            ";chunk=" + std::to_string(d.chunk) + ";sums=";
    for (auto v : d.sums) text += std::to_string(v) + ",";
    text += ";";
  }
  return base::fnv1a64x4(text.data(), text.size());
}

}  // namespace shardtune::io
