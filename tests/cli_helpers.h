// Running the shardtune executables from tests: their paths, mpiexec with the flags ctest uses
// (SHARDTUNE_MPIEXEC_EXTRA_FLAGS in the top-level CMakeLists, one place), and shell commands with
// their output captured.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

namespace shardtune::testing {

inline const std::string kShardtune = std::string(SHARDTUNE_BINARY_DIR) + "/launch/shardtune";
// The executable with the test hooks (tests/hooked_shardtune.cpp).
inline const std::string kHookedShardtune =
    std::string(SHARDTUNE_BINARY_DIR) + "/tests/shardtune_hooked";

// "mpiexec <root and oversubscription flags> --bind-to none", to which callers add -np and apps.
inline std::string mpiexec() {
  return std::string(SHARDTUNE_MPIEXEC) + " " + SHARDTUNE_MPIEXEC_FLAGS + " --bind-to none";
}

struct Result {
  int code = -1;       // exit code; -1 when the command did not exit normally
  std::string output;  // what it printed on stdout (callers redirect stderr as they need)
};

// Runs a shell command, capturing its output and exit code.
inline Result capture(const std::string& cmd) {
  Result r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 512> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) r.output += buf.data();
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Occurrences of `needle` in `text`.
inline int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// "loss" values of metrics.jsonl step records, as printed (round-trip precision), by step.
inline std::map<int, std::string> losses(const std::string& metrics) {
  std::map<int, std::string> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    const auto l = line.find("\"loss\":"), s = line.find("\"step\":");
    if (l == std::string::npos || s == std::string::npos) continue;
    const auto end = line.find_first_of(",}", l);
    out[std::stoi(line.substr(s + 7))] = line.substr(l + 7, end - l - 7);
  }
  return out;
}

}  // namespace shardtune::testing
