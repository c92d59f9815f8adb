# Tokenizers (io/tokenizers/). These binaries link no LibTorch, so they build in seconds. The
# reference tests need the assets of scripts/fetch_test_assets.sh (run by scripts/setup.sh) and
# Debian's node for the independent JavaScript encoders.
find_package(ICU REQUIRED COMPONENTS uc)  # the reference test computes NFC independently
function(shardtune_add_tokenizer_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE shardtune_tokenizers GTest::gtest GTest::gtest_main ICU::uc)
  target_compile_definitions(${name} PRIVATE
    SHARDTUNE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SHARDTUNE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit TIMEOUT 600)
endfunction()

shardtune_add_tokenizer_test(test_tokenizers test_tokenizers.cpp)
shardtune_add_tokenizer_test(test_tokenizers_reference test_tokenizers_reference.cpp)

# `shardtune tokenize` end to end through the real binary.
if(DEFINED ENV{SHARDTUNE_TEST_ASSETS})
  set(_assets "$ENV{SHARDTUNE_TEST_ASSETS}")
else()
  set(_assets "${PROJECT_SOURCE_DIR}/.cache/test-assets")
endif()
function(shardtune_add_tokenize_cli_test name regex)
  add_test(NAME ${name} COMMAND $<TARGET_FILE:shardtune> tokenize ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120 PASS_REGULAR_EXPRESSION "${regex}")
endfunction()
shardtune_add_tokenize_cli_test(tokenize_cli_gpt2_encode "^31373 995\n$"
  --tokenizer ${_assets}/gpt2 --text "hello world")
shardtune_add_tokenize_cli_test(tokenize_cli_gpt2_decode "^hello 👋 world 🌍\n$"
  --tokenizer ${_assets}/gpt2 --decode "31373 50169 233 995 12520 234 235")
shardtune_add_tokenize_cli_test(tokenize_cli_qwen3_special "^151644 872 198 13048 151645\n$"
  --tokenizer ${_assets}/qwen3 --text "<|im_start|>user\nHi<|im_end|>")
shardtune_add_tokenize_cli_test(tokenize_cli_qwen3_info
  "kind: hf-bpe\nidentity: hf-bpe-v1:[0-9a-f]+\nvocab_size: 151669\nbos: none\neos: 151645\npad: 151643\nunk: none\n"
  --tokenizer ${_assets}/qwen3 --info)
shardtune_add_tokenize_cli_test(tokenize_cli_sentencepiece "^22172 3186\n$"
  --tokenizer ${_assets}/sentencepiece/llama2.model --text "hello world")
shardtune_add_tokenize_cli_test(tokenize_cli_byte "^104 105\n$" --tokenizer byte --text "hi")
shardtune_add_tokenize_cli_test(tokenize_cli_unknown_layout
  "shardtune: error: ${PROJECT_SOURCE_DIR}/tests: no tokenizer found in this folder"
  --tokenizer ${PROJECT_SOURCE_DIR}/tests --text "x")
shardtune_add_tokenize_cli_test(tokenize_cli_bad_id
  "shardtune: error: cannot decode id 50257: it names no token \\(vocabulary size 50257\\)"
  --tokenizer ${_assets}/gpt2 --decode "50257")
