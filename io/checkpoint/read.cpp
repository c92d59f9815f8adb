// The read protocol: not collective. Every rank opens the file read-only with the serial driver;
// for each tensor it reads the saved pieces that overlap its own slice under the current layout,
// verifies each piece's checksum and copies its slice out (DCP-style resharding: at most one extra
// piece per boundary is read). Nothing is written when anything fails.
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "io/checkpoint/hdf5.h"
#include "io/checkpoint/pieces.h"

namespace fs = std::filesystem;

namespace shardtune::io {

namespace {

using h5::Handle;

std::string shape_str(const std::vector<int64_t>& s) { return c10::str(c10::IntArrayRef(s)); }

// One stored dataset opened for reading, with its saved piece geometry and checksums.
struct StoredTensor {
  Handle ds{-1, H5Dclose};
  Handle space{-1, H5Sclose};
  std::vector<int64_t> shape;
  Pieces saved;
  std::vector<uint64_t> sums;  // per piece; empty for format 1
  bool format1 = false;        // no per-piece checksums (the whole tensor's `fnv1a64`, if any)
};

StoredTensor open_stored(hid_t file, const ShardedTensor& item, const std::string& where) {
  require(h5::path_exists(file, item.path), where + " is missing");
  StoredTensor st;
  st.ds = Handle(H5Dopen2(file, item.path.c_str(), H5P_DEFAULT), H5Dclose);
  require(st.ds.ok(), where + " cannot be opened");
  st.space = Handle(H5Dget_space(st.ds.get()), H5Sclose);
  st.shape = h5::dataset_shape(st.ds.get());
  const auto& global = item.spec.global_shape;
  require(st.shape == global,
          where + " has shape " + shape_str(st.shape) + ", expected " + shape_str(global));
  Handle ftype(H5Dget_type(st.ds.get()), H5Tclose);
  const std::string stored = h5::type_name(ftype.get());
  const std::string wanted = h5::dtype_name(item.local.scalar_type());
  require(stored == wanted, where + " has dtype " + stored + ", expected " + wanted);
  st.format1 = !h5::has_attr(st.ds.get(), "checksums");
  if (st.format1) return st;
  const hid_t ds = st.ds.get();
  require(pieces_from_attributes(st.shape, h5::read_int_attr(ds, "shard_dim", where),
                                 h5::read_int_attr(ds, "shard_parts", where),
                                 h5::read_int_attr(ds, "shard_chunk", where), st.saved),
          where + " has an invalid sharding description");
  st.sums = h5::read_u64_array_attr(ds, "checksums", where);
  require(static_cast<int64_t>(st.sums.size()) == st.saved.count,
          where + " has " + std::to_string(st.sums.size()) + " checksums for " +
              std::to_string(st.saved.count) + " pieces");
  return st;
}

// Reads saved piece p into `buf` (the piece's shape, contiguous) and verifies its checksum.
void read_piece(StoredTensor& st, int64_t p, torch::Tensor& buf, const std::string& where) {
  if (buf.numel() > 0) {
    Handle mspace = h5::simple_space(buf.sizes().vec());
    require(h5::select(st.space.get(), piece_hyperslab(st.shape, st.saved, p)) &&
                H5Dread(st.ds.get(), h5::file_type(buf.scalar_type()), mspace.get(),
                        st.space.get(), H5P_DEFAULT, buf.data_ptr()) >= 0,
            where + " cannot be read (truncated or corrupted file?)");
  }
  if (st.format1) {
    if (h5::has_attr(st.ds.get(), "fnv1a64")) {
      require(format1_checksum(buf) == h5::read_u64_attr(st.ds.get(), "fnv1a64", where),
              where + " fails its checksum (the file is corrupted)");
    }
    return;
  }
  require(tensor_checksum(buf) == st.sums[static_cast<size_t>(p)],
          where + " fails its checksum" +
              (st.saved.count > 1 ? " (piece " + std::to_string(p) + ")" : std::string()) +
              ": the file is corrupted");
}

void load_one(hid_t file, const std::string& name, ShardedTensor& item) {
  const std::string where = name + ": tensor " + item.path;
  StoredTensor st = open_stored(file, item, where);
  const auto& s = item.spec;
  const auto opts = torch::TensorOptions().dtype(item.local.scalar_type());
  const PieceRange range = overlapping(st.saved, s);
  if (reads_one_piece(st.saved, s) && item.local.device().is_cpu()) {
    // Same layout (or replicated both times): straight into place.
    auto dst = core::real_part(item.local, s);
    auto buf = dst.is_contiguous()
                   ? dst
                   : torch::empty(piece_shape(st.shape, st.saved, range.first), opts);
    read_piece(st, range.first, buf, where);
    if (!buf.is_same(dst)) dst.copy_(buf);
    if (s.sharded() && s.length < s.chunk) {  // vocabulary padding (parts == 1)
      item.local.narrow(s.dim, s.length, s.chunk - s.length).zero_();
    }
    return;
  }
  // Another layout: assemble the overlapping pieces in a global-shape buffer, keep this slice.
  auto full = torch::empty(st.shape, opts);
  for (int64_t p = range.first; p < range.last; ++p) {
    if (st.saved.dim < 0) {
      read_piece(st, p, full, where);
      continue;
    }
    auto buf = torch::empty(piece_shape(st.shape, st.saved, p), opts);
    read_piece(st, p, buf, where);
    place_piece(full, buf, st.saved, p);
  }
  if (item.local.device().is_cpu()) {
    core::assign_from_full(item.local, full, s);
  } else {
    auto cpu = item.local.to(torch::kCPU);
    core::assign_from_full(cpu, full, s);
    item.local.copy_(cpu);
  }
}

}  // namespace

std::string resolve_checkpoint(const std::string& path) {
  if (fs::is_directory(path)) {
    const auto latest = fs::path(path) / kLatestPointer;
    require(fs::is_regular_file(latest), path + ": directory has no 'latest' checkpoint pointer");
    std::ifstream in(latest);
    std::string name;
    std::getline(in, name);
    require(!name.empty(), latest.string() + ": empty checkpoint pointer");
    const auto file = fs::path(path) / name;
    require(fs::is_regular_file(file), latest.string() + " names " + name + ", which is missing");
    return file.string();
  }
  require(fs::is_regular_file(path), path + ": no such checkpoint file or directory");
  return path;
}

CheckpointInfo read_checkpoint_info(const std::string& file) {
  Handle f = h5::open_for_read(file);
  CheckpointInfo info;
  info.format_version = h5::read_int_attr(f.get(), "format_version", file);
  require(info.format_version == 1 || info.format_version == kCheckpointFormatVersion,
          file + ": checkpoint format version " + std::to_string(info.format_version) +
              " is not supported (this build reads 1 and " +
              std::to_string(kCheckpointFormatVersion) + ")");
  info.fields([&](const char* name, auto& value, int since) {
    if (since > info.format_version) return;
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      value = h5::read_string_attr(f.get(), name, file);
    } else {
      value = h5::read_int_attr(f.get(), name, file);
    }
  });
  if (info.format_version == 1) {
    info.optimizer_step = info.step;  // format 1 counted both together
    info.checksum_algorithm = "fnv1a64";
  }
  require(info.checksum_algorithm == kChecksumAlgorithm || info.format_version == 1,
          file + ": checksum algorithm '" + info.checksum_algorithm + "' is unknown (known: " +
              kChecksumAlgorithm + ")");
  return info;
}

void load_sharded_tensors(const std::string& file, std::vector<ShardedTensor>& tensors) {
  Handle f = h5::open_for_read(file);
  torch::NoGradGuard no_grad;
  for (auto& item : tensors) load_one(f.get(), file, item);
}

void load_checkpoint_tensors(const std::string& file, std::vector<CheckpointTensor>& tensors) {
  std::vector<ShardedTensor> sharded;
  for (auto& t : tensors) {
    sharded.push_back({t.path, t.tensor, core::replicated_spec(t.tensor.sizes().vec()), false});
  }
  load_sharded_tensors(file, sharded);
}

bool checkpoint_has_tensor(const std::string& file, const std::string& path) {
  Handle f = h5::open_for_read(file);
  return h5::path_exists(f.get(), path);
}

}  // namespace shardtune::io
