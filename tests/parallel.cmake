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
add_executable(test_parallel_collectives test_parallel_collectives.cpp mpi_test_main.cpp
               ${PROJECT_SOURCE_DIR}/launch/bootstrap.cpp)
target_link_libraries(test_parallel_collectives PRIVATE shardtune_parallel GTest::gtest)
shardtune_use_torch(test_parallel_collectives)
shardtune_add_mpi_test(test_parallel_collectives 2)
shardtune_add_mpi_test(test_parallel_collectives 4)

# A failing rank must end the whole job (launch::abort_all), not leave the others in a collective.
# The test passes on the job's exit code (3, from abort_all), not on Open MPI's help text, which
# is printed unreliably when several processes abort at once.
string(JOIN " " _mpiexec_flags ${SHARDTUNE_MPIEXEC_EXTRA_FLAGS})
add_test(NAME test_parallel_abort_np2
         COMMAND sh -c "${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${_mpiexec_flags} --bind-to none $<TARGET_FILE:test_parallel_collectives> --abort-test; test $? -eq 3")
set_tests_properties(test_parallel_abort_np2 PROPERTIES LABELS mpi TIMEOUT 60
                     FAIL_REGULAR_EXPRESSION "barrier returned")
