// Piece geometry of a saved tensor (internal to io/, pure: no files, no communication; unit-tested
// in tests/test_checkpoint.cpp).
//
// A saved tensor is cut in pieces: the slices the TP ranks held when saving (one piece for a
// replicated tensor). A tensor split on `dim` in `parts` segments of n entries each
// (core::ShardSpec) has ceil(n / chunk) pieces; piece p covers [p * chunk, min(n, (p + 1) * chunk))
// of every segment: a strided hyperslab (stride n, `parts` blocks of its length). Worked example:
// GPT-2's c_attn weight [3 * 8, 4] = [q | k | v] at tp = 2 is dim 0, parts 3, n 8, chunk 4, two
// pieces; piece 1 is rows 4..8, 12..16 and 20..24 (shape [12, 4]).
//
// Each piece is one HDF5 chunk and has its own checksum, so whoever reads it checks exactly what
// one writer wrote. Reading at another layout takes the saved pieces that overlap the reader's
// slice (overlapping()) and cuts the slice out of them.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/shard.h"

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

// The pieces a tensor with spec `s` is saved in.
Pieces pieces_of(const core::ShardSpec& s);
// The pieces a stored dataset of `shape` describes by its attributes (shard_dim, shard_parts,
// shard_chunk); false when they are inconsistent with the shape.
bool pieces_from_attributes(const std::vector<int64_t>& shape, int64_t dim, int64_t parts,
                            int64_t chunk, Pieces& out);

// The piece this rank holds under spec `s` (what it writes), or -1 when it holds only padding.
int64_t piece_index(const core::ShardSpec& s);

// Saved pieces [first, last) that overlap the slice spec `s` reads (all when the split differs).
struct PieceRange {
  int64_t first = 0, last = 0;
};
PieceRange overlapping(const Pieces& saved, const core::ShardSpec& s);
// Whether the slice `s` reads is exactly one saved piece (same split, or replicated both times):
// then it is read straight into place.
bool reads_one_piece(const Pieces& saved, const core::ShardSpec& s);

// Shape of piece p: the global shape with `dim` set to parts * length(p).
std::vector<int64_t> piece_shape(const std::vector<int64_t>& global, const Pieces& pieces,
                                 int64_t p);
// HDF5 chunk dimensions: one chunk per piece (global shape with `dim` set to chunk); empty for a
// replicated or empty tensor (contiguous layout).
std::vector<int64_t> chunk_shape(const std::vector<int64_t>& global, const Pieces& pieces);

// Where piece p lies in the global dataspace (start/stride/count/block per dimension, as
// H5Sselect_hyperslab takes them); `whole` = the entire dataspace (replicated, scalar).
struct Hyperslab {
  bool whole = true;
  std::vector<int64_t> start, stride, count, block;
};
Hyperslab piece_hyperslab(const std::vector<int64_t>& global, const Pieces& pieces, int64_t p);

// Copies piece p (a tensor of piece_shape) into its place in `full` (the global-shape tensor).
void place_piece(torch::Tensor& full, const torch::Tensor& piece, const Pieces& pieces, int64_t p);

}  // namespace shardtune::io
