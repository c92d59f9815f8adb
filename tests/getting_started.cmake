# docs/getting-started.md's commands, run as written (tests/docs/run_blocks.sh) on the tiny Llama
# folder and JSONL files of the hf_walkthrough fixture (tests/hf_walkthrough.cmake).
add_test(NAME getting_started
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/run_blocks.sh
                 ${PROJECT_SOURCE_DIR}/docs/getting-started.md getting_started
                 $<TARGET_FILE:shardtune> ${PROJECT_BINARY_DIR}/getting_started
                 MODEL=${PROJECT_BINARY_DIR}/hf_walkthrough/models/llama
                 DATA=${PROJECT_BINARY_DIR}/hf_walkthrough/models)
set_tests_properties(getting_started PROPERTIES FIXTURES_REQUIRED hf_walkthrough LABELS mpi
                     TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")
