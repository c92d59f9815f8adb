// `shardtune ckpt inspect FILE|DIR`: a checkpoint's metadata (every field of the schema) and
// every tensor with dtype, shape and sharding. Standalone: one process, no MPI. The file is
// hostile: whatever goes wrong reading it (our checks, HDF5, the file system, memory) ends with one
// error line naming it and exit code 2, never a crash or a trace.
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
  // Everything is read before anything is printed: a failure prints only the error line.
  std::string out;
  try {
    const std::string file = io::resolve_checkpoint(args[1]);
    out = "file: " + file + "\n" + io::describe(io::read_checkpoint_info(file)) + "tensors:\n";
    for (const auto& t : io::list_checkpoint_tensors(file)) {
      char line[512];
      std::snprintf(line, sizeof(line), "  %-64s %-8s %-16s %s\n",
                    io::printable(t.path, 400).c_str(), t.dtype.c_str(),
                    c10::str(c10::IntArrayRef(t.shape)).c_str(), t.sharding.c_str());
      out += line;
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw UserError(args[1] + ": out of memory reading the checkpoint (corrupted file?)");
  } catch (const std::exception& e) {
    throw UserError(args[1] + ": " + io::printable(e.what()));
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace shardtune::launch
