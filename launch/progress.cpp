#include "launch/progress.h"

#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace shardtune::launch::progress {

namespace {
std::mutex g_mutex;
bool g_live = false;
bool g_shown = false;

// "\r" to the start of the line, ESC[K (erase to its end): the line's old text is gone.
constexpr char kErase[] = "\r\033[K";

void erase_locked() {
  if (!g_shown) return;
  std::fputs(kErase, stdout);
  std::fflush(stdout);
  g_shown = false;
}

class ClearingSink final : public spdlog::sinks::sink {
 public:
  explicit ClearingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}
  void log(const spdlog::details::log_msg& msg) override {
    clear();
    inner_->log(msg);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};
}  // namespace

bool live() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_live;
}

void enable(bool is_root) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_live = is_root && ::isatty(STDOUT_FILENO) == 1;
}

void show(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_live) return;
  std::fputs(kErase, stdout);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  g_shown = true;
}

void clear() {
  std::lock_guard<std::mutex> lock(g_mutex);
  erase_locked();
}

std::shared_ptr<spdlog::sinks::sink> progress_sink(std::shared_ptr<spdlog::sinks::sink> inner) {
  return std::make_shared<ClearingSink>(std::move(inner));
}

}  // namespace shardtune::launch::progress
