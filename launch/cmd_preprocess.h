// `shardtune preprocess`: tokenizes [data] train_file (and eval_file) once, on every rank of the
// job in parallel, into the token datasets of [data] tokenized_dir (train.h5, eval.h5), which
// training reads with [data] source=tokenized without tokenizing again.
//
//   mpirun -np 8 shardtune preprocess --config job.ini
//   mpirun -np 8 shardtune train --config job.ini --data.source=tokenized
//
// The records are encoded exactly as training from the JSONL would (io/data.h jsonl_encoder: the
// same tokenizer, chat template and train_on_prompt, no truncation; training cuts to seq_len), so
// both give the same examples. Each file records its tokenizer identity, chat template and
// train_on_prompt; training refuses a dataset made with others.
#pragma once

#include "launch/commands.h"

namespace shardtune::launch {

// Every rank; returns the exit code (errors agreed on: one line, the same code on every rank).
int run_preprocess(WorldContext& context);

}  // namespace shardtune::launch
