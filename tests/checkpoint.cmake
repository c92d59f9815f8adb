# Sharded HDF5 checkpoints (issue 6): format and bad-file cases in one process, layouts and exact
# resume on two ranks (label mpi), and the CLI under mpiexec: SIGTERM/SIGUSR1, SIGKILL in the middle
# of a write, resume through metrics (label mpi).
shardtune_add_test(test_checkpoint test_checkpoint.cpp)

shardtune_add_mpi_suite(test_checkpoint_mpi NP 2 SOURCES test_checkpoint_mpi.cpp)

add_executable(test_checkpoint_cli test_checkpoint_cli.cpp)
target_link_libraries(test_checkpoint_cli PRIVATE ${SHARDTUNE_TEST_LIBS})
shardtune_use_torch(test_checkpoint_cli)
add_dependencies(test_checkpoint_cli shardtune)
target_compile_definitions(test_checkpoint_cli PRIVATE
  SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}"
  SHARDTUNE_MPIEXEC="${MPIEXEC_EXECUTABLE}")
add_test(NAME test_checkpoint_cli COMMAND test_checkpoint_cli)
set_tests_properties(test_checkpoint_cli PROPERTIES LABELS mpi TIMEOUT 900
                     ENVIRONMENT "OMP_NUM_THREADS=1")
