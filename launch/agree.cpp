#include "launch/agree.h"

#include <cstdio>
#include <string>

#include "base/errors.h"
#include "launch/bootstrap.h"

namespace shardtune::launch {

int exit_code_of(const std::exception& e) {
  return dynamic_cast<const UserError*>(&e) != nullptr ? kUserErrorExitCode : 1;
}

int agree(parallel::Communicator& world, const std::function<void()>& body) {
  std::string message;
  int code = 0;
  try {
    body();
  } catch (const std::exception& e) {
    code = exit_code_of(e);
    message = code == kUserErrorExitCode ? e.what() : std::string("internal error: ") + e.what();
  }
  auto first = torch::tensor({code ? world.rank() : world.size(), code}, torch::kInt);
  auto lowest = first.clone();
  world.all_reduce(lowest, parallel::ReduceOp::kMin);
  const int failing = lowest[0].item<int>();
  if (failing == world.size()) return 0;
  auto worst = first.narrow(0, 1, 1).clone();
  world.all_reduce(worst, parallel::ReduceOp::kMax);
  if (world.rank() == failing) {
    std::fprintf(stderr, "shardtune: error%s: %s\n",
                 world.size() > 1 ? (" on rank " + std::to_string(failing)).c_str() : "",
                 message.c_str());
  }
  return worst[0].item<int>();
}

int run_or_abort(parallel::Communicator& world, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    const int code = exit_code_of(e);
    std::fprintf(stderr, "shardtune: error on rank %d: %s\n", world.rank(), e.what());
    std::fflush(stderr);
    if (world.size() > 1) abort_all(code);
    return code;
  }
  return 0;
}

}  // namespace shardtune::launch
