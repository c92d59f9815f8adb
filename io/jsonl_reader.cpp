// JSONL files: a capped line reader over byte ranges (what each rank reads of a shared file) and
// the whole-file record reader.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/errors.h"
#include "io/jsonl.h"

namespace shardtune::io {

namespace {
constexpr std::size_t kReadChunk = std::size_t{1} << 20;

// The file's size, refusing what is not a regular file (an ifstream "opens" a folder on Linux
// and then reads nothing, which would surface as a misleading "no records").
uint64_t regular_file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw UserError(path + ": cannot open");
  if (S_ISDIR(st.st_mode)) throw UserError(path + ": cannot open (a directory)");
  if (!S_ISREG(st.st_mode)) throw UserError(path + ": cannot open (not a regular file)");
  return static_cast<uint64_t>(st.st_size);
}
}  // namespace

uint64_t jsonl_file_size(const std::string& path) { return regular_file_size(path); }

JsonlLineReader::JsonlLineReader(const std::string& path) : path_(path) {
  open(0, UINT64_MAX);
}

JsonlLineReader::JsonlLineReader(const std::string& path, uint64_t begin, uint64_t end)
    : path_(path) {
  open(begin, end);
}

JsonlLineReader::~JsonlLineReader() {
  if (file_) std::fclose(file_);
}

void JsonlLineReader::open(uint64_t begin, uint64_t end) {
  size_ = regular_file_size(path_);
  file_ = std::fopen(path_.c_str(), "rb");
  if (!file_) throw UserError(path_ + ": cannot open (" + std::strerror(errno) + ")");
  end_ = std::min(end, size_);
  begin = std::min(begin, size_);
  // The first line of the range is the first one that starts at or after `begin`: the line
  // holding byte begin - 1 belongs to an earlier range unless that byte ends it. Counting the
  // newlines before it gives the line numbers.
  uint64_t start = 0;
  if (begin > 0) {
    start = begin - 1;
    if (::fseeko(file_, static_cast<off_t>(start), SEEK_SET) != 0) {
      throw UserError(path_ + ": cannot seek to byte " + std::to_string(start));
    }
    pos_ = start;
    // Skip to just after the next newline at or after begin - 1.
    for (;;) {
      if (head_ == buf_.size() && !fill()) break;
      const char* data = buf_.data() + head_;
      const void* nl = std::memchr(data, '\n', buf_.size() - head_);
      if (nl) {
        const std::size_t n = static_cast<const char*>(nl) - data + 1;
        head_ += n;
        pos_ += n;
        break;
      }
      pos_ += buf_.size() - head_;
      head_ = buf_.size();
    }
    start = pos_;
  }
  // Line numbers: newlines in [0, start).
  int64_t newlines = 0;
  if (start > 0) {
    std::FILE* counter = std::fopen(path_.c_str(), "rb");
    if (!counter) throw UserError(path_ + ": cannot open (" + std::strerror(errno) + ")");
    std::string chunk(kReadChunk, '\0');
    uint64_t left = start;
    while (left > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(left, kReadChunk));
      const std::size_t got = std::fread(chunk.data(), 1, want, counter);
      if (got == 0) break;
      newlines += std::count(chunk.data(), chunk.data() + got, '\n');
      left -= got;
    }
    std::fclose(counter);
  }
  line_no_ = newlines + 1;
}

bool JsonlLineReader::fill() {
  if (head_ > 0) {
    buf_.erase(0, head_);
    head_ = 0;
  }
  const std::size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  const std::size_t got = std::fread(buf_.data() + old, 1, kReadChunk, file_);
  buf_.resize(old + got);
  if (got == 0 && std::ferror(file_)) {
    throw UserError(path_ + ": read error near line " + std::to_string(line_no_));
  }
  return got > 0;
}

bool JsonlLineReader::next(std::string& line, int64_t& line_no) {
  if (pos_ >= end_) return false;
  std::size_t scanned = head_;
  for (;;) {
    const void* nl = std::memchr(buf_.data() + scanned, '\n', buf_.size() - scanned);
    if (nl) {
      const std::size_t stop = static_cast<const char*>(nl) - buf_.data();
      line.assign(buf_, head_, stop - head_);
      pos_ += stop + 1 - head_;
      head_ = stop + 1;
      break;
    }
    if (buf_.size() - head_ > kMaxJsonlLineBytes) {
      throw UserError(path_ + ":" + std::to_string(line_no_) + ": line is longer than the " +
                      std::to_string(kMaxJsonlLineBytes) + " bytes allowed");
    }
    scanned = buf_.size() - head_;  // fill() moves the unread bytes to the front
    if (!fill()) {
      // The last line, without a final newline.
      if (buf_.size() == head_) return false;
      line.assign(buf_, head_, std::string::npos);
      pos_ += buf_.size() - head_;
      head_ = buf_.size();
      break;
    }
  }
  if (line.size() > kMaxJsonlLineBytes) {
    throw UserError(path_ + ":" + std::to_string(line_no_) + ": line is longer than the " +
                    std::to_string(kMaxJsonlLineBytes) + " bytes allowed");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  line_no = line_no_++;
  return true;
}

void for_each_jsonl_record(const std::string& path,
                           const std::function<void(JsonlRecord&&, const std::string&)>& fn) {
  JsonlLineReader reader(path);
  std::string line;
  int64_t line_no = 0;
  bool any = false;
  while (reader.next(line, line_no)) {
    if (is_blank_line(line)) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    fn(parse_jsonl_line(line, where), where);
    any = true;
  }
  if (!any) throw UserError(path + ": no records");
}

std::vector<JsonlRecord> read_jsonl_records(const std::string& path) {
  std::vector<JsonlRecord> records;
  for_each_jsonl_record(path, [&](JsonlRecord&& r, const std::string&) {
    records.push_back(std::move(r));
  });
  return records;
}

}  // namespace shardtune::io
