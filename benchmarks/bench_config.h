// The benchmark model shared by the benchmarks: the issue's ~30M llama (hidden 512, 8 layers,
// 8 heads, ffn 1376, vocab 8192) on synthetic tokens, no evaluation, no checkpoint.
#pragma once

#include <string>

#include "core/plan.h"
#include "launch/config.h"

namespace shardtune::bench {

inline launch::Config llama30m_config(const std::string& out_dir, int64_t seq_len,
                                      int64_t micro_batch) {
  launch::Config c;
  c.model = core::llama30m_model();  // the shape the planner's calibration measured
  c.train.seq_len = seq_len;
  c.train.micro_batch = micro_batch;
  c.train.lr = 1e-4;
  c.train.out_dir = out_dir;
  c.data.source = "synthetic";
  c.data.synthetic_samples = 512;
  c.data.max_eval_samples = 0;
  c.checkpoint.save_final = false;
  return c;
}

}  // namespace shardtune::bench
