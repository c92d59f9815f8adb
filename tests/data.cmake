# Data: JSONL records, chat templates, clause augmentation (torch-free binaries), token datasets.
# The chat-template reference test needs the assets of scripts/fetch_test_assets.sh and Debian's
# node (tests/data/chat_reference.mjs).
function(shardtune_add_records_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE shardtune_records shardtune_tokenizers GTest::gtest
                        GTest::gtest_main nlohmann_json::nlohmann_json)
  target_compile_definitions(${name} PRIVATE
    SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit TIMEOUT 600)
endfunction()

shardtune_add_records_test(test_data_records test_data_records.cpp)
shardtune_add_records_test(test_data_chat_reference test_data_chat_reference.cpp)

# Token datasets: the collective write at 1, 2 and 3 ranks; damaged files edited with HDF5's API.
shardtune_add_mpi_suite(test_data_token_dataset NP 1 2 3 SOURCES test_data_token_dataset.cpp
                        LIBS shardtune_io)
target_include_directories(test_data_token_dataset SYSTEM PRIVATE ${HDF5_INCLUDE_DIRS})
target_link_libraries(test_data_token_dataset PRIVATE ${HDF5_C_LIBRARIES})

# Sequence packing: rows, document-id masks, positions, and per-document logits equal to unpacked.
shardtune_add_test(test_packing test_packing.cpp LIBS shardtune_io)
