// Fuzzes the checkpoint reader's metadata path (io/checkpoint/verify.cpp and what it calls: the
// checked attribute readers of hdf5.cpp, info.cpp's range checks, the metadata checksum, the piece
// geometry) on whole file images, then reads every small float32 dataset piece by piece through
// the validated geometry and checks its piece checksum, as load_sharded_tensors does.
// Accepted: an OpenedCheckpoint, or a UserError. Findings: any other exception, a crash, a hang,
// a sanitizer report. Seeds: real checkpoints, the fixture written by commit 98fa50c
// (tests/fixtures/ckpt-98fa50c-tp2-step3.h5, format 2) and its format-3 upgrade made by
// tests/test_checkpoint_reader.cpp; they are larger than scripts/fuzz.sh's -max_len, so run
//   build-fuzz/tests/fuzz/fuzz_checkpoint -max_len=262144 -max_total_time=S CORPUS_DIR
// with CORPUS_DIR holding them (docs/reliability-checkpoints.md).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/errors.h"
#include "base/hash.h"
#include "io/checkpoint/verify.h"

namespace io = shardtune::io;

namespace {

// The reader opens files by name: each input goes to a file of its own in /dev/shm (tmpfs).
const std::string& scratch() {
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/fuzz_checkpoint." + std::to_string(getpid()) + ".h5";
  }();
  return path;
}

void read_pieces(const io::OpenedCheckpoint& ck) {
  for (const auto& d : ck.datasets) {
    if (d.meta.dtype != "float32" || d.format1) continue;
    int64_t numel = 1;
    for (auto v : d.meta.shape) numel = v > 0 && numel <= (1 << 16) / v ? numel * v : 1 << 17;
    if (numel > (1 << 16)) continue;
    io::h5::Handle ds(H5Dopen2(ck.file.get(), d.meta.path.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) continue;
    io::h5::Handle space(H5Dget_space(ds.get()), H5Sclose);
    for (int64_t p = 0; p < d.pieces.count; ++p) {
      std::vector<int64_t> shape = d.meta.shape;
      if (d.pieces.dim >= 0) shape[static_cast<size_t>(d.pieces.dim)] = d.pieces.parts * d.pieces.length(p);
      int64_t n = 1;
      for (auto v : shape) n *= v;
      if (n <= 0) continue;
      std::vector<float> buf(static_cast<size_t>(n));
      std::vector<hsize_t> dims(shape.begin(), shape.end());
      io::h5::Handle mspace(dims.empty() ? H5Screate(H5S_SCALAR)
                                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                            H5Sclose);
      if (!io::h5::select(space.get(), io::piece_hyperslab(d.meta.shape, d.pieces, p))) continue;
      if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), space.get(), H5P_DEFAULT, buf.data()) < 0) {
        continue;
      }
      const uint64_t sum = shardtune::base::fnv1a64x4(buf.data(), buf.size() * sizeof(float));
      if (sum == d.meta.sums[static_cast<size_t>(p)]) continue;  // the reader would report it
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    FILE* f = std::fopen(scratch().c_str(), "wb");
    if (!f) return 0;
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    const io::OpenedCheckpoint ck = io::open_checkpoint(scratch());
    (void)io::describe(ck.info);
    read_pieces(ck);
  } catch (const shardtune::UserError&) {
  }
  return 0;
}
