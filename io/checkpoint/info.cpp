#include "io/checkpoint/info.h"

#include <cctype>
#include <cstdio>
#include <sstream>
#include <type_traits>

#include "base/errors.h"

namespace shardtune::io {

std::string step_file_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.h5", static_cast<long long>(step));
  return name;
}

std::string layout_name(int64_t tp, int64_t dp, int64_t zero) {
  return "tp=" + std::to_string(tp) + ",dp=" + std::to_string(dp) + ",zero=" + std::to_string(zero);
}

std::string printable(const std::string& text, size_t max) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max) return out + "...";
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {
// Short identifiers written by launch/ (hex run ids, fingerprints): letters, digits, '-', '_'.
bool plain_id(const std::string& s) {
  if (s.size() > 64) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}
}  // namespace

void validate_info(const std::string& file, const CheckpointInfo& info) {
  auto count = [&](const char* name, int64_t v) {
    require(v >= 0 && v <= kMaxCount, file + ": " + name + "=" + std::to_string(v) +
                                          " is out of range (0.." + std::to_string(kMaxCount) +
                                          "): the file is corrupted");
  };
  count("step", info.step);
  count("consumed_samples", info.consumed_samples);
  count("optimizer_step", info.optimizer_step);
  if (info.format_version >= 2) {
    constexpr int64_t kMaxRanks = int64_t{1} << 24;
    auto ranks = [&](const char* name, int64_t v) {
      require(v >= 1 && v <= kMaxRanks, file + ": " + name + "=" + std::to_string(v) +
                                            " is out of range (1.." + std::to_string(kMaxRanks) +
                                            "): the file is corrupted");
    };
    ranks("tp", info.tp);
    ranks("dp", info.dp);
    ranks("world", info.world);
    require(info.world == info.tp * info.dp,
            file + ": world=" + std::to_string(info.world) + " is not tp x dp (" +
                std::to_string(info.tp) + " x " + std::to_string(info.dp) +
                "): the file is corrupted");
    require(info.zero == 0 || info.zero == 1,
            file + ": zero=" + std::to_string(info.zero) + " is neither 0 nor 1: the file is corrupted");
    require(info.layout == layout_name(info.tp, info.dp, info.zero),
            file + ": layout '" + printable(info.layout) + "' disagrees with tp, dp and zero: the "
            "file is corrupted");
  }
  require(plain_id(info.run_id),
          file + ": run_id '" + printable(info.run_id) + "' is malformed: the file is corrupted");
  require(plain_id(info.data_fingerprint), file + ": data_fingerprint '" +
                                               printable(info.data_fingerprint) +
                                               "' is malformed: the file is corrupted");
}

std::string describe(CheckpointInfo info) {
  std::ostringstream out;
  const int64_t version = info.format_version;
  info.fields([&](const char* name, auto& value, int since) {
    if (since > version) return;
    out << name << ": ";
    if (std::string(name) == "base_model" && info.base_model.empty()) {
      out << "(self-contained)";
    } else {
      if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
        out << printable(value, std::string::npos);
      } else {
        out << value;
      }
    }
    out << "\n";
  });
  return out.str();
}

}  // namespace shardtune::io
