# Data-parallel parity tests (label mpi).
shardtune_add_mpi_suite(test_dp NP 2 4 SOURCES test_dp.cpp)
