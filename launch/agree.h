// The error policy of a command on many ranks.
//
// Set-up (parsing, validation, data and checkpoint reading, model building) runs inside agree():
// every rank runs the body, an all-reduce finds the lowest failing rank, which alone prints its
// message, and every rank returns the error's exit code; so a bad file on one rank ends all of them
// with one line. A body must not run collectives that a failing rank would skip.
//
// After set-up ranks are inside collectives, so run_or_abort() ends the whole job (abort_all) when
// one rank throws: no rank is left waiting forever.
//
// Exit codes: 0 success, kUserErrorExitCode (2) for a UserError, 1 for anything else.
#pragma once

#include <exception>
#include <functional>

#include "parallel/communicator.h"

namespace shardtune::launch {

int exit_code_of(const std::exception& e);

// Collective over `world`: 0 when `body` succeeded on every rank, else the worst exit code.
int agree(parallel::Communicator& world, const std::function<void()>& body);

// Runs `body`; on an exception prints "shardtune: error on rank R: ...", and with more than one
// rank ends the job with the error's exit code. Returns 0 or that code (single rank).
int run_or_abort(parallel::Communicator& world, const std::function<void()>& body);

}  // namespace shardtune::launch
