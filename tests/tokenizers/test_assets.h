// Where the tokenizer tests find the files of scripts/fetch_test_assets.sh.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardtune::test {

// SHARDTUNE_TEST_ASSETS if set, else <source>/.cache/test-assets.
inline std::string tokenizer_assets_dir() {
  if (const char* env = std::getenv("SHARDTUNE_TEST_ASSETS"); env && *env) return env;
  return std::string(SHARDTUNE_SOURCE_DIR) + "/.cache/test-assets";
}

inline bool tokenizer_assets_present() {
  return std::filesystem::exists(tokenizer_assets_dir() + "/.stamp");
}

inline constexpr const char* kMissingAssets =
    "tokenizer test assets are missing: run scripts/fetch_test_assets.sh (scripts/setup.sh runs it)";

// The JSON that a JavaScript reference (`node <source>/<script> <args...>`) prints, run once per
// build: ctest runs each test in its own process, so the output is kept in the build folder as
// <binary>/<cache_name> and reused while it is newer than the script, every `inputs` file and the
// assets' stamp. Null when node or the script failed (the caller's test then fails saying so).
inline std::unique_ptr<nlohmann::json> node_reference(const std::string& cache_name,
                                                      const std::string& script,
                                                      const std::vector<std::string>& args,
                                                      const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  const std::string src = SHARDTUNE_SOURCE_DIR;
  const fs::path out = fs::path(SHARDTUNE_BINARY_DIR) / cache_name;
  std::vector<fs::path> depends = {src + "/" + script, tokenizer_assets_dir() + "/.stamp"};
  for (const auto& in : inputs) depends.emplace_back(in);
  std::error_code ec;
  bool fresh = fs::exists(out, ec);
  for (const auto& in : depends) {
    fresh = fresh && fs::last_write_time(in, ec) <= fs::last_write_time(out, ec) && !ec;
  }
  if (!fresh) {
    const fs::path tmp = out.string() + "." + std::to_string(::getpid());
    std::string cmd = "node " + src + "/" + script;
    for (const auto& a : args) cmd += " " + a;
    cmd += " > " + tmp.string();
    if (std::system(cmd.c_str()) != 0) return nullptr;
    fs::rename(tmp, out, ec);  // atomic: parallel test processes never see a partial file
    if (ec) return nullptr;
  }
  std::ifstream in(out);
  return std::make_unique<nlohmann::json>(nlohmann::json::parse(in));
}

}  // namespace shardtune::test
