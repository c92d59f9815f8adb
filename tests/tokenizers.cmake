# Tokenizers (io/tokenizers/). These binaries link no LibTorch, so they build in seconds. The
# reference tests need the assets of scripts/fetch_test_assets.sh (run by scripts/setup.sh) and
# Debian's node for the independent JavaScript encoders.
function(shardtune_add_tokenizer_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE shardtune_tokenizers GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit TIMEOUT 600)
endfunction()

shardtune_add_tokenizer_test(test_tokenizers test_tokenizers.cpp)
shardtune_add_tokenizer_test(test_tokenizers_reference test_tokenizers_reference.cpp)
