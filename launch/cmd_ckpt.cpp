// `shardtune ckpt inspect FILE|DIR`: a checkpoint's metadata (every field of the schema) and
// every tensor with dtype, shape and sharding. Standalone: one process, no MPI.
#include <cstdio>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "launch/commands.h"

namespace shardtune::launch {

int cmd_ckpt(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "inspect") {
    std::fprintf(stderr, "usage: shardtune ckpt inspect FILE|DIR\n");
    return kUserErrorExitCode;
  }
  const std::string file = io::resolve_checkpoint(args[1]);
  std::printf("file: %s\n%stensors:\n", file.c_str(),
              io::describe(io::read_checkpoint_info(file)).c_str());
  for (const auto& t : io::list_checkpoint_tensors(file)) {
    std::printf("  %-64s %-8s %-16s %s\n", t.path.c_str(), t.dtype.c_str(),
                c10::str(c10::IntArrayRef(t.shape)).c_str(), t.sharding.c_str());
  }
  return 0;
}

}  // namespace shardtune::launch
