# Tokenizer parsers and the encoder (io/tokenizers/).
shardtune_add_fuzz_target(fuzz_tokenizer_json SOURCES fuzz_tokenizer_json.cpp LIBS shardtune_tokenizers)
shardtune_add_fuzz_target(fuzz_gpt2_bpe SOURCES fuzz_gpt2_bpe.cpp LIBS shardtune_tokenizers)
shardtune_add_fuzz_target(fuzz_tokenizer_encode SOURCES fuzz_tokenizer_encode.cpp LIBS shardtune_tokenizers)
