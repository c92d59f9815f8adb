# The planner (core/plan.h) and `shardtune plan` (launch/cmd_plan.h): counts against built models,
# the memory and time model, the CLI, and docs/planning.md's calibration table.
shardtune_add_test(test_plan test_plan.cpp LIBS shardtune_launch shardtune_strategies)
add_dependencies(test_plan shardtune)
