# The installed package: `cmake --install` into a fresh prefix, examples/custom_strategy/ built
# against it through find_package(ShardTune), and a run with the strategy it registers
# (tests/install/install_and_build_example.sh). Needs every installed target built (the default
# `ninja` build does that).
add_test(NAME install_package
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/install_and_build_example.sh
                 ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} ${PROJECT_BINARY_DIR}/install-test)
set_tests_properties(install_package PROPERTIES LABELS "unit;install" TIMEOUT 900
                     ENVIRONMENT "OMP_NUM_THREADS=1")
