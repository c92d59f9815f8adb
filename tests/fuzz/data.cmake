# Training data (io/jsonl.cpp and what accepted records flow into: chat templates, clause
# reordering). LibTorch-free sources compiled into the target with the fuzzing instrumentation.
shardtune_add_fuzz_target(fuzz_jsonl
  SOURCES fuzz_jsonl.cpp ${PROJECT_SOURCE_DIR}/io/jsonl.cpp
          ${PROJECT_SOURCE_DIR}/io/chat_template.cpp ${PROJECT_SOURCE_DIR}/io/augment_clause.cpp
  LIBS shardtune_tokenizers)
