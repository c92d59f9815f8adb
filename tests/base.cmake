# base/ alone: hashes (published test vectors), string helpers, the environment variable list.
shardtune_add_test(test_base test_base.cpp LIBS shardtune_base)
