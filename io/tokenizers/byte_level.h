// GPT-2's byte <-> character table: byte-level BPE vocabularies spell every byte as one printable
// character. The 188 bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for themselves; the
// other 68, in increasing order, become U+0100, U+0101, ... (so ' ' is U+0120 'Ġ', '\n' U+010A 'Ċ').
#pragma once

#include <array>
#include <cstdint>

namespace shardtune::io::tokenizers {

struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_char{};
  // Inverse over U+0000..U+0143 (the highest mapped character); -1 for characters not in it.
  static constexpr char32_t kCharLimit = 0x144;
  std::array<int16_t, kCharLimit> char_to_byte{};

  ByteLevelTable() {
    char_to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

inline const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;
  return table;
}

// The regex GPT-2's ByteLevel pre-tokenizer splits with when use_regex is true.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace shardtune::io::tokenizers
