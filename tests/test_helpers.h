// Helpers every test may use (no ShardTune library needed): scratch directories and files under
// the build tree, and the check that a call fails with one UserError naming what it should.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "base/errors.h"

namespace shardtune::testing {

// A fresh empty directory under the build tree, unique per name.
inline std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(SHARDTUNE_BINARY_DIR) / "test-tmp" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// A fresh directory for the running test (its suite and name), removed when the test ends.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = temp_dir(std::string(info->test_suite_name()) + "." + info->name());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Writes `content` to <dir>/<name>; returns the path.
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::filesystem::path dir_;
};

inline std::string write_file(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

// The whole content of a file ("" when it cannot be read).
inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Expects `fn` to throw one UserError, one line long, whose message contains every needle;
// returns the message ("" on failure).
inline std::string expect_user_error(const std::function<void()>& fn,
                                     const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) {
      EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nwanted: " << n;
    }
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no UserError thrown";
  return {};
}
// One needle (a string; a braced list of needles takes the overload above).
template <typename S, typename = std::enable_if_t<std::is_convertible_v<const S&, std::string>>>
std::string expect_user_error(const std::function<void()>& fn, const S& needle) {
  return expect_user_error(fn, std::vector<std::string>{std::string(needle)});
}

}  // namespace shardtune::testing
