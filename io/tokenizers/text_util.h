// Small helpers shared by the tokenizer parsers: capped file reading, UTF-8 checks and decoding,
// and the content hash that tokenizer identities are built from. Internal to io/tokenizers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardtune::io::tokenizers {

// Whole file as bytes. Throws UserError naming `path` if it cannot be read or is larger than
// `max_bytes` (every tokenizer file is untrusted; the cap bounds memory before parsing).
std::string read_file_capped(const std::string& path, std::size_t max_bytes);

// Offset of the first byte that does not belong to a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are ill-formed), or npos when `s` is valid.
std::size_t find_invalid_utf8(std::string_view s);

// Throws UserError("<what> is not valid UTF-8 (byte offset N)") unless `s` is valid.
void require_utf8(std::string_view s, const std::string& what);

// Decodes the code point at s[i] of a string known to be valid UTF-8; advances i past it.
char32_t next_code_point(std::string_view s, std::size_t& i);

// Appends the UTF-8 encoding of `cp` (a valid scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

// Length in bytes of the UTF-8 sequence that starts with lead byte `c` (1 for a stray byte).
inline std::size_t utf8_length(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// `bytes` with every ill-formed sequence replaced by U+FFFD (one per maximal invalid prefix, as
// Rust's String::from_utf8_lossy and the WHATWG decoder do).
std::string utf8_lossy(std::string_view bytes);

// 64-bit FNV-1a, continued from `seed`: the content hash in tokenizer identities.
uint64_t fnv1a64(std::string_view data, uint64_t seed = 0xcbf29ce484222325ULL);

// 16 lowercase hex digits.
std::string hex64(uint64_t v);

}  // namespace shardtune::io::tokenizers
