// [checkpoint]: when a run saves, what it loads at start (init_from, resume) and how files are
// written (keep_last, transfer). Interpreted by launch/ (Trainer, resume, weights).
#pragma once

#include <cstdint>
#include <string>

#include "base/errors.h"
#include "base/fields.h"

namespace shardtune::io {

struct CheckpointOptions : base::FieldList<CheckpointOptions> {
  std::string dir;
  std::string init_from;
  int64_t every = 0;
  bool save_final = true;
  int keep_last = 2;
  std::string resume;
  std::string transfer = "independent";

  // UserError naming the [checkpoint] field.
  void validate() const {
    require(transfer == "independent" || transfer == "collective",
            "[checkpoint] transfer='" + transfer + "' is unknown (known: independent, collective)");
  }

  // The field list (base/fields.h): every option once, with its doc line.
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("dir", c.dir, "checkpoint directory (default <out_dir>/checkpoints)");
    v("init_from", c.init_from, "load model weights from this checkpoint file or directory");
    v("every", c.every, "save every N steps (0 = at the end only)");
    v("save_final", c.save_final, "save when training ends");
    v("keep_last", c.keep_last, "keep only the newest K checkpoints (0 = all)");
    v("resume", c.resume,
      "resume training from a checkpoint: auto (<dir>/latest when it exists) or FILE|DIR; "
      "also --resume");
    v("transfer", c.transfer,
      "MPI-IO data transfers of a multi-rank save: independent (measured faster) | collective");
  }
};

}  // namespace shardtune::io
