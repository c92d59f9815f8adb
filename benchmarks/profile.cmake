# Per-operator profile of a training step (LibTorch's CPU profiler); read by
# benchmarks/profile_families.py, driven by benchmarks/profile.sh (docs/benchmarks-profile.md).
add_executable(profile_step profile_step.cpp)
target_link_libraries(profile_step PRIVATE shardtune_launch)
shardtune_use_torch(profile_step)
