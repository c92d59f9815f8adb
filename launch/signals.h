// Stopping a run with a signal (docs/reliability.md, "Stopping a job").
//
// SIGINT, SIGTERM and SIGUSR1 are handled from the start of an MPI command (before MPI_Init) by
// one watcher thread that takes them with sigwait(3); every other thread blocks them. No signal
// handler ever runs on a compute thread: oneDNN's JIT fp32 GEMM points the stack pointer into heap
// memory while it runs (oneDNN issue 4845, fixed in 3.11.2; Debian 12 ships 2.7), so a handler
// there writes its signal frame over the heap (the CI failure of 2026-12-02, reproduced by
// tests/test_signals.cpp). They are process-directed signals (kill, mpirun, srun, scancel, Ctrl-C);
// one sent to a single thread (raise, pthread_kill) stays pending.
//  - the first one only sets a flag. Set-up is abandoned at the end of its current phase (every
//    set-up phase ends in an all-reduce that carries the flag: launch/agree.h); training stops
//    after the step in flight (every step boundary carries it too), every rank at the same step,
//    saves a checkpoint unless that state is non-finite, and the process exits kStoppedExitCode;
//  - a second one exits at once with 128 + the signal (rank 0 says so on stderr); so does the
//    first one once set-up is over in commands that have nothing to save (eval, generate,
//    export). A checkpoint
//    being written then is left as a temporary file and `latest` still names the previous one
//    (io/checkpoint writes to a temporary name and renames).
// Under Open MPI's mpirun send SIGUSR1 to mpirun (it forwards SIGUSR1 to every rank; SIGTERM and
// SIGINT make mpirun itself kill the ranks within a second and exit 1). Under srun, scancel's
// SIGTERM reaches every task; `--signal=USR1@120` gives notice before the time limit.
#pragma once

namespace shardtune::launch {

// The exit status of a run stopped by a signal after saving (or abandoning set-up): 75, EX_TEMPFAIL
// of sysexits.h ("temporary failure; the user is invited to retry": resume with --resume auto).
inline constexpr int kStoppedExitCode = 75;

// SIGSEGV and SIGBUS while a file is being read (base/reading.h) end the process with one line
// naming the file and exit code 2 (kUserErrorExitCode), on an alternate stack; any other fault
// keeps its default action. Installed before MPI_Init, which then leaves them in place (Open MPI
// replaces no handler already set); idempotent.
void install_fault_report();

// The first call blocks the stop signals in the calling thread, before any other thread starts
// (threads inherit the mask; so would a program it exec'd), and starts the watcher. Every call
// (re-)installs a handler that acts the same way, for threads older than the first call (call it
// again after MPI_Init, which must not have replaced it). Other signals keep their default
// behaviour.
void install_stop_signals();
// The rank that speaks for the job when a second signal ends it (-1 = unknown yet: every process
// speaks).
void set_signal_rank(int rank);
// From now on the first signal exits at once, as a second one would (commands with nothing to
// save: eval, generate, export); one already received is acted on now.
void exit_on_first_signal();
// Whether a stop signal arrived since install_stop_signals() / clear_stop_request().
bool stop_requested();
// The signal number that asked to stop (0 = none).
int stop_signal();
void clear_stop_request();
// Rank 0's line on stderr for an agreed stop: "shardtune: signal 15 (SIGTERM): stopping <what>".
void announce_stop(int signal, const char* what);

}  // namespace shardtune::launch
