# docs/data.md's commands, run as written (tests/docs/run_blocks.sh): training from pre-tokenized
# records without a tokenizer and from ShareGPT conversations.
add_test(NAME data_docs
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/run_blocks.sh ${PROJECT_SOURCE_DIR}/docs/data.md
                 data_jsonl $<TARGET_FILE:shardtune> ${PROJECT_BINARY_DIR}/data_docs)
set_tests_properties(data_docs PROPERTIES LABELS unit TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")
