// Token datasets in HDF5: a collective write (each rank its documents' ranges of contiguous 1-D
// datasets, through MPI-IO when there is more than one rank) and a checked serial read.
#include "io/token_dataset.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "base/errors.h"
#include "io/checkpoint/hdf5.h"
#include "parallel/mpi_communicator.h"

namespace shardtune::io {
namespace {

namespace fs = std::filesystem;

// HDF5 prints its own error stacks unless told not to; ours are one line each.
struct QuietHdf5 {
  QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

// HDF5 handles and attributes go through the checkpoint package (io/checkpoint/hdf5.h): its readers
// check class, dataspace and size before reading, as an untrusted file needs.
using h5::Handle;
using h5::read_int_attr;
using h5::write_int_attr;
using h5::write_string_attr;

// A token dataset's string attributes are names and a path (at most PATH_MAX); anything longer is
// hostile.
constexpr size_t kMaxStringAttr = 4096;
std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  return h5::read_string_attr(obj, name, where, kMaxStringAttr);
}

bool fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void agree_or_throw(parallel::Communicator& world, const std::string& local_error,
                    const std::string& fallback) {
  auto flag = torch::tensor({local_error.empty() ? 0 : 1}, torch::kInt);
  world.all_reduce(flag, parallel::ReduceOp::kMax);
  if (flag.item<int>() != 0) throw UserError(local_error.empty() ? fallback : local_error);
}

// Checks one document before it is written; "" when it is fine.
std::string check_document(const core::Example& d, int64_t vocab_size, size_t index) {
  const std::string at = "document " + std::to_string(index) + " of this rank";
  if (d.tokens.empty()) return at + " is empty";
  if (d.labels.size() != d.tokens.size()) return at + ": labels and tokens differ in length";
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    if (d.tokens[i] < 0 || d.tokens[i] >= vocab_size) {
      return at + ": id " + std::to_string(d.tokens[i]) + " at position " + std::to_string(i) +
             " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")";
    }
    if (d.labels[i] != d.tokens[i] && d.labels[i] != core::kIgnoreIndex) {
      return at + ": label " + std::to_string(d.labels[i]) + " at position " + std::to_string(i) +
             " is neither its token nor -100";
    }
  }
  return "";
}

// Writes elements [offset, offset + count) of the 1-D dataset `name` from `data` (count may be
// 0: the rank still takes part in the collective call).
bool write_range(hid_t file, const char* name, hid_t file_type, hid_t mem_type, int64_t total,
                 int64_t offset, int64_t count, const void* data, hid_t dxpl) {
  hsize_t dims[1] = {static_cast<hsize_t>(total)};
  Handle fspace(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  Handle ds(H5Dcreate2(file, name, file_type, fspace.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  if (!ds.ok()) return false;
  hsize_t n[1] = {static_cast<hsize_t>(std::max<int64_t>(count, 1))};
  Handle mspace(H5Screate_simple(1, n, nullptr), H5Sclose);
  static const unsigned char dummy[8] = {};
  if (count > 0) {
    hsize_t start[1] = {static_cast<hsize_t>(offset)};
    hsize_t cnt[1] = {static_cast<hsize_t>(count)};
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, cnt, nullptr) < 0) {
      return false;
    }
  } else if (H5Sselect_none(fspace.get()) < 0 || H5Sselect_none(mspace.get()) < 0) {
    return false;
  }
  return H5Dwrite(ds.get(), mem_type, mspace.get(), fspace.get(), dxpl,
                  count > 0 ? data : dummy) >= 0;
}

}  // namespace

TokenDatasetInfo write_token_dataset(const std::string& path, const TokenDatasetInfo& info,
                                     const std::vector<core::Example>& documents,
                                     parallel::Communicator& world) {
  static QuietHdf5 quiet;
  const int rank = world.rank(), size = world.size();
  std::string error;
  if (info.vocab_size <= 0 || info.vocab_size > (int64_t{1} << 32)) {
    error = path + ": vocabulary size " + std::to_string(info.vocab_size) + " is out of range";
  }
  for (size_t i = 0; error.empty() && i < documents.size(); ++i) {
    const std::string problem = check_document(documents[i], info.vocab_size, i);
    if (!problem.empty()) error = path + ": rank " + std::to_string(rank) + ": " + problem;
  }
  agree_or_throw(world, error, path + ": a document on another rank cannot be written");

  // Where this rank's documents and tokens go.
  int64_t my_tokens = 0;
  for (const auto& d : documents) my_tokens += static_cast<int64_t>(d.tokens.size());
  auto mine = torch::tensor({static_cast<int64_t>(documents.size()), my_tokens}, torch::kLong);
  auto all = torch::empty({2 * size}, torch::kLong);
  world.all_gather(all, mine);
  int64_t doc_start = 0, token_start = 0, total_docs = 0, total_tokens = 0;
  for (int r = 0; r < size; ++r) {
    const int64_t d = all[2 * r].item<int64_t>(), t = all[2 * r + 1].item<int64_t>();
    if (r < rank) {
      doc_start += d;
      token_start += t;
    }
    total_docs += d;
    total_tokens += t;
  }
  require(total_docs > 0, path + ": no documents to write");

  const bool small = info.vocab_size <= 65536;
  std::vector<uint16_t> ids16;
  std::vector<uint32_t> ids32;
  std::vector<uint8_t> mask;
  std::vector<int64_t> offsets;  // this rank's entries doc_offsets[doc_start + 1 ...]
  mask.reserve(static_cast<size_t>(my_tokens));
  (small ? ids16.reserve(static_cast<size_t>(my_tokens))
         : ids32.reserve(static_cast<size_t>(my_tokens)));
  int64_t running = token_start;
  if (rank == 0) offsets.push_back(0);
  for (const auto& d : documents) {
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (small) {
        ids16.push_back(static_cast<uint16_t>(d.tokens[i]));
      } else {
        ids32.push_back(static_cast<uint32_t>(d.tokens[i]));
      }
      mask.push_back(d.labels[i] == core::kIgnoreIndex ? 0 : 1);
    }
    running += static_cast<int64_t>(d.tokens.size());
    offsets.push_back(running);
  }

  const std::string tmp = path + ".tmp";
  auto* mpi = dynamic_cast<parallel::MpiCommunicator*>(&world);
  {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (mpi && size > 1) {
      H5Pset_fapl_mpio(fapl.get(), mpi->native_handle(), MPI_INFO_NULL);
      H5Pset_all_coll_metadata_ops(fapl.get(), 1);
      H5Pset_coll_metadata_write(fapl.get(), 1);
    } else {
      require(size == 1, path + ": a token dataset is written by MPI ranks or by one process");
    }
    H5Pset_alignment(fapl.get(), 64 * 1024, 64 * 1024);
    Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file.ok()) error = tmp + ": cannot create the file";
    agree_or_throw(world, error, tmp + ": cannot create the file");
    auto fail = [&](const std::string& what) {
      if (error.empty()) error = tmp + ": " + what;
    };
    const hid_t f = file.get();
    const bool attrs_ok =
        write_string_attr(f, "format", kTokenDatasetFormat) &&
        write_int_attr(f, "format_version", kTokenDatasetFormatVersion) &&
        write_int_attr(f, "vocab_size", info.vocab_size) &&
        write_string_attr(f, "tokenizer", info.tokenizer) &&
        write_string_attr(f, "chat_template", info.chat_template) &&
        write_int_attr(f, "train_on_prompt", info.train_on_prompt ? 1 : 0) &&
        write_string_attr(f, "source", info.source) &&
        write_int_attr(f, "documents", total_docs) && write_int_attr(f, "tokens", total_tokens);
    if (!attrs_ok) fail("cannot write the attributes");
    Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    if (mpi && size > 1) H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_INDEPENDENT);
    const bool tokens_ok =
        small ? write_range(f, "tokens", H5T_STD_U16LE, H5T_NATIVE_UINT16, total_tokens,
                            token_start, my_tokens, ids16.data(), dxpl.get())
              : write_range(f, "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, total_tokens,
                            token_start, my_tokens, ids32.data(), dxpl.get());
    if (!tokens_ok) fail("cannot write tokens (disk full?)");
    if (!write_range(f, "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, total_tokens, token_start,
                     my_tokens, mask.data(), dxpl.get())) {
      fail("cannot write loss_mask (disk full?)");
    }
    const int64_t offsets_at = rank == 0 ? 0 : doc_start + 1;
    if (!write_range(f, "doc_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, total_docs + 1,
                     offsets_at, static_cast<int64_t>(offsets.size()), offsets.data(),
                     dxpl.get())) {
      fail("cannot write doc_offsets (disk full?)");
    }
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) fail("cannot flush");
    if (!file.reset()) fail("cannot close (disk full?)");
  }
  if (error.empty() && rank == 0 && !fsync_file(tmp)) error = tmp + ": fsync failed";
  agree_or_throw(world, error, tmp + ": the write failed on another rank");
  if (rank == 0) {
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) error = path + ": cannot rename " + tmp + " to it (" + ec.message() + ")";
  }
  agree_or_throw(world, error, path + ": cannot rename the temporary file");
  TokenDatasetInfo out = info;
  out.documents = total_docs;
  out.tokens = total_tokens;
  out.token_type = small ? "uint16" : "uint32";
  return out;
}

namespace {

h5::ReadFile open_file(const std::string& path) {
  base::ReadingFile reading(path);
  std::error_code ec;
  require(fs::is_regular_file(path, ec), path + ": token dataset not found");
  require(H5Fis_hdf5(path.c_str()) > 0,
          path + ": not an HDF5 file (a token dataset is written by shardtune preprocess)");
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  require(f.ok(), path + ": cannot open as HDF5 (truncated or corrupted?)");
  return h5::ReadFile{std::move(reading), std::move(f)};
}

TokenDatasetInfo read_info(hid_t f, const std::string& path) {
  const std::string format = read_string_attr(f, "format", path);
  require(format == kTokenDatasetFormat, path + ": format is '" + format + "', not '" +
                                             kTokenDatasetFormat + "'");
  const int64_t version = read_int_attr(f, "format_version", path);
  require(version == kTokenDatasetFormatVersion,
          path + ": format_version " + std::to_string(version) + " is not supported (this "
                 "build reads version " + std::to_string(kTokenDatasetFormatVersion) + ")");
  TokenDatasetInfo info;
  info.vocab_size = read_int_attr(f, "vocab_size", path);
  require(info.vocab_size > 0 && info.vocab_size <= (int64_t{1} << 32),
          path + ": vocab_size " + std::to_string(info.vocab_size) + " is out of range");
  info.tokenizer = read_string_attr(f, "tokenizer", path);
  info.chat_template = read_string_attr(f, "chat_template", path);
  const int64_t top = read_int_attr(f, "train_on_prompt", path);
  require(top == 0 || top == 1, path + ": train_on_prompt must be 0 or 1");
  info.train_on_prompt = top == 1;
  info.source = read_string_attr(f, "source", path);
  info.documents = read_int_attr(f, "documents", path);
  info.tokens = read_int_attr(f, "tokens", path);
  require(info.documents > 0, path + ": documents = " + std::to_string(info.documents) +
                                  " (at least one expected)");
  require(info.tokens >= info.documents,
          path + ": tokens = " + std::to_string(info.tokens) + " is fewer than the " +
              std::to_string(info.documents) + " documents (none may be empty)");
  info.token_type = info.vocab_size <= 65536 ? "uint16" : "uint32";
  return info;
}

// Opens a 1-D contiguous dataset of `length` elements whose stored type is `type` (an unsigned
// or signed integer of `bytes` bytes), checking that its storage holds exactly that much.
Handle open_checked(hid_t f, const char* name, int64_t length, H5T_sign_t sign, size_t bytes,
                    const std::string& path) {
  const std::string where = path + ": dataset '" + name + "'";
  require(H5Lexists(f, name, H5P_DEFAULT) > 0, where + " is missing");
  Handle ds(H5Dopen2(f, name, H5P_DEFAULT), H5Dclose);
  require(ds.ok(), where + " cannot be opened");
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  require(H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == bytes &&
              H5Tget_sign(type.get()) == sign,
          where + " has the wrong type (" + std::string(sign == H5T_SGN_NONE ? "uint" : "int") +
              std::to_string(bytes * 8) + " expected)");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  require(H5Sget_simple_extent_ndims(space.get()) == 1, where + " is not one-dimensional");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  require(static_cast<int64_t>(dims[0]) == length,
          where + " has " + std::to_string(dims[0]) + " elements, " + std::to_string(length) +
              " expected from the attributes");
  Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  require(H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl.get()) == 0,
          where + " is not stored contiguously without filters");
  require(H5Dget_storage_size(ds.get()) == static_cast<hsize_t>(length) * bytes,
          where + " stores " + std::to_string(H5Dget_storage_size(ds.get())) + " bytes, " +
              std::to_string(static_cast<hsize_t>(length) * bytes) + " expected (truncated?)");
  return ds;
}

template <typename T>
void read_range(hid_t ds, hid_t mem_type, int64_t offset, int64_t count, T* out,
                const std::string& where) {
  if (count == 0) return;
  Handle fspace(H5Dget_space(ds), H5Sclose);
  hsize_t start[1] = {static_cast<hsize_t>(offset)};
  hsize_t cnt[1] = {static_cast<hsize_t>(count)};
  Handle mspace(H5Screate_simple(1, cnt, nullptr), H5Sclose);
  require(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, cnt, nullptr) >= 0 &&
              H5Dread(ds, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out) >= 0,
          where + ": cannot read (corrupted?)");
}

}  // namespace

TokenDatasetInfo read_token_dataset_info(const std::string& path) {
  static QuietHdf5 quiet;
  const auto f = open_file(path);
  return read_info(f.get(), path);
}

TokenDataset read_token_dataset(const std::string& path, int64_t max_len) {
  static QuietHdf5 quiet;
  const auto f = open_file(path);
  TokenDataset out;
  out.info = read_info(f.get(), path);
  const auto& info = out.info;
  const bool small = info.vocab_size <= 65536;
  Handle tokens_ds = open_checked(f.get(), "tokens", info.tokens, H5T_SGN_NONE, small ? 2 : 4, path);
  Handle mask_ds = open_checked(f.get(), "loss_mask", info.tokens, H5T_SGN_NONE, 1, path);
  Handle offsets_ds =
      open_checked(f.get(), "doc_offsets", info.documents + 1, H5T_SGN_2, 8, path);

  std::vector<int64_t> offsets(static_cast<size_t>(info.documents + 1));
  read_range(offsets_ds.get(), H5T_NATIVE_INT64, 0, info.documents + 1, offsets.data(),
             path + ": doc_offsets");
  require(offsets.front() == 0, path + ": doc_offsets[0] is " + std::to_string(offsets.front()) +
                                    ", 0 expected");
  require(offsets.back() == info.tokens,
          path + ": doc_offsets ends at " + std::to_string(offsets.back()) + ", " +
              std::to_string(info.tokens) + " (the token count) expected");
  for (size_t d = 0; d + 1 < offsets.size(); ++d) {
    require(offsets[d + 1] > offsets[d], path + ": document " + std::to_string(d) +
                                             " is empty or negative (doc_offsets[" +
                                             std::to_string(d) + "] = " +
                                             std::to_string(offsets[d]) + ", next " +
                                             std::to_string(offsets[d + 1]) + ")");
  }

  // Documents are read in blocks of consecutive ones (one HDF5 read per block and dataset, not
  // per document), then cut to max_len.
  constexpr int64_t kBlockTokens = int64_t{1} << 23;
  out.documents.resize(static_cast<size_t>(info.documents));
  std::vector<uint16_t> buf16;
  std::vector<uint32_t> buf32;
  std::vector<uint8_t> mask;
  size_t d0 = 0;
  while (d0 < out.documents.size()) {
    size_t d1 = d0 + 1;
    while (d1 < out.documents.size() && offsets[d1 + 1] - offsets[d0] <= kBlockTokens) ++d1;
    const int64_t begin = offsets[d0], n = offsets[d1] - begin;
    const std::string where = path + ": documents " + std::to_string(d0) + " to " +
                              std::to_string(d1 - 1);
    mask.resize(static_cast<size_t>(n));
    read_range(mask_ds.get(), H5T_NATIVE_UINT8, begin, n, mask.data(), where);
    if (small) {
      buf16.resize(static_cast<size_t>(n));
      read_range(tokens_ds.get(), H5T_NATIVE_UINT16, begin, n, buf16.data(), where);
    } else {
      buf32.resize(static_cast<size_t>(n));
      read_range(tokens_ds.get(), H5T_NATIVE_UINT32, begin, n, buf32.data(), where);
    }
    for (size_t d = d0; d < d1; ++d) {
      const int64_t first = offsets[d] - begin;
      int64_t len = offsets[d + 1] - offsets[d];
      if (max_len > 0) len = std::min(len, max_len);
      core::Example& e = out.documents[d];
      e.tokens.resize(static_cast<size_t>(len));
      e.labels.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) {
        const size_t k = static_cast<size_t>(first + i);
        const int64_t id = small ? int64_t{buf16[k]} : int64_t{buf32[k]};
        if (id >= info.vocab_size || mask[k] > 1) {
          const std::string at = path + ": document " + std::to_string(d) + ", position " +
                                 std::to_string(i);
          require(id < info.vocab_size, at + ": id " + std::to_string(id) +
                                            " is outside the vocabulary [0, " +
                                            std::to_string(info.vocab_size) + ")");
          throw UserError(at + ": loss_mask value " + std::to_string(int(mask[k])) +
                          " is not 0 or 1");
        }
        e.tokens[i] = id;
        e.labels[i] = mask[k] ? id : core::kIgnoreIndex;
      }
    }
    d0 = d1;
  }
  return out;
}

}  // namespace shardtune::io
