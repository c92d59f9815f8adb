# Hugging Face model files (io/safetensors*.cpp, io/hf_config.cpp): both parsers are LibTorch-free,
# so their sources are compiled into the targets with the fuzzing instrumentation (no library of
# their own to instrument).
shardtune_add_fuzz_target(fuzz_safetensors
  SOURCES fuzz_safetensors.cpp ${PROJECT_SOURCE_DIR}/io/safetensors.cpp
          ${PROJECT_SOURCE_DIR}/io/safetensors_dtype.cpp ${PROJECT_SOURCE_DIR}/io/safetensors_write.cpp
  LIBS shardtune_base)
shardtune_add_fuzz_target(fuzz_hf_config
  SOURCES fuzz_hf_config.cpp ${PROJECT_SOURCE_DIR}/io/hf_config.cpp
          ${PROJECT_SOURCE_DIR}/io/hf_config_write.cpp
          ${PROJECT_SOURCE_DIR}/core/model_config.cpp
  LIBS shardtune_base)
