// Capped file reading, UTF-8 validation/decoding/repair, FNV-1a.
#include "io/tokenizers/text_util.h"

#include <cstdio>
#include <fstream>

#include "base/errors.h"

namespace shardtune::io::tokenizers {

std::string read_file_capped(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path + ": cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  require(size >= 0, path + ": cannot determine its size");
  require(static_cast<uint64_t>(size) <= max_bytes,
          path + ": " + std::to_string(size) + " bytes is more than the " +
              std::to_string(max_bytes) + " allowed for this kind of file");
  std::string data(static_cast<std::size_t>(size), '\0');
  in.seekg(0, std::ios::beg);
  in.read(data.data(), size);
  require(in.gcount() == size, path + ": short read");
  return data;
}

namespace {

// Length of the well-formed sequence at s[i], or 0 if it is ill-formed (Unicode Table 3-7).
std::size_t valid_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c < 0xC2 || c > 0xF4) return 0;
  if (c < 0xE0) return left >= 2 && (b(1) & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    if (left < 3) return 0;
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return b(1) >= lo && b(1) <= hi && (b(2) & 0xC0) == 0x80 ? 3 : 0;
  }
  if (left < 4) return 0;
  const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  return b(1) >= lo && b(1) <= hi && (b(2) & 0xC0) == 0x80 && (b(3) & 0xC0) == 0x80 ? 4 : 0;
}

}  // namespace

std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII runs are the common case: skip them eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const std::size_t n = valid_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

void require_utf8(std::string_view s, const std::string& what) {
  const std::size_t bad = find_invalid_utf8(s);
  if (bad != std::string_view::npos) {
    throw UserError(what + " is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  }
}

char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t n = utf8_length(c);
  char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (std::size_t k = 1; k < n && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  if (find_invalid_utf8(bytes) == std::string_view::npos) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t n = valid_sequence_length(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // Skip the maximal prefix of a well-formed sequence (the lead byte plus the continuation
    // bytes that were still allowed), and emit one replacement character for it.
    const auto c = static_cast<unsigned char>(bytes[i]);
    std::size_t skip = 1;
    if (c >= 0xC2 && c <= 0xF4) {
      const std::size_t want = utf8_length(c);
      const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
      while (skip < want && i + skip < bytes.size()) {
        const auto d = static_cast<unsigned char>(bytes[i + skip]);
        const bool ok = skip == 1 ? (d >= lo && d <= hi) : (d & 0xC0) == 0x80;
        if (!ok) break;
        ++skip;
      }
    }
    out.append("\xEF\xBF\xBD");
    i += skip;
  }
  return out;
}

uint64_t fnv1a64(std::string_view data, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace shardtune::io::tokenizers
