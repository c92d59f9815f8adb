# Tensor-parallel parity tests (label mpi): primitives, layers and whole models against TP=1.
shardtune_add_mpi_suite(test_tp NP 2 4 SOURCES test_tp.cpp test_tp_models.cpp)
