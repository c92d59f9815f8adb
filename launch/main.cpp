// The `shardtune` executable: parse the command, run it (launch/commands.cpp).
#include "launch/commands.h"

int main(int argc, char** argv) { return shardtune::launch::run_cli(argc, argv); }
