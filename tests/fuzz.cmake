# libFuzzer targets (tests/fuzz/), built only when SHARDTUNE_FUZZ is ON with clang; see
# scripts/fuzz.sh, which configures a separate build tree for them.
option(SHARDTUNE_FUZZ "Build the libFuzzer targets under tests/fuzz (clang, ASan + UBSan)" OFF)
if(SHARDTUNE_FUZZ)
  add_subdirectory(fuzz)
endif()
