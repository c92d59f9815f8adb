// `shardtune export`: the trained model as one plain model checkpoint. Loads a run's checkpoint
// ([checkpoint] init_from) with its strategy, merges the strategy into the base weights
// (Strategy::merge: LoRA folds scale * B A into W; sft and freeze have nothing to fold;
// ptuning-v2 has no merged form and is refused), and writes every base parameter at its global
// shape under /model/ to <[train] out_dir>/export/step-N.h5, loadable by any later run as
// [checkpoint] init_from with any strategy and layout.
#pragma once

#include <string>

#include "launch/trainer.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

// Collective over the grid (TP gathers); rank 0 writes. Returns the file path on rank 0, "" on
// the others.
std::string export_merged(Trainer& trainer, parallel::RankGrid& grid);

}  // namespace shardtune::launch
