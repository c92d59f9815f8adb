# Tensor-parallel parity tests (label mpi): primitives, layers and whole models against TP=1.
add_executable(test_tp test_tp.cpp mpi_test_main.cpp)
target_link_libraries(test_tp PRIVATE shardtune_launch GTest::gtest)
target_compile_definitions(test_tp PRIVATE
  SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
shardtune_use_torch(test_tp)
shardtune_add_mpi_test(test_tp 2)
shardtune_add_mpi_test(test_tp 4)
