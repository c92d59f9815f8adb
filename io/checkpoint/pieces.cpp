#include "io/checkpoint/pieces.h"

namespace shardtune::io {

Pieces pieces_of(const core::ShardSpec& s) {
  Pieces p;
  if (!s.sharded()) return p;
  p.dim = s.dim;
  p.parts = s.parts;
  p.chunk = s.chunk;
  p.n = s.global_shape[static_cast<size_t>(s.dim)] / s.parts;
  p.count = p.chunk > 0 ? (p.n + p.chunk - 1) / p.chunk : 1;
  return p;
}

bool pieces_from_attributes(const std::vector<int64_t>& shape, int64_t dim, int64_t parts,
                            int64_t chunk, Pieces& out) {
  out = Pieces{};
  if (dim < 0) return true;
  if (dim >= static_cast<int64_t>(shape.size()) || parts <= 0 || chunk <= 0 ||
      shape[static_cast<size_t>(dim)] % parts != 0) {
    return false;
  }
  out.dim = static_cast<int>(dim);
  out.parts = parts;
  out.chunk = chunk;
  out.n = shape[static_cast<size_t>(dim)] / parts;
  out.count = (out.n + chunk - 1) / chunk;
  return true;
}

int64_t piece_index(const core::ShardSpec& s) {
  if (!s.sharded()) return 0;
  if (s.length == 0) return -1;
  return s.offset / s.chunk;
}

PieceRange overlapping(const Pieces& saved, const core::ShardSpec& s) {
  PieceRange r{0, saved.count};
  if (saved.dim >= 0 && s.sharded() && s.dim == saved.dim && s.parts == saved.parts) {
    r.first = s.offset / saved.chunk;
    r.last = s.length == 0 ? r.first : (s.offset + s.length + saved.chunk - 1) / saved.chunk;
  }
  return r;
}

bool reads_one_piece(const Pieces& saved, const core::ShardSpec& s) {
  if (saved.dim < 0) return !s.sharded();
  const PieceRange r = overlapping(saved, s);
  return s.sharded() && s.dim == saved.dim && s.parts == saved.parts && r.last - r.first == 1 &&
         s.offset == saved.offset(r.first) && s.length == saved.length(r.first);
}

std::vector<int64_t> piece_shape(const std::vector<int64_t>& global, const Pieces& pieces,
                                 int64_t p) {
  std::vector<int64_t> shape = global;
  if (pieces.dim >= 0) shape[static_cast<size_t>(pieces.dim)] = pieces.parts * pieces.length(p);
  return shape;
}

std::vector<int64_t> chunk_shape(const std::vector<int64_t>& global, const Pieces& pieces) {
  int64_t numel = 1;
  for (auto d : global) numel *= d;
  if (pieces.dim < 0 || numel == 0) return {};
  std::vector<int64_t> chunk = global;
  chunk[static_cast<size_t>(pieces.dim)] = pieces.chunk;
  return chunk;
}

Hyperslab piece_hyperslab(const std::vector<int64_t>& global, const Pieces& pieces, int64_t p) {
  Hyperslab h;
  if (global.empty() || pieces.dim < 0) return h;
  h.whole = false;
  const size_t nd = global.size(), d = static_cast<size_t>(pieces.dim);
  h.start.assign(nd, 0);
  h.stride.assign(nd, 1);
  h.count.assign(nd, 1);
  h.block = global;
  h.start[d] = pieces.offset(p);
  h.stride[d] = std::max<int64_t>(pieces.n, 1);
  h.count[d] = pieces.parts;
  h.block[d] = pieces.length(p);
  return h;
}

void place_piece(torch::Tensor& full, const torch::Tensor& piece, const Pieces& pieces,
                 int64_t p) {
  if (pieces.dim < 0) {
    full.copy_(piece);
    return;
  }
  // View `dim` as [parts, n] in both and copy [offset, offset + length) of every segment.
  const auto d = static_cast<size_t>(pieces.dim);
  std::vector<int64_t> seg_full = full.sizes().vec(), seg_piece = piece.sizes().vec();
  seg_full[d] = pieces.n;
  seg_full.insert(seg_full.begin() + pieces.dim, pieces.parts);
  seg_piece[d] = pieces.length(p);
  seg_piece.insert(seg_piece.begin() + pieces.dim, pieces.parts);
  full.view(seg_full)
      .narrow(pieces.dim + 1, pieces.offset(p), pieces.length(p))
      .copy_(piece.view(seg_piece));
}

}  // namespace shardtune::io
