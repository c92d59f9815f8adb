// The write protocol of a sharded checkpoint (collective over the world):
//   1. every rank checksums the pieces it writes; the checksums and writer counts are reduced so
//      that all ranks write the same attributes and a piece without exactly one writer is caught
//      before anything is created;
//   2. the directory, agreed on;
//   3. the file <step>.h5.tmp, created collectively; groups, datasets and attributes in the same
//      order on every rank (HDF5 requires structure changes to be collective), each rank writing
//      only its pieces. After a failure a rank keeps making the same collective calls, so no rank
//      waits forever, and the failure is agreed on at the end;
//   4. fsync on every rank (each node flushes its own writes); rank 0 renames the file, replaces
//      `latest` and prunes, durably (durable.h).
#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "io/checkpoint/durable.h"
#include "io/checkpoint/hdf5.h"
#include "io/checkpoint/pieces.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"

namespace fs = std::filesystem;

namespace shardtune::io {

namespace {

using h5::Handle;

// Every rank learns whether any rank failed; throws the local message (or `fallback` on ranks
// that did not fail) on every rank when one did.
void agree_or_throw(parallel::Communicator& world, const std::string& local_error,
                    const std::string& fallback) {
  auto flag = torch::tensor({local_error.empty() ? 0 : 1}, torch::kInt);
  world.all_reduce(flag, parallel::ReduceOp::kMax);
  if (flag.item<int>() != 0) throw UserError(local_error.empty() ? fallback : local_error);
}

// Step 1: this rank's piece data, and every piece's checksum (indexed first[i] + p).
struct PieceSums {
  std::vector<int64_t> first;       // first piece index of tensor i
  std::vector<uint64_t> sums;       // every piece's checksum, on every rank
  std::vector<torch::Tensor> data;  // tensor i's piece this rank writes (undefined: none)
};

PieceSums checksum_pieces(const std::vector<ShardedTensor>& tensors,
                          parallel::Communicator& world) {
  PieceSums out;
  out.first.assign(tensors.size() + 1, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.first[i + 1] = out.first[i] + pieces_of(tensors[i].spec).count;
  }
  // Checksums travel as int64 (reduced with max over ranks: the writer's value beats INT64_MIN).
  auto sums = torch::full({out.first.back()}, INT64_MIN, torch::kLong);
  auto writers = torch::zeros({out.first.back()}, torch::kLong);
  auto* sum_of = sums.data_ptr<int64_t>();
  auto* writers_of = writers.data_ptr<int64_t>();
  out.data.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    h5::file_type(t.local.scalar_type());  // unsupported dtype: same error on every rank
    const int64_t p = piece_index(t.spec);
    if (!t.write || p < 0) continue;
    out.data[i] = core::real_part(t.local.detach().to(torch::kCPU), t.spec).contiguous();
    const uint64_t sum = tensor_checksum(out.data[i]);
    std::memcpy(&sum_of[out.first[i] + p], &sum, 8);
    writers_of[out.first[i] + p] = 1;
  }
  world.all_reduce(sums, parallel::ReduceOp::kMax);
  world.all_reduce(writers, parallel::ReduceOp::kSum);
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (int64_t p = 0; p < pieces_of(tensors[i].spec).count; ++p) {
      const int64_t w = writers_of[out.first[i] + p];
      if (w != 1) {
        throw std::logic_error("checkpoint: piece " + std::to_string(p) + " of " +
                               tensors[i].path + " has " + std::to_string(w) +
                               " writers (exactly one expected)");
      }
    }
  }
  out.sums.resize(static_cast<size_t>(out.first.back()));
  std::memcpy(out.sums.data(), sum_of, out.sums.size() * 8);
  return out;
}

// Root attributes from the schema's field list.
bool write_info(hid_t file, CheckpointInfo info) {
  bool ok = true;
  info.fields([&](const char* name, auto& value, int) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      ok = ok && h5::write_string_attr(file, name, value);
    } else {
      ok = ok && h5::write_int_attr(file, name, value);
    }
  });
  return ok;
}

// Step 3 for one tensor: its dataset (collective), this rank's piece, the piece attributes.
// Returns "" or what failed.
std::string write_tensor(hid_t file, hid_t dxpl, const ShardedTensor& t, const torch::Tensor& data,
                         const std::vector<uint64_t>& piece_sums) {
  const auto& global = t.spec.global_shape;
  const Pieces pc = pieces_of(t.spec);
  std::string error;
  if (!h5::ensure_groups(file, t.path)) error = "cannot create the groups of " + t.path;
  Handle fspace = h5::simple_space(global);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  // One chunk per piece: whole chunks per writer, no read-modify-write between ranks.
  if (const auto chunk = chunk_shape(global, pc); !chunk.empty()) {
    const std::vector<hsize_t> dims(chunk.begin(), chunk.end());
    H5Pset_chunk(dcpl.get(), static_cast<int>(dims.size()), dims.data());
  }
  const hid_t type = h5::file_type(t.local.scalar_type());
  Handle ds(H5Dcreate2(file, t.path.c_str(), type, fspace.get(), H5P_DEFAULT, dcpl.get(),
                       H5P_DEFAULT),
            H5Dclose);
  if (!ds.ok()) return "cannot create dataset " + t.path;  // collective: failed on every rank
  const bool mine = data.defined() && data.numel() > 0;
  const unsigned char dummy = 0;
  Handle mspace = mine ? h5::simple_space(data.sizes().vec()) : h5::simple_space({1});
  const bool selected =
      mine ? h5::select(fspace.get(), piece_hyperslab(global, pc, piece_index(t.spec)))
           : H5Sselect_none(fspace.get()) >= 0 && H5Sselect_none(mspace.get()) >= 0;
  if (!selected && error.empty()) error = "cannot select the piece of " + t.path;
  if (H5Dwrite(ds.get(), type, mspace.get(), fspace.get(), dxpl, mine ? data.data_ptr() : &dummy) <
          0 &&
      error.empty()) {
    error = "cannot write tensor " + t.path + " (disk full?)";
  }
  if ((!h5::write_int_attr(ds.get(), "shard_dim", pc.dim) ||
       !h5::write_int_attr(ds.get(), "shard_parts", pc.parts) ||
       !h5::write_int_attr(ds.get(), "shard_chunk", pc.chunk) ||
       !h5::write_u64_array_attr(ds.get(), "checksums", piece_sums)) &&
      error.empty()) {
    error = "cannot write the attributes of " + t.path;
  }
  return error;
}

// Removes step files beyond the newest keep_last (never `keep_name`) and any *.h5.tmp left by an
// interrupted write.
void prune(const std::string& dir, const std::string& keep_name, int keep_last) {
  std::vector<std::string> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string n = entry.path().filename().string();
    if (n.rfind("step-", 0) != 0) continue;
    if (entry.path().extension() == ".h5") {
      steps.push_back(n);
    } else if (n.size() > 7 && n.compare(n.size() - 7, 7, ".h5.tmp") == 0) {
      fs::remove(entry.path(), ec);
    }
  }
  if (keep_last <= 0) return;
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < steps.size(); ++i) {
    if (steps[i] != keep_name) fs::remove(fs::path(dir) / steps[i], ec);
  }
}

}  // namespace

std::string save_sharded_checkpoint(const std::string& dir, const CheckpointInfo& info,
                                    const std::vector<ShardedTensor>& tensors,
                                    parallel::Communicator& world, const SaveOptions& options) {
  const int rank = world.rank();
  auto* mpi = dynamic_cast<parallel::MpiCommunicator*>(&world);
  if (!mpi && world.size() > 1) {
    throw std::logic_error("save_sharded_checkpoint: a multi-rank world must be MPI (MPI-IO)");
  }
  // A world of one writes through HDF5's serial (sec2) driver: no MPI-IO layer in between.
  if (world.size() == 1) mpi = nullptr;

  const PieceSums pieces = checksum_pieces(tensors, world);

  std::string error;
  {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) error = dir + ": cannot create checkpoint directory (" + ec.message() + ")";
  }
  agree_or_throw(world, error, dir + ": cannot create checkpoint directory");

  const std::string name = step_file_name(info.step);
  const std::string final_path = (fs::path(dir) / name).string();
  const std::string tmp_path = final_path + ".tmp";
  {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (mpi) {
      H5Pset_fapl_mpio(fapl.get(), mpi->native_handle(), MPI_INFO_NULL);
      H5Pset_all_coll_metadata_ops(fapl.get(), 1);
      H5Pset_coll_metadata_write(fapl.get(), 1);
    }
    // Large datasets start on 64 KiB boundaries (file-system blocks and stripes).
    H5Pset_alignment(fapl.get(), 64 * 1024, 64 * 1024);
    Handle file(H5Fcreate(tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file.ok()) error = tmp_path + ": cannot create checkpoint file";
    agree_or_throw(world, error, tmp_path + ": cannot create checkpoint file");
    auto fail = [&](const std::string& what) {
      if (error.empty() && !what.empty()) error = tmp_path + ": " + what;
    };
    if (!write_info(file.get(), info)) fail("cannot write root attributes");
    Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    if (mpi) {
      H5Pset_dxpl_mpio(dxpl.get(), options.collective_transfer ? H5FD_MPIO_COLLECTIVE
                                                                : H5FD_MPIO_INDEPENDENT);
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto first = pieces.sums.begin() + pieces.first[i];
      const std::vector<uint64_t> piece_sums(first, pieces.sums.begin() + pieces.first[i + 1]);
      fail(write_tensor(file.get(), dxpl.get(), tensors[i], pieces.data[i], piece_sums));
    }
    if (options.before_close) options.before_close(dir, info.step, rank);
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) fail("cannot flush");
    if (!file.reset()) fail("cannot close (disk full?)");
  }
  if (error.empty() && !fsync_path(tmp_path, false)) error = tmp_path + ": fsync failed";
  agree_or_throw(world, error, tmp_path + ": checkpoint write failed on another rank");
  if (rank == 0) {
    try {
      durable_rename(tmp_path, final_path);
      atomic_write_text((fs::path(dir) / kLatestPointer).string(), name + "\n");
      prune(dir, name, options.keep_last);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree_or_throw(world, error, final_path + ": checkpoint finalisation failed on rank 0");
  return final_path;
}

std::string save_checkpoint(const std::string& dir, const CheckpointInfo& info,
                            const std::vector<CheckpointTensor>& tensors, int keep_last) {
  std::vector<ShardedTensor> sharded;
  for (const auto& t : tensors) {
    sharded.push_back({t.path, t.tensor, core::replicated_spec(t.tensor.sizes().vec()), true});
  }
  parallel::LocalCommunicator self("self");
  SaveOptions options;
  options.keep_last = keep_last;
  return save_sharded_checkpoint(dir, info, sharded, self, options);
}

}  // namespace shardtune::io
