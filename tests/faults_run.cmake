# The fault suite (label `faults`, docs/reliability.md): every tests/faults/test_faults*.cpp in
# one binary, each case a ctest test, run against the built shardtune and shardtune_hooked
# executables (tests/faults/fault_case.h). The checkpoint fault cases build on the HDF5 C API and
# have their own binary (tests/faults_checkpoint.cmake).
file(GLOB _fault_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/faults/test_faults*.cpp)
list(FILTER _fault_sources EXCLUDE REGEX "test_faults_checkpoint\\.cpp$")
shardtune_test_target(test_faults LIBS shardtune_base SOURCES ${_fault_sources})
target_link_libraries(test_faults PRIVATE GTest::gtest_main)
target_include_directories(test_faults PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/faults)
add_dependencies(test_faults shardtune shardtune_hooked)
gtest_discover_tests(test_faults DISCOVERY_TIMEOUT 60 PROPERTIES LABELS faults TIMEOUT 300
                     SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
