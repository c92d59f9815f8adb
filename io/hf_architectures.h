// The Hugging Face architectures ShardTune reads and writes (internal to io/: the config reader and
// writer share it): model_type and the class name config.json's "architectures" gives.
#pragma once

namespace shardtune::io {

struct HfArchitecture {
  const char* model_type;
  const char* class_name;
};
inline constexpr HfArchitecture kArchitectures[] = {{"llama", "LlamaForCausalLM"},
                                                    {"qwen2", "Qwen2ForCausalLM"},
                                                    {"mistral", "MistralForCausalLM"},
                                                    {"gpt2", "GPT2LMHeadModel"}};

}  // namespace shardtune::io
