# Task data and metrics for classification-like tasks: the WordNet lexname task (io/wordnet.h).
shardtune_add_test(test_lexname test_lexname.cpp LIBS shardtune_io)
