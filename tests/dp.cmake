# Data-parallel parity tests (label mpi).
add_executable(test_dp test_dp.cpp mpi_test_main.cpp)
target_link_libraries(test_dp PRIVATE shardtune_launch GTest::gtest)
target_compile_definitions(test_dp PRIVATE
  SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
shardtune_use_torch(test_dp)
shardtune_add_mpi_test(test_dp 2)
shardtune_add_mpi_test(test_dp 4)
