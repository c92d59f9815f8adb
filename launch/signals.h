// Graceful stop on SIGTERM / SIGUSR1 (Slurm preemption, `scancel --signal=USR1`, mpirun
// forwarding SIGUSR1): the handler only sets a flag; the trainer reads it after each step, agrees
// on it across ranks (MAX all-reduce, so every rank stops after the same step), saves a checkpoint
// and returns, and the process exits 0.
#pragma once

namespace shardtune::launch {

// Installs the handlers (idempotent). Other signals keep their default behaviour.
void install_stop_signals();
// Whether SIGTERM or SIGUSR1 arrived since install_stop_signals() / clear_stop_request().
bool stop_requested();
// The signal number that asked to stop (0 = none).
int stop_signal();
void clear_stop_request();

}  // namespace shardtune::launch
