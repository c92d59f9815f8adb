# Fine-tuning strategies: single-rank behaviour (unit) and TP/DP parity (label mpi).
shardtune_add_test(test_strategies test_strategies.cpp LIBS shardtune_launch shardtune_strategies)
shardtune_add_test(test_strategies_data test_strategies_data.cpp
                   LIBS shardtune_launch shardtune_strategies)
shardtune_add_mpi_suite(test_strategies_mpi NP 2 4 SOURCES test_strategies_mpi.cpp)
