# Fused kernels against the unfused LibTorch expressions (forward, gradients, fp32 and bf16,
# TP-sharded vocabulary shapes), and block recomputation against no recomputation.
shardtune_add_test(test_kernels test_kernels.cpp LIBS shardtune_core)
shardtune_add_mpi_suite(test_kernels_mpi NP 2 4 SOURCES test_kernels_mpi.cpp
                        LIBS shardtune_core shardtune_parallel)
