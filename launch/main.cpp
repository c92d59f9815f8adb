// The `shardtune` executable: parse the command, run it (launch/cli.cpp).
#include "launch/cli.h"

int main(int argc, char** argv) { return shardtune::launch::run_cli(argc, argv); }
