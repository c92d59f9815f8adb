# Docs that cannot go stale.
# - docs/cli.md is `shardtune --help-markdown` (generated from the command table, the options'
#   field lists and base/env.h): the test fails while the file differs and says how to regenerate.
add_test(NAME cli_reference
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_cli_reference.sh
                 $<TARGET_FILE:shardtune> ${PROJECT_SOURCE_DIR}/docs/cli.md)
set_tests_properties(cli_reference PROPERTIES LABELS "unit;docs" TIMEOUT 60)
