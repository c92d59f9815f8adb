// Helpers for the Hugging Face model tests (test_hf.cpp, one process; test_hf_mpi.cpp, TP=2):
// the reference cases tests/reference/hf_reference.py writes (ctest fixture hf_reference; generated
// here when missing, for direct runs), tensors from safetensors files, the logits criterion, and
// running the reference's check commands on ShardTune's exports.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/errors.h"
#include "io/hf_weights.h"
#include "io/safetensors.h"

namespace shardtune::testing {

namespace fs = std::filesystem;
namespace st = io::safetensors;

// Logits and loss are compared within this fraction of the largest reference value: the reference
// computes in float64, ShardTune in float32, so only float32 rounding separates them (~1e-6).
constexpr double kHfRel = 1e-5;

inline std::string hf_python() { return SHARDTUNE_PYTHON; }
inline std::string hf_reference_script() {
  return std::string(SHARDTUNE_SOURCE_DIR) + "/tests/reference/hf_reference.py";
}
inline std::string hf_reference_dir() {
  return std::string(SHARDTUNE_BINARY_DIR) + "/hf_reference";
}

// Runs `command`, returning its exit status and output (stdout and stderr).
inline int run_command(const std::string& command, std::string* output) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  if (!pipe) return -1;
  char buffer[4096];
  std::string out;
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe.get())) out.append(buffer, n);
  const int status = pclose(pipe.release());
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The case names; generates the cases when the ctest fixture has not.
inline std::vector<std::string> hf_cases() {
  const fs::path list = fs::path(hf_reference_dir()) / "cases.txt";
  if (!fs::exists(list)) {
    std::string out;
    const int rc = run_command(
        hf_python() + " " + hf_reference_script() + " generate " + hf_reference_dir(), &out);
    if (rc != 0) throw std::runtime_error("hf_reference.py generate failed:\n" + out);
  }
  std::ifstream in(list);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

inline std::string hf_case_dir(const std::string& name) {
  return (fs::path(hf_reference_dir()) / name).string();
}

// A whole tensor of a file, in its own dtype.
inline torch::Tensor read_tensor(const st::File& file, const std::string& name) {
  const auto& info = file.at(name);
  const auto type = info.dtype == st::Dtype::kI64 ? torch::kLong : io::scalar_type_of(info.dtype);
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(type));
  file.read(info, info.dtype, t.data_ptr(), t.nbytes());
  return t;
}

struct HfExpected {
  torch::Tensor input_ids, attention_mask, labels, logits;  // logits float64 [B, T, V]
  double loss = 0.0;
};

inline HfExpected read_expected(const std::string& case_dir) {
  auto file = st::File::open(case_dir + "/expected.safetensors");
  HfExpected e;
  e.input_ids = read_tensor(*file, "input_ids");
  e.attention_mask = read_tensor(*file, "attention_mask");
  e.labels = read_tensor(*file, "labels");
  e.logits = read_tensor(*file, "logits");
  e.loss = read_tensor(*file, "loss").item<double>();
  return e;
}

// Largest |got - want| over real (mask = 1) positions, and the largest |want| there.
struct LogitError {
  double error = 0.0, scale = 0.0;
  bool ok(double rel = kHfRel) const { return error <= rel * scale + 1e-7; }
};
inline LogitError logit_error(const torch::Tensor& got, const torch::Tensor& want,
                              const torch::Tensor& mask) {
  auto real = mask.to(torch::kBool);
  auto diff = (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().index({real});
  return {diff.max().item<double>(),
          want.to(torch::kDouble).abs().index({real}).max().item<double>()};
}

// Writes {"logits": t} (float32) for the reference's check commands.
inline std::string write_logits(const std::string& path, const torch::Tensor& logits) {
  auto t = logits.detach().to(torch::kFloat).contiguous();
  st::Writer w(path, {{"logits", st::Dtype::kF32, t.sizes().vec()}});
  w.write("logits", t.data_ptr(), t.nbytes());
  w.finish();
  return path;
}

// Runs hf_reference.py with `args`; EXPECTs success and prints its output otherwise.
inline void expect_reference_check(const std::string& args) {
  std::string out;
  const int rc = run_command(hf_python() + " " + hf_reference_script() + " " + args, &out);
  EXPECT_EQ(rc, 0) << "hf_reference.py " << args << "\n" << out;
}

// A fresh empty directory under the build tree.
inline std::string hf_temp_dir(const std::string& name) {
  auto dir = fs::path(SHARDTUNE_BINARY_DIR) / "test-tmp" / "hf" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// The message of the UserError that f() throws, "(no error)" when it returns.
template <typename F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

// The model's logits on the reference case's inputs (eval mode, no autograd).
inline torch::Tensor logits_of(core::CausalLMImpl& model, const HfExpected& e) {
  model.eval();
  torch::NoGradGuard no_grad;
  return model.forward(e.input_ids, e.attention_mask);
}

}  // namespace shardtune::testing
