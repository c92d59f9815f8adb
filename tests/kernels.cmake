# Fused kernels against the unfused LibTorch expressions (forward, gradients, fp32 and bf16,
# TP-sharded vocabulary shapes), and block recomputation against no recomputation.
shardtune_add_test(test_kernels test_kernels.cpp LIBS shardtune_core)
shardtune_add_mpi_suite(test_kernels_mpi NP 2 4 SOURCES test_kernels_mpi.cpp
                        LIBS shardtune_core shardtune_parallel)
# The kernels, bf16 compute and block recomputation wired into the models (core/compute.h).
shardtune_add_test(test_kernels_model test_kernels_model.cpp LIBS shardtune_core)
shardtune_add_mpi_suite(test_kernels_model_mpi NP 2 SOURCES test_kernels_model_mpi.cpp)
# [train] dtype = bf16 against fp32: 200 steps on WordNet glosses (docs/benchmarks.md).
shardtune_add_test(test_bf16 test_bf16.cpp)
