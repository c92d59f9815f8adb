# Fused kernels against the unfused LibTorch expressions (forward, gradients, fp32 and bf16,
# TP-sharded vocabulary shapes), and block recomputation against no recomputation.
if(NOT TARGET shardtune_kernels)
  # Until core/CMakeLists.txt adds core/kernels itself.
  add_subdirectory(${PROJECT_SOURCE_DIR}/core/kernels ${PROJECT_BINARY_DIR}/core/kernels)
endif()
shardtune_add_test(test_kernels test_kernels.cpp)
target_link_libraries(test_kernels PRIVATE shardtune_kernels)
shardtune_add_mpi_suite(test_kernels_mpi NP 2 4 SOURCES test_kernels_mpi.cpp)
target_link_libraries(test_kernels_mpi PRIVATE shardtune_kernels)
