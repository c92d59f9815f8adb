// Where the tokenizer tests find the files of scripts/fetch_test_assets.sh.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

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

}  // namespace shardtune::test
