// The fault report (launch/signals.h install_fault_report, base/reading.h): a SIGSEGV or SIGBUS
// while a file is being read ends the process with one line naming the file and exit code 2; a
// fault anywhere else keeps its default action.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <string>

#include "base/reading.h"
#include "io/safetensors.h"
#include "launch/signals.h"
#include "test_helpers.h"

namespace {

using shardtune::testing::TempDirTest;
namespace st = shardtune::io::safetensors;

void fault() {
  volatile int* p = nullptr;
  *p = 1;
}

using FaultReport = TempDirTest;

// A model file rewritten (here: truncated) while a job has it mapped: the next read of a weight
// raises SIGBUS inside our own copy loop.
TEST_F(FaultReport, AMappedSafetensorsFileThatShrankIsNamed) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[4096],"data_offsets":[0,16384]}})";
  std::string image(8, '\0');
  for (int i = 0; i < 8; ++i) image[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  image += header + std::string(16384, '\1');
  const std::string path = write("model.safetensors", image);
  EXPECT_EXIT(
      {
        shardtune::launch::install_fault_report();
        const auto file = st::File::open(path);
        if (::truncate(path.c_str(), 0) != 0) std::_Exit(9);
        std::string copy(file->raw(file->at("w")));  // faults: the pages are gone
        std::_Exit(copy.empty() ? 8 : 7);
      },
      ::testing::ExitedWithCode(2),
      "^shardtune: error: SIGBUS while reading .*/model\\.safetensors: the file is damaged, "
      "crafted, or was changed while it was being read; nothing was written\n$");
}

TEST(FaultReportBare, ASegfaultWhileReadingNamesEveryFileBeingRead) {
  EXPECT_EXIT(
      {
        shardtune::launch::install_fault_report();
        const shardtune::base::ReadingFile a("/runs/a/checkpoints/step-00000100.h5");
        const shardtune::base::ReadingFile b("/models/tiny/model.safetensors");
        fault();
      },
      ::testing::ExitedWithCode(2),
      "^shardtune: error: SIGSEGV while reading /runs/a/checkpoints/step-00000100\\.h5, "
      "/models/tiny/model\\.safetensors: ");
}

// Files no longer read are not named: outside any read a fault is a bug of ours and keeps its
// default action (a core dump where enabled).
TEST(FaultReportBare, AFaultOutsideAnyReadKeepsItsDefaultAction) {
  EXPECT_EXIT(
      {
        shardtune::launch::install_fault_report();
        { const shardtune::base::ReadingFile done("/runs/a/checkpoints/step-00000100.h5"); }
        fault();
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

// A moved ReadingFile keeps naming its file; the one moved from names nothing.
TEST(ReadingFile, MovesKeepOneNamePerFile) {
  EXPECT_EQ(shardtune::base::reading_file_count(), 0);
  shardtune::base::ReadingFile a("/x/one.h5");
  shardtune::base::ReadingFile b(std::move(a));
  EXPECT_EQ(shardtune::base::reading_file_count(), 1);
  shardtune::base::ReadingFile c;
  c = std::move(b);
  EXPECT_EQ(shardtune::base::reading_file_count(), 1);
  c = shardtune::base::ReadingFile("/x/two.h5");
  EXPECT_EQ(shardtune::base::reading_file_count(), 1);
}

}  // namespace
