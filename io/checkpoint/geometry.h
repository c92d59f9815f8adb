// Piece geometry as stored (internal to io/checkpoint; free of LibTorch, so the reader's metadata
// path builds fast and is fuzzed on its own): what a dataset's piece attributes describe and where
// each piece lies in the dataspace. pieces.h relates it to the ranks' ShardSpecs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace shardtune::io {

struct Pieces {
  int dim = -1;        // split dimension; -1 = replicated: one piece, the whole tensor
  int64_t parts = 1;   // segments of `dim` cut alike
  int64_t chunk = 0;   // entries per piece in each segment (the last piece may hold fewer)
  int64_t n = 0;       // entries per segment: global size of `dim` / parts
  int64_t count = 1;   // number of pieces

  int64_t offset(int64_t p) const { return p * chunk; }
  int64_t length(int64_t p) const { return std::min(chunk, n - p * chunk); }
};

// The pieces a stored dataset of `shape` describes by its attributes (shard_dim, shard_parts,
// shard_chunk); false when they are inconsistent with the shape: replicated is dim -1 with one
// part; a split needs 0 <= dim < rank, 1 <= parts dividing the dimension, 1 <= chunk <= its
// segment.
bool pieces_from_attributes(const std::vector<int64_t>& shape, int64_t dim, int64_t parts,
                            int64_t chunk, Pieces& out);

// Where piece p lies in the global dataspace (start/stride/count/block per dimension, as
// H5Sselect_hyperslab takes them); `whole` = the entire dataspace (replicated, scalar).
struct Hyperslab {
  bool whole = true;
  std::vector<int64_t> start, stride, count, block;
};
Hyperslab piece_hyperslab(const std::vector<int64_t>& global, const Pieces& pieces, int64_t p);

}  // namespace shardtune::io
