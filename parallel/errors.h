// Error types shared by every layer. parallel/ is the lowest layer, so the few basics that every
// folder needs live here (see docs/architecture.md).
#pragma once

#include <stdexcept>
#include <string>

namespace shardtune {

// A problem with what the user supplied: config, data, checkpoint or model files, rank layout.
// The CLI reports it as one line (no stack trace) and exits with kUserErrorExitCode on every rank.
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
