# PEFT adapters back into ShardTune (io/peft_import.h), against the reference cases of hf.cmake.
add_executable(test_hf_peft_import test_hf_peft_import.cpp)
target_link_libraries(test_hf_peft_import PRIVATE ${SHARDTUNE_TEST_LIBS} shardtune_strategies
                      GTest::gtest GTest::gtest_main)
shardtune_use_torch(test_hf_peft_import)
target_compile_definitions(test_hf_peft_import PRIVATE SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}" SHARDTUNE_PYTHON="${SHARDTUNE_PYTHON}")
gtest_discover_tests(test_hf_peft_import DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS unit TIMEOUT 600 FIXTURES_REQUIRED hf_reference)
