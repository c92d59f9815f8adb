// [parallel]: how the world's ranks split the work (rank_grid.h) and how data-parallel gradients
// move (grad_sync.h, zero_partition.h).
#pragma once

#include <cstdint>

#include "base/errors.h"
#include "base/fields.h"

namespace shardtune::parallel {

struct ParallelOptions : base::FieldList<ParallelOptions> {
  int tp = 1;
  int zero = 0;
  double bucket_mb = 25.0;

  // The DP gradient bucket size in bytes.
  int64_t bucket_bytes() const { return static_cast<int64_t>(bucket_mb * 1024 * 1024); }
  // UserError naming the [parallel] field; `world` ranks must split into tp x dp.
  void validate(int world) const {
    require(tp >= 1, "[parallel] tp must be >= 1");
    require(world % tp == 0, "[parallel] tp=" + std::to_string(tp) +
                                 " does not divide the world size " + std::to_string(world));
    require(zero == 0 || zero == 1, "[parallel] zero must be 0 or 1");
  }

  // The field list (base/fields.h): every option once, with its doc line.
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("tp", c.tp, "tensor-parallel size (dp = world / tp)");
    v("zero", c.zero, "ZeRO stage (0 or 1)");
    v("bucket_mb", c.bucket_mb, "gradient all-reduce bucket size in MiB");
  }
};

}  // namespace shardtune::parallel
