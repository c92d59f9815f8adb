shardtune_add_test(test_io test_io.cpp)
