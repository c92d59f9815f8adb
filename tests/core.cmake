shardtune_add_test(test_model test_model.cpp)
shardtune_add_test(test_train test_train.cpp)
shardtune_add_test(test_cli test_cli.cpp)
add_dependencies(test_cli shardtune)
