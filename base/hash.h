// The hashes and mixers ShardTune's formats and seeded streams are defined with. One
// implementation each; the constants are named because stored values depend on them.
//
// FNV-1a 64 (Fowler, Noll, Vo): h = basis; for each byte b: h = (h ^ b) * kFnv1a64Prime.
// Two offset bases are in use, and both stay, because changing either would change values that
// are already stored or reproduced:
//   kFnv1a64OffsetBasis   the published basis 14695981039346656037: WordNet's train/eval split
//                         (io/wordnet.h) and the configuration hash ranks compare at start.
//   kShardTuneFnvBasis    1469598103934665603, the published basis with its last digit dropped (a
//                         transcription slip in ShardTune's first checkpoint code). Checkpoint
//                         checksums (fnv1a64x4, format 1's byte-wise fnv1a64), checkpoint
//                         digests, the named initialisation streams (core::named_seed) and the
//                         augmentation streams were defined with it: every stored checksum and
//                         every seeded initialisation depends on it (docs/checkpoint-format.md).
// Neither is a cryptographic hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardtune::base {

inline constexpr uint64_t kFnv1a64Prime = 1099511628211ULL;
inline constexpr uint64_t kFnv1a64OffsetBasis = 14695981039346656037ULL;
inline constexpr uint64_t kShardTuneFnvBasis = 1469598103934665603ULL;

// Byte-wise FNV-1a 64 of `n` bytes, continuing from `basis` (a previous result continues a hash).
uint64_t fnv1a64(const void* data, size_t n, uint64_t basis);
inline uint64_t fnv1a64(std::string_view text, uint64_t basis) {
  return fnv1a64(text.data(), text.size(), basis);
}

// fnv1a64x4: FNV-1a 64 over little-endian 64-bit words in four interleaved lanes (lane i starts
// at kShardTuneFnvBasis + i; word w goes to lane w % 4), trailing bytes into lane 0, the lanes
// combined by FNV-1a from kShardTuneFnvBasis, then the byte count mixed in. About 4x faster than
// byte-wise FNV-1a, fast enough not to limit checkpoint I/O. The checkpoint piece checksum;
// docs/checkpoint-format.md gives it in Python. Little-endian hosts only (x86-64, aarch64).
uint64_t fnv1a64x4(const void* data, size_t n);

// splitmix64 (Steele, Lea, Flood 2014). mix() is its finaliser: a bijection on 64 bits whose
// outputs for nearby inputs look unrelated. next() advances `state` by the golden-ratio step and
// returns mix(state): a portable generator whose sequence is fixed by its seed.
inline constexpr uint64_t kSplitMix64Step = 0x9E3779B97F4A7C15ULL;
uint64_t splitmix64_mix(uint64_t z);
inline uint64_t splitmix64_next(uint64_t& state) {
  return splitmix64_mix(state += kSplitMix64Step);
}

}  // namespace shardtune::base
