// Stop signals (launch/signals.h) never interrupt a compute thread: one watcher thread takes them
// with sigwait and every other thread blocks them. With a plain handler, a signal that lands in
// oneDNN's JIT fp32 GEMM writes its frame over the heap (oneDNN issue 4845): the storm below then
// aborts in free() or corrupts a product.
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>
#include <utility>
#include <vector>

#include "core/kernels/fused_ops.h"
#include "launch/signals.h"

namespace {

namespace launch = shardtune::launch;
namespace kernels = shardtune::kernels;

bool blocked_here(int sig) {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, sig) == 1;
}

// Waits (at most 10 s) until the watcher has seen the signal; false when it never did.
bool wait_for_stop_request() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!launch::stop_requested()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

class StopSignals : public ::testing::Test {
 protected:
  // The child re-runs the test binary: no thread of this process (OpenMP's) is forked half-alive.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(StopSignals, EveryThreadButTheWatcherBlocksThem) {
  EXPECT_EXIT(
      {
        launch::install_stop_signals();
        bool all = true;
        for (int sig : {SIGINT, SIGTERM, SIGUSR1}) all = all && blocked_here(sig);
        std::thread([&] {
          for (int sig : {SIGINT, SIGTERM, SIGUSR1}) all = all && blocked_here(sig);
        }).join();
        if (!all) std::_Exit(3);
        // Process-directed, as kill, mpirun and srun send it: the watcher records it.
        ::kill(::getpid(), SIGTERM);
        if (!wait_for_stop_request()) std::_Exit(4);
        std::_Exit(launch::stop_signal() == SIGTERM ? 0 : 5);
      },
      ::testing::ExitedWithCode(0), "^$");
}

// 3000 stop signals, each answered (the flag is cleared, so none counts as a second one), while the
// main thread and OpenMP's run oneDNN sgemm back to back; every product stays exact. Ends the
// process: 0 when all went well.
[[noreturn]] void storm_during_gemms() {
  launch::install_stop_signals();
  torch::manual_seed(7);
  const auto a = torch::randint(-4, 5, {384, 384}).to(torch::kFloat);
  const auto b = torch::randint(-4, 5, {384, 384}).to(torch::kFloat);
  // Each operand layout oneDNN is called with: plain, and either side transposed in place (the
  // 'N'/'T' pair is the attention scores' q k^T; it is the one that showed the damage first).
  const std::pair<torch::Tensor, torch::Tensor> products[] = {{a, b}, {a, b.t()}, {a.t(), b}};
  std::vector<torch::Tensor> expected;
  for (const auto& [x, y] : products) {
    expected.push_back(torch::mm(x.to(torch::kDouble), y.to(torch::kDouble)));
  }
  constexpr int kSignals = 3000;
  std::atomic<int> answered{0};
  std::atomic<bool> lost{false};
  std::thread sender([&] {
    for (int i = 0; i < kSignals && !lost; ++i) {
      ::kill(::getpid(), SIGUSR1);
      if (!wait_for_stop_request()) lost = true;
      launch::clear_stop_request();
      answered.fetch_add(1);
    }
  });
  int done = 0;
  while (answered.load() < kSignals && !lost) {
    // Small integers: every sum is exact in fp32, so any difference is damage.
    const int i = done++ % 3;
    const auto c = kernels::mm_f32(products[i].first, products[i].second);
    if (!c.to(torch::kDouble).equal(expected[i])) std::_Exit(4);
  }
  sender.join();
  std::_Exit(lost ? 5 : done > 0 ? 0 : 6);
}

TEST_F(StopSignals, AStormDuringOneDnnGemmsLeavesTheHeapIntact) {
  if (!kernels::onednn_sgemm_available()) GTEST_SKIP() << "no oneDNN sgemm in this process";
  EXPECT_EXIT(storm_during_gemms(), ::testing::ExitedWithCode(0), "^$");
}

}  // namespace
