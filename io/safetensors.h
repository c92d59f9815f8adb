// safetensors files and folders, read and written without LibTorch (so the parser builds fast and
// can be fuzzed on its own). Format (see docs/hf.md and ../shared/reference/io.md section 4):
//   [u64 little-endian N][N bytes of JSON header, padded with spaces][byte buffer]
//   header = {"__metadata__": {str: str}?, "<name>": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ...}, offsets relative to the byte buffer.
//
// Every file is untrusted. File::open checks, before any tensor is read: header length within a
// cap and within the file, UTF-8 JSON object without duplicate keys, known dtypes, non-negative
// shapes whose element count and byte size do not overflow, shape x dtype size == end - begin,
// ranges inside the buffer and not overlapping, and (by default, as the reference implementation
// requires) ranges tiling the buffer without holes. A failure is one UserError naming the file and,
// where there is one, the tensor: "<path>: tensor 'x': shape [2, 3] x F32 is 24 bytes but
// data_offsets span 20".
//
// Reading maps the file (mmap, read-only) for the header and raw views, and copies only the bytes
// asked for: a whole tensor or a hyperslab along one dim (Slice, the torch-free twin of
// core::ShardSpec), converting between F64, F32, F16 and BF16 (round to nearest even when
// narrowing); other dtypes are copied only into the same dtype. Runs of 64 KiB or more are read
// with pread, as dd reads (a file that shrinks under the reader is then an error, not a SIGBUS);
// smaller ones are copied from the mapping. Host byte order must be little-endian (checked at
// compile time).
//
// Writing (Writer, ShardedWriter) follows the reference writer: header padded with spaces to a
// multiple of 8, tensors ordered by descending dtype alignment then name (so each is naturally
// aligned), __metadata__ {"format": "pt"}; sharded folders get HF's
// `<stem>-00001-of-0000N.safetensors` files and `<stem>.safetensors.index.json`. Files are written
// to a temporary name, fsynced, then renamed.
//
// Thread safety: a File is immutable after open; concurrent reads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/reading.h"

namespace shardtune::io::safetensors {

// Every dtype the format defines (safetensors' Dtype enum).
// clang-format off
enum class Dtype : uint8_t {
  kBool, kF4, kF6_E2M3, kF6_E3M2, kU8, kI8, kF8_E5M2, kF8_E4M3, kF8_E8M0, kF8_E4M3FNUZ,
  kF8_E5M2FNUZ, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kC64, kF64, kI64, kU64
};
// clang-format on

// "F32", "BF16", ...
const char* dtype_name(Dtype dtype);
std::optional<Dtype> dtype_from_name(std::string_view name);
// Bits per element (4 for F4, 6 for F6_*, 8 * bytes otherwise).
int dtype_bits(Dtype dtype);
// Whether read() converts this dtype to/from other floating dtypes (F64, F32, F16, BF16).
bool is_convertible_float(Dtype dtype);

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;  // [] = scalar (one element)
  uint64_t begin = 0;          // byte range in the buffer: [begin, end)
  uint64_t end = 0;
  int64_t numel() const;
};

// A hyperslab along one dim, like core::ShardSpec: `dim` (size N) is seen as `parts` equal segments
// of N / parts entries; from each segment entries [offset, offset + length) are taken. dim = -1:
// the whole tensor. Result shape: the tensor's, with shape[dim] = parts * length; C order.
struct Slice {
  int dim = -1;
  int64_t parts = 1;
  int64_t offset = 0;
  int64_t length = 0;
};

struct ParseOptions {
  uint64_t max_header_bytes = 100'000'000;  // the reference implementation's MAX_HEADER_SIZE
  // Ranges must cover the buffer exactly (no holes), as the format says.
  bool require_tiling = true;
};

class File {
 public:
  // Maps and validates `path`. UserError "<path>: ..." on any problem.
  static std::unique_ptr<File> open(const std::string& path, const ParseOptions& options = {});
  // Validates a file image held in memory (tests, fuzzing). `data` must outlive the File; `name`
  // stands for the path in messages.
  static std::unique_ptr<File> from_memory(const uint8_t* data, size_t size, std::string name,
                                           const ParseOptions& options = {});
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  // Tensors sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // find() or UserError "<path>: no tensor 'x'".
  const TensorInfo& at(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t size() const { return size_; }

  // Shape of `slice` of `tensor` (checks the slice against the shape; UserError naming both).
  static std::vector<int64_t> slice_shape(const TensorInfo& tensor, const Slice& slice,
                                          const std::string& path);
  // Copies `slice` of `tensor` into `out` (C order, slice_shape(...) elements of dtype `dst`).
  // out_bytes must equal that size. UserError when the dtypes cannot be converted.
  void read(const TensorInfo& tensor, const Slice& slice, Dtype dst, void* out,
            size_t out_bytes) const;
  void read(const TensorInfo& tensor, Dtype dst, void* out, size_t out_bytes) const {
    read(tensor, Slice{}, dst, out, out_bytes);
  }
  // The raw little-endian bytes of a tensor (a view into the mapping).
  std::string_view raw(const TensorInfo& tensor) const;

 private:
  File() = default;
  void parse(const ParseOptions& options);
  // Copies n elements starting at file byte `offset` into `out`, converting src -> dst: runs of
  // kPreadFrom bytes or more of an opened file with pread, the rest from the mapping or image.
  void copy_run(uint64_t offset, Dtype src, uint8_t* out, Dtype dst, size_t n,
                const std::string& what) const;
  static constexpr size_t kPreadFrom = size_t{64} << 10;
  static constexpr size_t kPreadChunk = size_t{4} << 20;  // in cache; split over the cores

  std::string path_;
  base::ReadingFile reading_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t buffer_start_ = 0;  // 8 + header length
  bool mapped_ = false;
  int fd_ = -1;  // an opened file (not a memory image): kept for pread
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A model (or adapter) folder: `<stem>.safetensors`, or `<stem>.safetensors.index.json` and the
// files its weight_map names. As in transformers, the single file wins when both exist. The index
// must be a JSON object with a "weight_map" object of tensor name -> file name; every file name is
// relative, has no ".." component and is not absolute (symbolic links, as in the Hugging Face hub
// cache, are followed); every mapped tensor must be in its file and every tensor of those files
// must be mapped to it. Errors name the index or the file and the tensor.
class Folder {
 public:
  static Folder open(const std::string& dir, const std::string& stem = "model",
                     const ParseOptions& options = {});
  // Whether `dir` holds `<stem>.safetensors` or its index.
  static bool exists(const std::string& dir, const std::string& stem = "model");

  const std::string& dir() const { return dir_; }
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  // The file holding `name` and its entry, or nullptr.
  const File* file_of(const std::string& name) const;
  const TensorInfo* find(const std::string& name) const;
  // The files (one, or the shards in index order).
  const std::vector<std::unique_ptr<File>>& files() const { return files_; }
  // Sum of the files' sizes in bytes.
  uint64_t total_file_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

// ---- writing ------------------------------------------------------------------------------------

struct TensorEntry {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  uint64_t bytes() const;  // numel x element size (sub-byte dtypes are not written)
};

// One .safetensors file, streamed: the constructor lays out and writes the header, write() puts a
// tensor's bytes at its offset (any order), finish() checks every tensor was written, fsyncs and
// renames "<path>.tmp" to `path`. The destructor removes the temporary file of an unfinished
// writer.
class Writer {
 public:
  Writer(std::string path, std::vector<TensorEntry> entries,
         std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // `nbytes` must equal the entry's size; data is little-endian, C order.
  void write(const std::string& name, const void* data, size_t nbytes);
  void finish();
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t buffer_start_ = 0, file_bytes_ = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> ranges_;  // name -> [begin, end) in buffer
  std::map<std::string, bool> written_;
  bool finished_ = false;
};

// A folder of one or more files, split greedily in `entries` order like huggingface_hub's
// split_torch_state_dict_into_shards: a new shard starts when the next tensor would take the
// current one past max_shard_bytes; a tensor larger than that gets a shard of its own. One shard is
// written as `<stem>.safetensors` without an index.
class ShardedWriter {
 public:
  ShardedWriter(const std::string& dir, std::vector<TensorEntry> entries, uint64_t max_shard_bytes,
                const std::string& stem = "model");
  void write(const std::string& name, const void* data, size_t nbytes);
  // Finishes every file and writes the index when there are several. Returns the file names.
  std::vector<std::string> finish();

 private:
  std::string dir_, stem_;
  std::vector<std::unique_ptr<Writer>> writers_;
  std::vector<std::string> file_names_;
  std::map<std::string, size_t> shard_of_;
  uint64_t total_bytes_ = 0;
};

// Converts n elements between floating dtypes (F64, F32, F16, BF16); same-dtype copies any dtype.
// `src` and `dst` need no alignment. UserError (naming `what`) for other pairs.
void convert(const void* src, Dtype src_dtype, void* dst, Dtype dst_dtype, size_t n,
             const std::string& what);

}  // namespace shardtune::io::safetensors
