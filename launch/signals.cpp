#include "launch/signals.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

#include "base/errors.h"
#include "base/reading.h"
#include "launch/progress.h"

namespace shardtune::launch {

namespace {
// Lock-free atomics: safe to touch from the watcher thread and from a signal handler alike.
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_rank{-1};
std::atomic<bool> g_immediate{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGUSR1};

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

// What a stop signal does, on the watcher thread or in a handler: the first one only records
// itself; a second one (or the first, after exit_on_first_signal) ends the process. Async-signal-
// safe: only atomics, write(2) and _exit(2).
void act_on_stop_signal(int sig) {
  int none = 0;
  if (!g_immediate.load() && g_stop_signal.compare_exchange_strong(none, sig)) return;
  if (g_rank.load() <= 0) {
    char line[128] = "shardtune: error: stop signal (";
    std::strncat(line, signal_name(sig), 16);
    std::strncat(line, "): exiting at once, without a checkpoint\n", 64);
    const ssize_t ignored = ::write(STDERR_FILENO, line, std::strlen(line));
    (void)ignored;
  }
  ::_exit(128 + sig);
}

extern "C" void on_stop_signal(int sig) { act_on_stop_signal(sig); }

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kStopSignals) sigaddset(&set, sig);
  return set;
}

// The one thread that takes stop signals: every other thread blocks them (signals.h says why).
void watch_stop_signals() {
  const sigset_t set = stop_signal_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) == 0) act_on_stop_signal(sig);
  }
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
  // The handler serves only threads that existed before the first call (they do not block the
  // signals); SA_ONSTACK puts its frame on such a thread's alternate stack where it has one.
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_ONSTACK;  // blocking calls resume after the handler
  for (int sig : kStopSignals) sigaction(sig, &action, nullptr);
  static const bool watching = [] {
    // Blocked here, before MPI, OpenMP or LibTorch start a thread: each thread inherits the mask,
    // so a stop signal reaches the watcher's sigwait and never interrupts a compute thread. A
    // signal blocked by whoever started us is taken by sigwait all the same.
    const sigset_t set = stop_signal_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    try {
      std::thread(watch_stop_signals).detach();
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): the handler takes them on this thread instead.
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      return false;
    }
    return true;
  }();
  (void)watching;
}

void set_signal_rank(int rank) { g_rank.store(rank); }

void exit_on_first_signal() {
  g_immediate.store(true);
  // One arrived already: treat it as the first of two.
  if (const int sig = g_stop_signal.load(); sig != 0) act_on_stop_signal(sig);
}

bool stop_requested() { return g_stop_signal.load() != 0; }

int stop_signal() { return g_stop_signal.load(); }

void clear_stop_request() { g_stop_signal.store(0); }

void announce_stop(int signal, const char* what) {
  progress::clear();
  std::fflush(stdout);
  std::fprintf(stderr, "shardtune: signal %d (%s): stopping %s\n", signal, signal_name(signal),
               what);
  std::fflush(stderr);
}

}  // namespace shardtune::launch
