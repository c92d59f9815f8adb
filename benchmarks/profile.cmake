# Per-operator profile of a training step (LibTorch's CPU profiler); read by
# benchmarks/profile_families.py, driven by benchmarks/profile.sh (docs/benchmarks-profile.md).
add_executable(profile_step profile_step.cpp)
target_link_libraries(profile_step PRIVATE shardtune_launch)
shardtune_use_torch(profile_step)

# bf16 vs fp32 GEMM rates for the model's GEMM shapes: which take oneDNN's path in LibTorch 1.13.
add_executable(bench_bf16_gemm bench_bf16_gemm.cpp)
shardtune_use_torch(bench_bf16_gemm)

# Fused kernels against the LibTorch ops they replace, at the 30M llama's shapes (CPU ms, faults).
add_executable(bench_kernels bench_kernels.cpp)
target_link_libraries(bench_kernels PRIVATE shardtune_core)
shardtune_use_torch(bench_kernels)
