// The error policy of a command on many ranks: one line from one rank, every rank leaving with
// the same exit code through MPI_Finalize wherever the ranks can agree.
//
// Set-up (parsing, validation, data and checkpoint reading, model building) runs inside agree():
// every rank runs the body, one all-reduce finds the lowest failing rank (which alone prints its
// message), the worst exit code and any stop signal, and every rank returns that code; so a bad
// file on one rank ends all of them with one line. A body must not run collectives that a
// failing rank would skip.
//
// During training, agree_at_boundary() does the same at each step boundary for failures that
// happened outside the step's collectives (and for stop signals): the ranks throw AgreedError and
// leave together. An exception inside a collective region cannot be agreed on (the other ranks
// wait in the collective): run_or_abort() prints it once, from the failing rank, and ends the job
// quietly (quiet_abort).
//
// Exit codes (docs/reliability.md): 0 finished, 1 internal error, 2 user error (kUserErrorExitCode),
// 3 training stopped on a non-finite loss or gradient norm (kNonFiniteExitCode), 75 stopped by a
// signal after saving (kStoppedExitCode, launch/signals.h), 128+N killed by a second signal N.
#pragma once

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "base/errors.h"
#include "parallel/communicator.h"

namespace shardtune::launch {

inline constexpr int kNonFiniteExitCode = 3;

// The run stopped because its loss or gradient norm became NaN or infinite ([train]
// on_nonfinite): a user-facing outcome with its own exit code.
class NonFiniteError : public UserError {
 public:
  using UserError::UserError;
};

// An error every rank has agreed on and one rank has already printed: ranks unwind with `code`.
class AgreedError : public std::runtime_error {
 public:
  explicit AgreedError(int code)
      : std::runtime_error("error agreed on by every rank"), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// AgreedError: its code; NonFiniteError: 3; UserError and std::filesystem::filesystem_error: 2;
// anything else: 1.
int exit_code_of(const std::exception& e);

// `message` on one line: control characters (newline, carriage return, escape, ...) become \n,
// \r, \x1b, so no file name or value quoted in an error can forge a second line or a terminal
// sequence.
std::string one_line(std::string_view message);

// The message of `e` for the user: LibTorch errors without their C++ backtrace, "internal error: "
// before anything that is not a UserError, one line.
std::string message_of(const std::exception& e);

// Prints "shardtune: error[ on rank R]: <message>" to stderr and flushes it.
void print_error(const std::string& message, int rank = -1);

// Collective over `world`: 0 when `body` succeeded on every rank, else the worst exit code (the
// lowest failing rank prints its message). A stop signal received on any rank (launch/signals.h)
// turns a success into kStoppedExitCode, announced once by rank 0.
int agree(parallel::Communicator& world, const std::function<void()>& body);

// Collective over `world`, called where every rank arrives (a step boundary). `error` is this
// rank's failure since the last boundary (null = none). If any rank brings one, the lowest
// failing rank prints it and every rank throws AgreedError(worst code). Otherwise returns the
// largest stop signal number received on any rank (0 = none).
int agree_at_boundary(parallel::Communicator& world, const std::exception_ptr& error);

// Runs `body`. AgreedError: returns its code (already printed). Any other exception: this rank
// prints it once; with one rank returns its code, with several ends the job (quiet_abort).
int run_or_abort(parallel::Communicator& world, const std::function<void()>& body);

// Ends every rank of the job with `code` after stderr is flushed. Under Open MPI's own mpirun a
// rank that exits without MPI_Finalize makes mpirun end the others with that code, so this rank
// just exits (no MPI_ABORT banner); under any other launcher it calls MPI_Abort (abort_all).
[[noreturn]] void quiet_abort(int code);

}  // namespace shardtune::launch
