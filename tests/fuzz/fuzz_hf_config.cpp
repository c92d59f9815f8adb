// Fuzzes config.json import (io/hf_config.cpp). Accepted: a config, or a UserError. Findings: any
// other exception, a crash, a sanitizer report, or an accepted config whose export
// (hf_config_json, fresh and on top of the input) does not read back as the same model.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/hf_config.h"
#include "base/errors.h"

using namespace shardtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  io::HfModelConfig hf;
  try {
    hf = io::parse_hf_config(text, "fuzz/config.json");
  } catch (const UserError&) {
    return 0;
  }
  for (const std::string& base : {std::string(), text}) {
    const auto again = io::parse_hf_config(
        io::hf_config_json(hf.config, hf.model_type, hf.dtype, base), "fuzz/exported.json");
    if (!(again.config == hf.config) || again.model_type != hf.model_type) __builtin_trap();
  }
  return 0;
}
