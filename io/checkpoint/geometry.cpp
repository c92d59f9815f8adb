#include "io/checkpoint/geometry.h"

namespace shardtune::io {

bool pieces_from_attributes(const std::vector<int64_t>& shape, int64_t dim, int64_t parts,
                            int64_t chunk, Pieces& out) {
  out = Pieces{};
  if (dim == -1) return parts == 1;
  if (dim < 0 || dim >= static_cast<int64_t>(shape.size()) || parts <= 0 || chunk <= 0) {
    return false;
  }
  const int64_t size = shape[static_cast<size_t>(dim)];
  if (parts > size || size % parts != 0) return false;
  const int64_t n = size / parts;
  if (chunk > n) return false;  // a piece never exceeds its segment
  out.dim = static_cast<int>(dim);
  out.parts = parts;
  out.chunk = chunk;
  out.n = n;
  out.count = n / chunk + (n % chunk != 0 ? 1 : 0);  // no overflow for any n, chunk >= 1
  return true;
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

}  // namespace shardtune::io
