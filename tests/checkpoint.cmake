# Sharded HDF5 checkpoints (issue 6): format and bad-file cases in one process, layouts and exact
# resume on two ranks (label mpi), and the CLI under mpiexec: SIGTERM/SIGUSR1, SIGKILL in the middle
# of a write, resume through metrics (label mpi).
shardtune_add_test(test_checkpoint test_checkpoint.cpp)

shardtune_add_mpi_suite(test_checkpoint_mpi NP 2 SOURCES test_checkpoint_mpi.cpp)

shardtune_test_target(test_checkpoint_cli SOURCES test_checkpoint_cli.cpp)
target_link_libraries(test_checkpoint_cli PRIVATE GTest::gtest_main)
add_dependencies(test_checkpoint_cli shardtune shardtune_hooked)
add_test(NAME test_checkpoint_cli COMMAND test_checkpoint_cli)
set_tests_properties(test_checkpoint_cli PROPERTIES LABELS mpi TIMEOUT 900
                     ENVIRONMENT "OMP_NUM_THREADS=1")

# The checkpoint package's parts (pieces, schema) and the fixture written by 98fa50c.
shardtune_add_test(test_checkpoint_package test_checkpoint_package.cpp)
