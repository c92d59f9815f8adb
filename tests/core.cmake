# core/ alone (model, layers, loss, optimizer), the Trainer, and the executable's error handling.
shardtune_add_test(test_model test_model.cpp LIBS shardtune_core)
shardtune_add_test(test_training_step test_training_step.cpp LIBS shardtune_core)
shardtune_add_test(test_train test_train.cpp)
shardtune_add_test(test_cli test_cli.cpp)
shardtune_add_test(test_fault_report test_fault_report.cpp)
shardtune_add_test(test_signals test_signals.cpp)
add_dependencies(test_cli shardtune shardtune_hooked)
shardtune_add_test(test_config test_config.cpp)
