# Task metrics below launch/: exact-match label accuracy and the majority-class baseline
# (core/label_accuracy.h, `shardtune score`, the demo's table).
shardtune_add_test(test_label_accuracy test_label_accuracy.cpp LIBS shardtune_core)
shardtune_add_test(test_lexname test_lexname.cpp LIBS shardtune_io)
