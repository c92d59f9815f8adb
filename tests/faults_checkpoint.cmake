# Checkpoint and checkpoint-directory fault cases (issue 13; docs/reliability-checkpoints.md): each
# TEST runs the shardtune executable against a hostile file or directory and is registered with
# ctest on its own (label faults_checkpoint, which `ctest -L faults` also selects; two cases run two ranks under mpiexec). The HDF5 C API
# crafts the bad files (tests/faults/checkpoint_harness.h).
shardtune_test_target(test_faults_checkpoint SOURCES faults/test_faults_checkpoint.cpp)
target_link_libraries(test_faults_checkpoint PRIVATE GTest::gtest_main)
add_dependencies(test_faults_checkpoint shardtune shardtune_hooked)
gtest_discover_tests(test_faults_checkpoint DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS faults_checkpoint TIMEOUT 180
                     ENVIRONMENT "OMP_NUM_THREADS=1")
target_include_directories(test_faults_checkpoint SYSTEM PRIVATE ${HDF5_INCLUDE_DIRS})
target_link_libraries(test_faults_checkpoint PRIVATE ${HDF5_C_LIBRARIES} MPI::MPI_CXX)

# The reader's metadata path on hostile files, in process and without LibTorch: the LibTorch-free
# checkpoint sources are compiled into the test (as into tests/fuzz/fuzz_checkpoint).
shardtune_test_target(test_checkpoint_reader LIBS shardtune_base
  SOURCES test_checkpoint_reader.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/verify.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/hdf5.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/info.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/metadata.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/geometry.cpp)
target_include_directories(test_checkpoint_reader PRIVATE ${PROJECT_SOURCE_DIR}
                           ${CMAKE_CURRENT_SOURCE_DIR})
target_include_directories(test_checkpoint_reader SYSTEM PRIVATE ${HDF5_INCLUDE_DIRS})
target_link_libraries(test_checkpoint_reader PRIVATE GTest::gtest_main ${HDF5_C_LIBRARIES}
                      MPI::MPI_CXX)
gtest_discover_tests(test_checkpoint_reader DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS faults_checkpoint TIMEOUT 120)

# 20 SIGKILLs at random moments of runs checkpointing every step (np=1 and np=2), each followed by
# `ckpt inspect` and `--resume auto` that must succeed (scripts/kill_harness.sh; ~2-3 min).
add_test(NAME kill_harness
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/kill_harness.sh 20 ${PROJECT_BINARY_DIR})
set_tests_properties(kill_harness PROPERTIES LABELS "faults;faults_checkpoint;mpi" TIMEOUT 900)
