# parallel/ tests (and launch/bootstrap, which parallel's MPI tests run on).

# Single process: grid math, RankGrid with a fake split, LocalCommunicator, thread choice.
# Links every ShardTune library; bootstrap.cpp is compiled in only while the launch library does
# not list it yet.
get_target_property(_launch_sources shardtune_launch SOURCES)
set(_bootstrap_source "")
if(NOT _launch_sources MATCHES "bootstrap\\.cpp")
  set(_bootstrap_source ${PROJECT_SOURCE_DIR}/launch/bootstrap.cpp)
endif()
shardtune_add_test(test_parallel test_parallel_grid.cpp test_parallel_local.cpp
                   ${_bootstrap_source})

# Multi-rank collectives. The file has its own main (MPI init, rank-0-only output), so the target
# is made here without gtest_main; shardtune_add_mpi_test then only adds the np=2 and np=4 runs.
# It links only the parallel library (plus bootstrap.cpp), so it builds while other folders are
# mid-edit.
add_executable(test_parallel_collectives test_parallel_collectives.cpp
               ${PROJECT_SOURCE_DIR}/launch/bootstrap.cpp)
target_link_libraries(test_parallel_collectives PRIVATE shardtune_parallel GTest::gtest)
shardtune_use_torch(test_parallel_collectives)
shardtune_add_mpi_test(test_parallel_collectives 2)
shardtune_add_mpi_test(test_parallel_collectives 4)

# A failing rank must end the whole job (launch::abort_all), not leave the others in a collective.
add_test(NAME test_parallel_abort_np2
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${SHARDTUNE_MPIEXEC_EXTRA_FLAGS}
                 --bind-to none $<TARGET_FILE:test_parallel_collectives> --abort-test)
set_tests_properties(test_parallel_abort_np2 PROPERTIES LABELS mpi TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "MPI_ABORT was invoked on rank 1")
