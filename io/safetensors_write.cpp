// safetensors writing: one file (streamed, header first, tmp + rename) or an HF-style sharded
// folder with its index.
#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"

namespace shardtune::io::safetensors {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- writing ------------------------------------------------------------------------------------

uint64_t TensorEntry::bytes() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n * static_cast<uint64_t>(dtype_bits(dtype) / 8);
}

namespace {
void write_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w =
        ::pwrite(fd, p, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw UserError(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}
}  // namespace

Writer::Writer(std::string path, std::vector<TensorEntry> entries,
               std::map<std::string, std::string> metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  // The reference writer's order: larger dtype alignment first, then name.
  std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    const int aa = dtype_bits(a.dtype), bb = dtype_bits(b.dtype);
    return aa != bb ? aa > bb : a.name < b.name;
  });
  nlohmann::ordered_json header;
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& e : entries) {
    if (dtype_bits(e.dtype) % 8 != 0) {
      throw std::invalid_argument("safetensors::Writer: sub-byte dtype " +
                                  std::string(dtype_name(e.dtype)));
    }
    if (ranges_.count(e.name))
      throw std::invalid_argument("safetensors::Writer: duplicate " + e.name);
    const uint64_t end = offset + e.bytes();
    header[e.name] = {
        {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
    ranges_[e.name] = {offset, end};
    written_[e.name] = false;
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  buffer_start_ = 8 + text.size();
  file_bytes_ = buffer_start_ + offset;
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(tmp_ + ": cannot create: " + std::strerror(errno));
  const uint64_t n = text.size();
  uint8_t len[8];
  std::memcpy(len, &n, 8);
  write_all(fd_, len, 8, 0, tmp_);
  write_all(fd_, text.data(), text.size(), 8, tmp_);
  if (::ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) {
    throw UserError(tmp_ + ": cannot size the file: " + std::strerror(errno));
  }
}

Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_.c_str());
}

void Writer::write(const std::string& name, const void* data, size_t nbytes) {
  auto it = ranges_.find(name);
  if (it == ranges_.end())
    throw std::invalid_argument("safetensors::Writer: unknown tensor " + name);
  const auto [begin, end] = it->second;
  if (nbytes != end - begin) {
    throw std::invalid_argument("safetensors::Writer: " + name + " is " +
                                std::to_string(end - begin) + " bytes, got " +
                                std::to_string(nbytes));
  }
  write_all(fd_, data, nbytes, buffer_start_ + begin, tmp_);
  written_[name] = true;
}

void Writer::finish() {
  for (const auto& [name, done] : written_) {
    if (!done) throw std::logic_error("safetensors::Writer: tensor " + name + " was never written");
  }
  if (::fsync(fd_) != 0) throw UserError(tmp_ + ": fsync failed: " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) throw UserError(path_ + ": cannot rename from " + tmp_ + ": " + ec.message());
  finished_ = true;
}

ShardedWriter::ShardedWriter(const std::string& dir, std::vector<TensorEntry> entries,
                             uint64_t max_shard_bytes, const std::string& stem)
    : dir_(dir), stem_(stem) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError(dir + ": cannot create directory: " + ec.message());
  std::vector<std::vector<TensorEntry>> shards;
  uint64_t current = 0;
  for (auto& e : entries) {
    const uint64_t b = e.bytes();
    if (shards.empty() || (current + b > max_shard_bytes && !shards.back().empty())) {
      shards.emplace_back();
      current = 0;
    }
    current += b;
    total_bytes_ += b;
    shard_of_[e.name] = shards.size() - 1;
    shards.back().push_back(std::move(e));
  }
  if (shards.empty()) shards.emplace_back();
  const size_t n = shards.size();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, n);
    file_names_.push_back(n == 1 ? stem + ".safetensors" : stem + name);
    writers_.push_back(std::make_unique<Writer>((fs::path(dir) / file_names_.back()).string(),
                                                std::move(shards[i])));
  }
}

void ShardedWriter::write(const std::string& name, const void* data, size_t nbytes) {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    throw std::invalid_argument("safetensors::ShardedWriter: unknown " + name);
  writers_[it->second]->write(name, data, nbytes);
}

std::vector<std::string> ShardedWriter::finish() {
  for (auto& w : writers_) w->finish();
  const fs::path index = fs::path(dir_) / (stem_ + ".safetensors.index.json");
  if (writers_.size() > 1) {
    nlohmann::ordered_json j;
    j["metadata"] = {{"total_size", total_bytes_}};
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const auto& [name, shard] : shard_of_) map[name] = file_names_[shard];  // sorted by name
    j["weight_map"] = map;
    const std::string tmp = index.string() + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << j.dump(2) << "\n";
      if (!out) throw UserError(tmp + ": write failed");
    }
    std::error_code ec;
    fs::rename(tmp, index, ec);
    if (ec) throw UserError(index.string() + ": cannot rename: " + ec.message());
  }
  // Files of an earlier export into the same folder would shadow (a single file wins over an index)
  // or confuse this one: remove every "<stem>.safetensors", "<stem>-*-of-*.safetensors" and index
  // that this write did not produce.
  const std::set<std::string> ours(file_names_.begin(), file_names_.end());
  const std::string sharded_prefix = stem_ + "-";
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    const bool single = name == stem_ + ".safetensors";
    const bool shard = name.rfind(sharded_prefix, 0) == 0 &&
                       name.find("-of-") != std::string::npos && name.size() > 12 &&
                       name.compare(name.size() - 12, 12, ".safetensors") == 0;
    const bool stale_index = writers_.size() == 1 && item.path() == index;
    if (((single || shard) && !ours.count(name)) || stale_index) fs::remove(item.path(), ec);
  }
  return file_names_;
}

}  // namespace shardtune::io::safetensors
