# Hugging Face models in and out (issue 12). The reference cases come from
# tests/reference/hf_reference.py, an independent PyTorch implementation run with Debian's
# python3-torch (scripts/setup.sh installs it), as the fixture hf_reference; the tests also run the
# script to recompute ShardTune's exports. One process (unit) and TP=2 (label mpi).
set(SHARDTUNE_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with Debian's python3-torch, for tests/reference/hf_reference.py")

add_test(NAME hf_reference_generate
         COMMAND ${SHARDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/hf_reference.py
                 generate ${PROJECT_BINARY_DIR}/hf_reference)
set_tests_properties(hf_reference_generate PROPERTIES FIXTURES_SETUP hf_reference LABELS unit
                     TIMEOUT 300)

# As shardtune_add_test, with the fixture on every discovered test.
add_executable(test_hf test_hf.cpp)
target_link_libraries(test_hf PRIVATE ${SHARDTUNE_TEST_LIBS} shardtune_strategies GTest::gtest
                      GTest::gtest_main)
shardtune_use_torch(test_hf)
target_compile_definitions(test_hf PRIVATE SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}" SHARDTUNE_PYTHON="${SHARDTUNE_PYTHON}")
gtest_discover_tests(test_hf DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS unit TIMEOUT 600 FIXTURES_REQUIRED hf_reference)

shardtune_add_mpi_suite(test_hf_mpi NP 2 SOURCES test_hf_mpi.cpp
                        LIBS shardtune_launch shardtune_strategies)
target_compile_definitions(test_hf_mpi PRIVATE SHARDTUNE_PYTHON="${SHARDTUNE_PYTHON}")
set_tests_properties(test_hf_mpi_np2 PROPERTIES FIXTURES_REQUIRED hf_reference)
