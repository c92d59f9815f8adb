// Translation unit that owns the precompiled <torch/torch.h> every ShardTune target reuses.
