// Errors every layer raises. A UserError is a problem with what the user supplied (config, data,
// checkpoint or model files, rank layout): the CLI reports it as one line naming the file, field
// or tensor (no stack trace) and ends every rank with kUserErrorExitCode. Anything else escaping a
// command is an internal error (exit code 1).
#pragma once

#include <stdexcept>
#include <string>

namespace shardtune {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kUserErrorExitCode = 2;

// Throws UserError(message) when `ok` is false.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw UserError(message);
}

}  // namespace shardtune
