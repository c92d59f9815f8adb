# The README's main job (scripts/demo.sh = set-up + scripts/demo_run.sh) on a small budget:
# pretraining, the four strategies on WordNet's part-of-speech task, `shardtune score`, the table, the
# gnuplot PNG and the held-out predictions (tests/demo_run_test.sh).
add_test(NAME demo_run
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/demo_run_test.sh ${PROJECT_SOURCE_DIR}
                 $<TARGET_FILE:shardtune> ${PROJECT_BINARY_DIR}/demo_run)
set_tests_properties(demo_run PROPERTIES LABELS unit TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")

# benchmarks/scaling.sh --quick (tests/scaling_quick_test.sh).
add_test(NAME scaling_quick
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scaling_quick_test.sh ${PROJECT_SOURCE_DIR}
                 $<TARGET_FILE:bench_train> ${PROJECT_BINARY_DIR}/scaling_quick)
set_tests_properties(scaling_quick PROPERTIES LABELS mpi TIMEOUT 300)
