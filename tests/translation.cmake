# P-tuning v2 transfer across language pairs (examples/translation/transfer.sh, docs/strategies.md)
# on a small budget; needs Debian's dict-freedict-eng-fra and -eng-spa (scripts/setup.sh).
add_test(NAME ptuning_translation_transfer
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/translation_test.sh ${PROJECT_SOURCE_DIR}
                 $<TARGET_FILE:shardtune> ${PROJECT_BINARY_DIR}/translation_transfer)
set_tests_properties(ptuning_translation_transfer PROPERTIES LABELS unit TIMEOUT 600
                     ENVIRONMENT "OMP_NUM_THREADS=1")
