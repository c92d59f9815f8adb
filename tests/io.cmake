# io/ alone: tokenizer, JSONL, WordNet.
shardtune_add_test(test_io test_io.cpp test_wordnet.cpp LIBS shardtune_io)
