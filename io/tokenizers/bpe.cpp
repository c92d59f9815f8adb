// BPE merging. Ranks and merged ids come from one open-addressing table keyed by the id pair, so
// the inner loops touch no strings.
#include "io/tokenizers/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <queue>

#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {

constexpr uint32_t kNoRank = UINT32_MAX;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

uint64_t mix(uint64_t k) {
  k ^= k >> 31;
  k *= 0x9E3779B97F4A7C15ULL;
  return k ^ (k >> 29);
}

std::atomic<uint64_t> next_serial{1};

// Per-thread memo of piece -> ids for one model (a thread keeps one per model for the last
// kCachesPerThread models it used), direct-mapped like a CPU cache: each slot is one 64-byte line holding a piece of up to
// kKeyBytes bytes and its up to kIds ids, so a lookup is one hash and one memory access, with no
// pointers to chase and nothing to allocate. A colliding piece simply replaces the slot.
struct PieceCache {
  static constexpr std::size_t kKeyBytes = 24, kIds = 6, kSlots = std::size_t{1} << 16;
  struct alignas(64) Slot {
    uint64_t hash;  // 0: empty
    uint8_t key_len, n_ids;
    char key[kKeyBytes];
    int32_t ids[kIds];
  };
  static_assert(sizeof(Slot) == 64, "one cache line per slot");
  uint64_t owner = 0;
  std::unique_ptr<Slot[]> slots;

  void reset(uint64_t serial) {
    owner = serial;
    if (!slots) slots.reset(new Slot[kSlots]);
    std::memset(static_cast<void*>(slots.get()), 0, sizeof(Slot) * kSlots);
  }
  static uint64_t hash_of(std::string_view piece) {
    uint64_t words[3] = {0, 0, 0};
    std::memcpy(words, piece.data(), piece.size());
    uint64_t h = piece.size() * 0x9E3779B97F4A7C15ULL;
    for (uint64_t w : words) h = mix(h ^ w) * 0xBF58476D1CE4E5B9ULL;
    return h | 1;  // never 0, the empty mark
  }
  Slot& slot(uint64_t hash) { return slots[(hash >> 20) & (kSlots - 1)]; }
};

constexpr std::size_t kCachesPerThread = 4;

// This thread's cache for the model with `serial`, reusing the least recently used one.
PieceCache& cache_for(uint64_t serial) {
  thread_local PieceCache caches[kCachesPerThread];
  thread_local uint64_t last_use[kCachesPerThread] = {};
  thread_local uint64_t clock = 0;
  std::size_t pick = 0;
  for (std::size_t i = 0; i < kCachesPerThread; ++i) {
    if (caches[i].owner == serial) {
      pick = i;
      break;
    }
    if (last_use[i] < last_use[pick]) pick = i;
  }
  if (caches[pick].owner != serial) caches[pick].reset(serial);
  last_use[pick] = ++clock;
  return caches[pick];
}

std::string code_point_name(std::string_view ch) {
  std::size_t i = 0;
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(next_code_point(ch, i)));
  return buf;
}

}  // namespace

void BpeModel::MergeTable::build(const std::vector<std::pair<uint64_t, uint64_t>>& entries) {
  std::size_t cap = 16;
  while (cap < entries.size() * 2) cap <<= 1;
  keys.assign(cap, kEmpty);
  values.assign(cap, 0);
  mask = cap - 1;
  for (const auto& [k, v] : entries) {
    uint64_t slot = mix(k) & mask;
    while (keys[slot] != kEmpty && keys[slot] != k) slot = (slot + 1) & mask;
    keys[slot] = k;
    values[slot] = v;
  }
}

bool BpeModel::MergeTable::find(int32_t left, int32_t right, uint32_t& rank, int32_t& merged) const {
  const uint64_t k = pair_key(left, right);
  uint64_t slot = mix(k) & mask;
  while (true) {
    const uint64_t have = keys[slot];
    if (have == k) {
      rank = static_cast<uint32_t>(values[slot] >> 32);
      merged = static_cast<int32_t>(values[slot] & 0xFFFFFFFFu);
      return true;
    }
    if (have == kEmpty) return false;
    slot = (slot + 1) & mask;
  }
}

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, Options options,
                   const std::string& where)
    : vocab_(std::move(vocab)), options_(options), serial_(next_serial++) {
  auto id_of = [&](const std::string& token) -> int32_t {
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
  };
  // Which merges we have seen, to refuse a repeated pair (Hugging Face would silently keep the
  // later rank).
  std::vector<std::pair<uint64_t, uint64_t>> entries;
  entries.reserve(merges.size());
  std::unordered_map<uint64_t, std::size_t> seen;
  seen.reserve(merges.size() * 2);
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    // (Named references, not a structured binding: C++17 lambdas cannot capture those.)
    const std::string& left = merges[rank].first;
    const std::string& right = merges[rank].second;
    // The name is built only for an error: a vocabulary has hundreds of thousands of merges.
    auto fail = [&](const std::string& what) {
      throw UserError(where + " merges[" + std::to_string(rank) + "] (\"" + left + "\" \"" + right +
                      "\"): " + what);
    };
    const int32_t a = id_of(left), b = id_of(right);
    if (a < 0) fail("\"" + left + "\" is not in the vocabulary");
    if (b < 0) fail("\"" + right + "\" is not in the vocabulary");
    const int32_t m = id_of(left + right);
    if (m < 0) fail("the merged token \"" + left + right + "\" is not in the vocabulary");
    const uint64_t key = pair_key(a, b);
    const auto [it, fresh] = seen.emplace(key, rank);
    if (!fresh) fail("repeats merges[" + std::to_string(it->second) + "]");
    entries.push_back({key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(m)});
  }
  merges_.build(entries);

  const auto& table = byte_level_table();
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = -1;
    fallback_ids_[b] = -1;
    if (options_.byte_level) {
      std::string ch;
      append_utf8(ch, table.byte_to_char[b]);
      byte_ids_[b] = id_of(ch);
      char hex[8];
      std::snprintf(hex, sizeof hex, "%02X", b);
      require(byte_ids_[b] >= 0, where + ": a byte-level vocabulary must hold a token for every "
                                 "byte, and byte 0x" + hex + " (\"" + ch + "\") has none");
    }
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    fallback_ids_[b] = id_of(name);
  }
  for (int c = 0; c < 128; ++c) ascii_ids_[c] = id_of(std::string(1, static_cast<char>(c)));
}

void BpeModel::initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const {
  symbols.clear();
  if (options_.byte_level) {
    for (unsigned char c : piece) symbols.push_back(byte_ids_[c]);
    return;
  }
  thread_local std::string ch;
  bool previous_unk = false;
  std::size_t i = 0;
  while (i < piece.size()) {
    const auto lead = static_cast<unsigned char>(piece[i]);
    const std::size_t len = std::min(utf8_length(lead), piece.size() - i);
    int32_t id = -1;
    if (len == 1 && lead < 0x80) {
      id = ascii_ids_[lead];
    } else {
      ch.assign(piece.substr(i, len));
      const auto it = vocab_.find(ch);
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      symbols.push_back(id);
      previous_unk = false;
    } else {
      bool all_bytes = options_.byte_fallback;
      for (std::size_t k = 0; all_bytes && k < len; ++k) {
        all_bytes = fallback_ids_[static_cast<unsigned char>(piece[i + k])] >= 0;
      }
      if (all_bytes) {
        for (std::size_t k = 0; k < len; ++k) {
          symbols.push_back(fallback_ids_[static_cast<unsigned char>(piece[i + k])]);
        }
        previous_unk = false;
      } else if (options_.unk_id >= 0) {
        if (!(options_.fuse_unk && previous_unk)) symbols.push_back(options_.unk_id);
        previous_unk = true;
      } else {
        throw UserError("the character " + code_point_name(piece.substr(i, len)) +
                        " has no token in this vocabulary, which has neither byte fallback nor "
                        "an unknown token");
      }
    }
    i += len;
  }
}

void BpeModel::merge_linear(std::vector<int32_t>& sym) const {
  thread_local std::vector<uint32_t> ranks;
  thread_local std::vector<int32_t> merged;
  const std::size_t n = sym.size();
  ranks.resize(n - 1);
  merged.resize(n - 1);
  auto lookup = [&](std::size_t i) {
    uint32_t r;
    int32_t m;
    if (merges_.find(sym[i], sym[i + 1], r, m)) {
      ranks[i] = r;
      merged[i] = m;
    } else {
      ranks[i] = kNoRank;
    }
  };
  for (std::size_t i = 0; i + 1 < n; ++i) lookup(i);
  while (sym.size() > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < ranks.size(); ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoRank) break;
    sym[best] = merged[best];
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best));
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best));
    if (best > 0) lookup(best - 1);
    if (best + 1 < sym.size()) lookup(best);
  }
}

void BpeModel::merge_heap(std::vector<int32_t>& sym) const {
  // Symbols become a doubly linked list over their original positions; the heap holds candidate
  // merges ordered by (rank, position), which is the order the linear scan applies them in.
  const std::size_t n = sym.size();
  std::vector<int32_t> prev(n), next(n);
  for (std::size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  using Entry = std::pair<uint32_t, uint32_t>;  // (rank, position)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    uint32_t r;
    int32_t m;
    if (merges_.find(sym[pos], sym[next[pos]], r, m)) heap.push({r, static_cast<uint32_t>(pos)});
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const auto [rank, upos] = heap.top();
    heap.pop();
    const auto pos = static_cast<int32_t>(upos);
    if (sym[pos] < 0 || next[pos] < 0) continue;  // merged away since it was pushed
    uint32_t r;
    int32_t m;
    if (!merges_.find(sym[pos], sym[next[pos]], r, m) || r != rank) continue;  // stale
    const int32_t gone = next[pos];
    sym[pos] = m;
    sym[gone] = -1;
    next[pos] = next[gone];
    if (next[gone] >= 0) prev[next[gone]] = pos;
    push(prev[pos]);
    push(pos);
  }
  std::size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) sym[w++] = sym[i];
  sym.resize(w);
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int64_t>& out) const {
  if (piece.empty()) return;
  const bool cacheable = piece.size() <= PieceCache::kKeyBytes;
  PieceCache* cache = cacheable ? &cache_for(serial_) : nullptr;
  uint64_t hash = 0;
  if (cacheable) {
    hash = PieceCache::hash_of(piece);
    const PieceCache::Slot& s = cache->slot(hash);
    if (s.hash == hash && s.key_len == piece.size() && std::memcmp(s.key, piece.data(), piece.size()) == 0) {
      out.insert(out.end(), s.ids, s.ids + s.n_ids);
      return;
    }
  }

  thread_local std::vector<int32_t> sym;
  bool whole = false;
  if (options_.ignore_merges) {
    thread_local std::string mapped;
    std::string_view text = piece;
    if (options_.byte_level) {
      mapped.clear();
      const auto& table = byte_level_table();
      for (unsigned char c : piece) append_utf8(mapped, table.byte_to_char[c]);
      text = mapped;
    }
    thread_local std::string key;
    key.assign(text);
    const auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      sym.assign(1, it->second);
      whole = true;
    }
  }
  if (!whole) {
    initial_symbols(piece, sym);
    if (sym.size() > kLinearMergeLimit) {
      merge_heap(sym);
    } else if (sym.size() > 1) {
      merge_linear(sym);
    }
  }
  out.insert(out.end(), sym.begin(), sym.end());
  if (cacheable && sym.size() <= PieceCache::kIds) {
    PieceCache::Slot& s = cache->slot(hash);
    s.hash = hash;
    s.key_len = static_cast<uint8_t>(piece.size());
    std::memcpy(s.key, piece.data(), piece.size());
    s.n_ids = static_cast<uint8_t>(sym.size());
    std::copy(sym.begin(), sym.end(), s.ids);
  }
}

}  // namespace shardtune::io::tokenizers
