// The fault-suite harness: run one shardtune command the way a user would (np=1 directly, or under
// mpiexec with np ranks; the shardtune executable or shardtune_hooked with its test hooks) and
// check what a user of a failing run is promised (docs/reliability.md):
//   - the exit code;
//   - exactly one error line on stderr ("shardtune: error..."), containing the expected text, and
//     no other stderr line unless the case allows it;
//   - no C++ backtrace, no MPI_ABORT banner, no crash report anywhere in the output;
//   - it finished within a loose time bound (a hang is a failure, never a stuck test: the harness
//     kills the whole process group at the hard limit);
//   - every file that existed under the watched directories beforehand is byte-identical
//     afterwards (a failing run never harms a checkpoint).
//
// Header-only and self-contained (POSIX + GoogleTest + the SHARDTUNE_* definitions the test
// targets get from tests/CMakeLists.txt), so any fault test can include it.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace shardtune::faults {

namespace fs = std::filesystem;

// Paths of the two executables the suite runs.
inline std::string shardtune_path() { return std::string(SHARDTUNE_BINARY_DIR) + "/launch/shardtune"; }
inline std::string hooked_path() { return std::string(SHARDTUNE_BINARY_DIR) + "/tests/shardtune_hooked"; }

// One command of the suite and what it must do.
struct FaultCase {
  std::vector<std::string> args;            // after the executable: {"train", "--config", ...}
  int np = 1;                               // > 1: run under mpiexec -np np
  bool hooked = false;                      // run shardtune_hooked (test hooks) instead
  std::map<std::string, std::string> env;   // added to the environment
  std::string cwd;                          // working directory ("" = inherit)
  int expect_code = 2;                      // expected exit status
  // Text the one error line must contain; empty = the run must print no error line at all.
  std::string expect_error;
  // Substrings of stderr lines that may appear besides the error line (e.g. a warning).
  std::vector<std::string> allowed_stderr;
  double max_seconds = 60;                  // loose bound: a run slower than this fails
  double kill_after_seconds = 180;          // hard limit: the process group is killed
  std::vector<std::string> watch;           // directories whose pre-existing files must survive
  std::vector<std::string> may_change;      // file names under them a case may legitimately
                                            // update (a resumed run's `latest`, its metrics)
  // Called once the process has started, with its pid (the mpiexec or shardtune process, leader of
  // its own process group), e.g. to send it signals. Runs on the test's thread.
  std::function<void(pid_t)> while_running;
};

// What one run did.
struct Outcome {
  int code = -1;       // exit status; -1 when killed by a signal
  int signal = 0;      // the signal that killed it (0 = exited)
  bool timed_out = false;
  double seconds = 0;
  std::string out, err;
  std::string command;  // as a shell would show it, for messages
};

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A snapshot of a directory tree: relative path -> kind + content (regular files: their bytes;
// symlinks: their target; directories: empty). Symlinks are recorded, never followed.
using Snapshot = std::map<std::string, std::string>;

inline Snapshot snapshot(const std::string& dir) {
  Snapshot snap;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return snap;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto rel = fs::relative(it->path(), dir).string();
    const auto st = fs::symlink_status(it->path());
    if (fs::is_symlink(st)) {
      snap[rel] = "L:" + fs::read_symlink(it->path()).string();
    } else if (fs::is_regular_file(st)) {
      snap[rel] = "F:" + read_all(it->path().string());
    } else if (fs::is_directory(st)) {
      snap[rel] = "D:";
    } else {
      snap[rel] = "O:";  // FIFO, socket, device: recorded by kind only, never opened
    }
  }
  return snap;
}

// The pre-existing entries of `before` that are missing or different now, one per line.
inline std::string changed_since(const std::string& dir, const Snapshot& before) {
  const Snapshot now = snapshot(dir);
  std::string report;
  for (const auto& [rel, content] : before) {
    auto it = now.find(rel);
    if (it == now.end()) {
      report += "  removed: " + dir + "/" + rel + "\n";
    } else if (it->second != content) {
      report += "  changed: " + dir + "/" + rel + "\n";
    }
  }
  return report;
}

inline std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@") == std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The argv of a case: [mpiexec flags -np N] executable args...
inline std::vector<std::string> argv_of(const FaultCase& c) {
  std::vector<std::string> argv;
  if (c.np > 1) {
    std::istringstream flags(std::string(SHARDTUNE_MPIEXEC) + " " + SHARDTUNE_MPIEXEC_FLAGS +
                             " --bind-to none");
    for (std::string w; flags >> w;) argv.push_back(w);
    argv.push_back("-np");
    argv.push_back(std::to_string(c.np));
    for (const auto& [k, v] : c.env) {  // Open MPI forwards only what -x names
      argv.push_back("-x");
      argv.push_back(k);
    }
  }
  argv.push_back(c.hooked ? hooked_path() : shardtune_path());
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  return argv;
}

// Runs `argv` with the case's environment, directory and limits (in a process group of its own)
// and returns what happened; asserts nothing.
inline Outcome run_argv(const FaultCase& c, const std::vector<std::string>& argv) {
  Outcome o;
  for (const auto& [k, v] : c.env) o.command += k + "=" + shell_quote(v) + " ";
  for (const auto& a : argv) o.command += shell_quote(a) + " ";

  char out_tmpl[] = "/tmp/fault-out-XXXXXX";
  char err_tmpl[] = "/tmp/fault-err-XXXXXX";
  const int out_fd = mkstemp(out_tmpl);
  const int err_fd = mkstemp(err_tmpl);
  if (out_fd < 0 || err_fd < 0) {
    o.err = "harness: mkstemp failed";
    return o;
  }
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own group: the harness can end mpiexec and every rank at once
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    for (const auto& [k, v] : c.env) setenv(k.c_str(), v.c_str(), 1);
    if (!c.cwd.empty() && chdir(c.cwd.c_str()) != 0) _exit(126);
    // Signals the test process may block or ignore must reach the child in their default state.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGPIPE}) signal(s, SIG_DFL);
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before while_running signals it
  if (c.while_running) c.while_running(pid);
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > c.kill_after_seconds) {
      o.timed_out = true;
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Ranks left behind by a dead launcher would hold files open: end the group whatever happened.
  kill(-pid, SIGKILL);
  if (WIFEXITED(status)) {
    o.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    o.signal = WTERMSIG(status);
  }
  close(out_fd);
  close(err_fd);
  o.out = read_all(out_tmpl);
  o.err = read_all(err_tmpl);
  unlink(out_tmpl);
  unlink(err_tmpl);
  return o;
}

// Runs a case (argv_of) and returns what happened; asserts nothing.
inline Outcome run_case(const FaultCase& c) { return run_argv(c, argv_of(c)); }

// Markers of a crash, an uncaught exception, a LibTorch backtrace or Open MPI's abort banner.
inline const std::vector<std::string>& trace_markers() {
  static const std::vector<std::string> markers = {
      "MPI_ABORT",          "Exception raised from", "frame #",        "terminate called",
      "Backtrace",          "Segmentation fault",    "core dumped",    "Aborted",
      "mpirun noticed",     "mpiexec noticed",       "prterun",        "exiting improperly",
      "*** Process received signal", "AddressSanitizer", "runtime error:"};
  return markers;
}

// Lines of the notice Open MPI's mpirun prints whenever a rank exits with a non-zero status (any
// failing job, however cleanly it ended: mpirun's, not ours; `mpirun -q` hides it) and of its
// "Forwarding signal" note. Everything else on stderr is checked.
inline bool launcher_notice(const std::string& line) {
  static const std::vector<std::string> prefixes = {
      "--------------------------------------------------------------------------",
      "Primary job  terminated normally, but 1 process returned",
      "a non-zero exit code. Per user-direction, the job has been aborted.",
      "mpirun detected that one or more processes exited with non-zero status",
      "mpiexec detected that one or more processes exited with non-zero status",
      "the job to be terminated. The first process to do so was:",
      "  Process name: [[",
      "  Exit code:",
      "mpirun: Forwarding signal",
      "mpiexec: Forwarding signal"};
  for (const auto& p : prefixes) {
    if (line.rfind(p, 0) == 0) return true;
  }
  return false;
}

inline bool is_error_line(const std::string& line) {
  return line.rfind("shardtune: error", 0) == 0;
}

// Checks an outcome against its case (GoogleTest expectations; a failure names the command).
inline void check_outcome(const FaultCase& c, const Outcome& o) {
  SCOPED_TRACE("command: " + o.command + "\n--- stdout ---\n" + o.out.substr(0, 4000) +
               "--- stderr ---\n" + o.err.substr(0, 4000));
  EXPECT_FALSE(o.timed_out) << "killed after " << c.kill_after_seconds << " s (a hang)";
  EXPECT_EQ(o.signal, 0) << "ended by signal " << o.signal;
  EXPECT_EQ(o.code, c.expect_code);
  EXPECT_LT(o.seconds, c.max_seconds) << "took " << o.seconds << " s";

  std::vector<std::string> error_lines, other_lines;
  std::string err;  // stderr without the launcher's notice
  const bool under_launcher = c.np > 1 || o.command.find("mpiexec") != std::string::npos;
  for (const auto& line : lines_of(o.err)) {
    if (under_launcher && launcher_notice(line)) continue;
    err += line + "\n";
    if (is_error_line(line)) {
      error_lines.push_back(line);
      continue;
    }
    bool allowed = false;
    for (const auto& a : c.allowed_stderr) allowed = allowed || line.find(a) != std::string::npos;
    if (!allowed) other_lines.push_back(line);
  }
  if (c.expect_error.empty()) {
    EXPECT_TRUE(error_lines.empty()) << "an error line where none was expected";
  } else {
    ASSERT_EQ(error_lines.size(), 1u) << "expected exactly one error line";
    EXPECT_NE(error_lines[0].find(c.expect_error), std::string::npos)
        << "the error line lacks \"" << c.expect_error << "\"";
  }
  EXPECT_TRUE(other_lines.empty()) << "unexpected stderr line: " << other_lines.front();
  for (const auto& marker : trace_markers()) {
    EXPECT_EQ(err.find(marker), std::string::npos) << "stderr shows \"" << marker << "\"";
    EXPECT_EQ(o.out.find(marker), std::string::npos) << "stdout shows \"" << marker << "\"";
  }
}

// Snapshots the watched directories, runs the case, checks the outcome and that every
// pre-existing file under them is byte-identical. Returns the outcome for further checks.
inline Outcome expect_fault(const FaultCase& c) {
  std::vector<Snapshot> before;
  for (const auto& dir : c.watch) before.push_back(snapshot(dir));
  const Outcome o = run_case(c);
  check_outcome(c, o);
  for (size_t i = 0; i < c.watch.size(); ++i) {
    std::string changed;
    for (const auto& line : lines_of(changed_since(c.watch[i], before[i]))) {
      bool exempt = false;
      for (const auto& name : c.may_change) {
        exempt = exempt || fs::path(line).filename() == name;
      }
      if (!exempt) changed += line + "\n";
    }
    EXPECT_TRUE(changed.empty()) << "pre-existing files harmed by " << o.command << ":\n"
                                 << changed;
  }
  return o;
}

// A fresh, empty scratch directory for one test, under the build tree (removed first if left over
// from an earlier run).
inline std::string scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(SHARDTUNE_BINARY_DIR) / "faults-scratch" / name;
  std::error_code ec;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  return dir.string();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// mtime of a file in nanoseconds (0 when absent).
inline long long mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

// faults-scratch/<name>, made by `build(dir)` (true on success) once per build of shardtune: it is
// stamped with the executable's mtime and rebuilt under a file lock when the stamp differs, so the
// test processes that ctest runs in parallel share one copy and never see it half made. Cases copy
// from it and never edit it.
template <typename Build>
std::string built_once(const std::string& name, Build build) {
  const fs::path root = fs::path(SHARDTUNE_BINARY_DIR) / "faults-scratch";
  fs::create_directories(root);
  const std::string dir = (root / name).string();
  const std::string stamp = dir + ".built-from";
  const int lock = ::open((root / (name + ".lock")).c_str(), O_CREAT | O_RDWR, 0644);
  ::flock(lock, LOCK_EX);
  const std::string binary_stamp = std::to_string(mtime_ns(shardtune_path()));
  if (read_all(stamp) != binary_stamp) {
    std::error_code ec;
    fs::remove(stamp, ec);
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    if (build(dir)) write_file(stamp, binary_stamp);
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return dir;
}

}  // namespace shardtune::faults
