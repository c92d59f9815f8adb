# Fine-tuning strategies: single-rank behaviour (unit) and TP/DP parity (label mpi).
shardtune_add_test(test_strategies test_strategies.cpp)
add_executable(test_strategies_mpi test_strategies_mpi.cpp mpi_test_main.cpp)
target_link_libraries(test_strategies_mpi PRIVATE shardtune_launch GTest::gtest)
target_compile_definitions(test_strategies_mpi PRIVATE
  SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
shardtune_use_torch(test_strategies_mpi)
shardtune_add_mpi_test(test_strategies_mpi 2)
shardtune_add_mpi_test(test_strategies_mpi 4)
shardtune_add_test(test_strategies_data test_strategies_data.cpp)
