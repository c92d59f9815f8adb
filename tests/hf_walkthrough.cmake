# docs/hf.md's walkthrough run as written (tests/hf_walkthrough.sh, tests/docs/run_blocks.sh) on
# the tiny Llama, Qwen2 and GPT-2 folders of `tests/reference/hf_reference.py walkthrough`: train
# with each strategy at TP=2 x DP=2 (4 ranks), evaluate, export hf and peft, re-import; the
# losses checked against each other and against the independent PyTorch reference.
add_test(NAME hf_walkthrough_models
         COMMAND ${SHARDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/hf_reference.py
                 walkthrough ${PROJECT_BINARY_DIR}/hf_walkthrough/models)
set_tests_properties(hf_walkthrough_models PROPERTIES FIXTURES_SETUP hf_walkthrough
                     LABELS mpi TIMEOUT 300)

# shardtune_hf_walkthrough(MODEL BLOCKS STRATEGY...): the blocks named BLOCKS on MODEL's folder.
function(shardtune_hf_walkthrough model blocks)
  add_test(NAME hf_walkthrough_${model}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hf_walkthrough.sh ${PROJECT_SOURCE_DIR}
                   $<TARGET_FILE:shardtune> ${SHARDTUNE_PYTHON}
                   ${PROJECT_BINARY_DIR}/hf_walkthrough/models ${model}
                   ${PROJECT_BINARY_DIR}/hf_walkthrough/${model} ${blocks} ${ARGN})
  set_tests_properties(hf_walkthrough_${model} PROPERTIES FIXTURES_REQUIRED hf_walkthrough
                       LABELS mpi TIMEOUT 900 ENVIRONMENT "OMP_NUM_THREADS=1")
endfunction()

shardtune_hf_walkthrough(llama hf_walkthrough sft lora ptuning-v2 freeze)
shardtune_hf_walkthrough(qwen2 hf_qwen2 lora ptuning-v2)
shardtune_hf_walkthrough(gpt2 hf_gpt2 sft lora)
