// Range checks for the validate() of option structs: each throws one UserError that names the
// option and its value, e.g. "[train] beta1=1 must be in [0, 1)". Every floating-point check
// refuses NaN and infinities first (comparisons with NaN are false, so a plain `v > 0` check
// would let "nan" through only in one direction).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "base/errors.h"
#include "base/strings.h"

namespace shardtune::base {

// "<name>=<value>" for messages.
inline std::string named(const std::string& name, double value) {
  return name + "=" + format_double(value);
}
inline std::string named(const std::string& name, int64_t value) {
  return name + "=" + std::to_string(value);
}

inline void require_finite(const std::string& name, double v) {
  require(std::isfinite(v), named(name, v) + " must be a finite number");
}
// v > 0 and finite.
inline void require_positive(const std::string& name, double v) {
  require_finite(name, v);
  require(v > 0, named(name, v) + " must be positive");
}
// v >= 0 and finite.
inline void require_non_negative(const std::string& name, double v) {
  require_finite(name, v);
  require(v >= 0, named(name, v) + " must be >= 0");
}
// lo <= v <= hi, or lo <= v < hi with `open_hi`.
inline void require_in_range(const std::string& name, double v, double lo, double hi,
                             bool open_hi = false) {
  require_finite(name, v);
  require(v >= lo && (open_hi ? v < hi : v <= hi),
          named(name, v) + " must be in [" + format_double(lo) + ", " + format_double(hi) +
              (open_hi ? ")" : "]"));
}
// An integer count or size: lo <= v <= hi.
inline void require_count(const std::string& name, int64_t v, int64_t lo,
                          int64_t hi = INT64_MAX) {
  if (hi == INT64_MAX) {
    require(v >= lo, named(name, v) + " must be >= " + std::to_string(lo));
  } else {
    require(v >= lo && v <= hi, named(name, v) + " must be in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
  }
}

}  // namespace shardtune::base
