# parallel/ tests, and launch/bootstrap, which parallel's MPI tests run on.

# Single process: grid math, RankGrid with a fake split, LocalCommunicator, thread choice.
shardtune_add_test(test_parallel test_parallel_grid.cpp test_parallel_local.cpp
                   LIBS shardtune_parallel shardtune_bootstrap)

# Multi-rank collectives, on parallel/ alone (plus the bootstrap): np=2 and np=4.
shardtune_add_mpi_suite(test_parallel_collectives NP 2 4
                        SOURCES test_parallel_collectives.cpp test_parallel_mpi_grid.cpp
                        LIBS shardtune_parallel)

# A failing rank must end the whole job (launch::abort_all), not leave the others in a collective.
# The test passes on the job's exit code (3, from abort_all), not on Open MPI's help text, which
# is printed unreliably when several processes abort at once.
add_test(NAME test_parallel_abort_np2
         COMMAND sh -c "${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${SHARDTUNE_MPIEXEC_FLAGS} --bind-to none $<TARGET_FILE:test_parallel_collectives> --abort-test; test $? -eq 3")
set_tests_properties(test_parallel_abort_np2 PROPERTIES LABELS mpi TIMEOUT 60
                     FAIL_REGULAR_EXPRESSION "barrier returned")
