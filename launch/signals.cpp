#include "launch/signals.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "base/errors.h"
#include "base/reading.h"
#include "launch/progress.h"

namespace shardtune::launch {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
volatile std::sig_atomic_t g_rank = -1;
volatile std::sig_atomic_t g_immediate = 0;

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal";
  }
}

// Async-signal-safe: only write(2) and _exit(2).
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal == 0 && !g_immediate) {
    g_stop_signal = sig;
    return;
  }
  if (g_rank <= 0) {
    char line[128] = "shardtune: error: stop signal (";
    std::strncat(line, signal_name(sig), 16);
    std::strncat(line, "): exiting at once, without a checkpoint\n", 64);
    const ssize_t ignored = ::write(STDERR_FILENO, line, std::strlen(line));
    (void)ignored;
  }
  ::_exit(128 + sig);
}

void put(const char* text) { (void)!::write(STDERR_FILENO, text, std::strlen(text)); }

// Async-signal-safe: write(2), sigaction(2), raise(3) and _exit(2) only.
extern "C" void on_fault(int sig) {
  if (base::reading_file_count() > 0) {
    put("shardtune: error: ");
    put(sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    put(" while reading ");
    base::write_reading_files(STDERR_FILENO);
    put(": the file is damaged, crafted, or was changed while it was being read; nothing was "
        "written\n");
    ::_exit(kUserErrorExitCode);
  }
  // Not while reading a file: a bug of ours; the default action (a core dump where enabled).
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(sig, &action, nullptr);
  raise(sig);
}
}  // namespace

void install_fault_report() {
  static char stack[64 * 1024];  // faults from a stack overflow need a stack of their own
  stack_t alt {};
  alt.ss_sp = stack;
  alt.ss_size = sizeof(stack);
  sigaltstack(&alt, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fault;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS}) sigaction(sig, &action, nullptr);
}

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls (MPI progress, file I/O) resume after the handler
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaction(sig, &action, nullptr);
  // A signal blocked by whoever started us would be lost until unblocked.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

void set_signal_rank(int rank) { g_rank = rank; }

void exit_on_first_signal() {
  g_immediate = 1;
  if (g_stop_signal != 0) {
    // One arrived already: treat it as the first of two.
    on_stop_signal(g_stop_signal);
  }
}

bool stop_requested() { return g_stop_signal != 0; }

int stop_signal() { return g_stop_signal; }

void clear_stop_request() { g_stop_signal = 0; }

void announce_stop(int signal, const char* what) {
  progress::clear();
  std::fflush(stdout);
  std::fprintf(stderr, "shardtune: signal %d (%s): stopping %s\n", signal, signal_name(signal),
               what);
  std::fflush(stderr);
}

}  // namespace shardtune::launch
