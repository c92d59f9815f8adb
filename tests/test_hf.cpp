// Hugging Face models in and out, one process (issue 12):
//   - the safetensors reader/writer: layout, dtype conversion against torch's, slices, sharded
//     folders, and every malformed-file case with its exact one-line error;
//   - config.json import/export: the four architectures, every refused field, round trips;
//   - load_hf_weights against the independent PyTorch reference (tests/reference/hf_reference.py):
//     each parameter bit for bit (Conv1D transposes, fused c_attn, vocabulary padding), logits and
//     loss within 1e-5 of the float64 reference, and proof that the comparison catches a
//     non-transposed Conv1D and Meta's rotary layout;
//   - export: export then import gives identical logits; the reference recomputes the exported
//     folder's logits on its own; PEFT LoRA and prefix-tuning exports applied the way PEFT applies
//     them give ShardTune's logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/loss.h"
#include "core/model.h"
#include "core/shard.h"
#include "hf_test_helpers.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "io/peft_export.h"
#include "io/safetensors.h"
#include "base/errors.h"
#include "strategies/lora.h"
#include "strategies/ptuning_v2.h"

using namespace shardtune;
using namespace shardtune::testing;
namespace st = shardtune::io::safetensors;

namespace {

// Must equal tests/reference/hf_reference.py's CASES (checked by CaseListMatchesTheScript).
const std::vector<std::string> kCases = {
    "gpt2_hub",         "gpt2_saved_sharded", "llama_gqa_tied_sharded_bf16",
    "llama_mha_untied", "mistral_mqa",        "qwen2_gqa_bias_f16"};

// ---- raw safetensors images ----

std::string image(const std::string& header, size_t data_bytes, int64_t declared = -1) {
  const uint64_t n = declared >= 0 ? static_cast<uint64_t>(declared) : header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

std::string parse_error(const std::string& bytes, st::ParseOptions options = {}) {
  try {
    st::File::from_memory(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                          "m.safetensors", options);
  } catch (const UserError& e) {
    return e.what();
  }
  return "(accepted)";
}

// Writes `tensors` (name -> tensor, in their dtypes) as DIR/model.safetensors.
void write_model_file(const std::string& dir, const std::map<std::string, torch::Tensor>& tensors,
                      const std::string& file = "model.safetensors") {
  std::vector<st::TensorEntry> entries;
  std::map<std::string, torch::Tensor> ready;
  for (const auto& [name, t] : tensors) {
    auto c = t.contiguous();
    const auto d =
        c.scalar_type() == torch::kLong ? st::Dtype::kI64 : io::dtype_of(c.scalar_type());
    entries.push_back({name, d, c.sizes().vec()});
    ready[name] = c;
  }
  st::Writer w(dir + "/" + file, entries);
  for (const auto& [name, t] : ready) w.write(name, t.data_ptr(), t.nbytes());
  w.finish();
}

std::map<std::string, torch::Tensor> all_tensors(const st::File& file) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : file.tensors()) out[t.name] = read_tensor(file, t.name);
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ---- safetensors: format ----------------------------------------------------------------------

TEST(Safetensors, WriterPadsHeaderAlignsTensorsAndRoundTrips) {
  const auto dir = hf_temp_dir("writer");
  auto a = torch::arange(6, torch::kDouble).reshape({2, 3});
  auto b = torch::randn({5});
  auto c = torch::randn({3, 2}).to(torch::kBFloat16);
  auto s = torch::tensor(7.5f);  // a 0-dim scalar
  auto e = torch::empty({0, 4});
  write_model_file(dir, {{"z.f64", a}, {"b.f32", b}, {"c.bf16", c}, {"s", s}, {"e", e}});
  auto file = st::File::open(dir + "/model.safetensors");
  uint64_t n = 0;
  std::ifstream in(dir + "/model.safetensors", std::ios::binary);
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  // Larger dtypes first, then by name: every tensor is naturally aligned.
  for (const auto& t : file->tensors()) {
    EXPECT_EQ((8 + n + t.begin) % static_cast<uint64_t>(st::dtype_bits(t.dtype) / 8), 0u) << t.name;
  }
  EXPECT_EQ(file->at("z.f64").begin, 0u);
  EXPECT_TRUE(torch::equal(read_tensor(*file, "z.f64"), a));
  EXPECT_TRUE(torch::equal(read_tensor(*file, "b.f32"), b));
  EXPECT_TRUE(torch::equal(read_tensor(*file, "c.bf16"), c));
  EXPECT_EQ(read_tensor(*file, "s").item<float>(), 7.5f);
  EXPECT_EQ(read_tensor(*file, "e").sizes(), e.sizes());
}

TEST(Safetensors, ConversionsRoundLikeTorch) {
  // Every magnitude from subnormal halves to past the F16 range, plus the special values.
  auto gen = at::detail::createCPUGenerator(7);
  auto x = at::randn({20000}, gen) *
           torch::pow(2.0, at::randint(-30, 20, {20000}, gen).to(torch::kFloat));
  auto specials = torch::tensor({0.0f, -0.0f, 65504.0f, 65520.0f, 1e-8f, 5.96e-8f,
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::quiet_NaN(), 1.00390625f, 3.4e38f});
  x = torch::cat({x, specials}).contiguous();
  for (auto [dtype, type] :
       {std::pair{st::Dtype::kF16, torch::kHalf}, {st::Dtype::kBF16, torch::kBFloat16}}) {
    auto ours = torch::empty(x.sizes(), torch::TensorOptions().dtype(type));
    st::convert(x.data_ptr(), st::Dtype::kF32, ours.data_ptr(), dtype, x.numel(), "t");
    auto theirs = x.to(type);
    auto same = ours.view(torch::kShort) == theirs.view(torch::kShort);
    auto both_nan = ours.isnan() & theirs.isnan();
    EXPECT_TRUE((same | both_nan).all().item<bool>()) << st::dtype_name(dtype) << " narrowing";
    // Widening back is exact.
    auto back = torch::empty(x.sizes());
    st::convert(theirs.data_ptr(), dtype, back.data_ptr(), st::Dtype::kF32, x.numel(), "t");
    auto want = theirs.to(torch::kFloat);
    EXPECT_TRUE(((back == want) | (back.isnan() & want.isnan())).all().item<bool>())
        << st::dtype_name(dtype) << " widening";
  }
  auto d = x.to(torch::kDouble);
  auto f = torch::empty(x.sizes());
  st::convert(d.data_ptr(), st::Dtype::kF64, f.data_ptr(), st::Dtype::kF32, x.numel(), "t");
  EXPECT_TRUE(((f == x) | (f.isnan() & x.isnan())).all().item<bool>());
  EXPECT_EQ(user_error([&] {
              st::convert(f.data_ptr(), st::Dtype::kI32, d.data_ptr(), st::Dtype::kF32, 1, "f: x");
            }),
            "f: x: dtype I32 cannot be converted to F32 (conversions exist between F64, F32, F16 "
            "and BF16)");
}

// BF16 -> F32 of a tensor large enough to be split over threads (io/safetensors_dtype.cpp): every
// element, including those at the parts' boundaries, equals torch's widening.
TEST(Safetensors, LargeBf16WideningIsExactAcrossItsParts) {
  auto gen = at::detail::createCPUGenerator(11);
  const int64_t n = (int64_t{1} << 21) + 7;  // not a multiple of any part count
  const auto x = (at::randn({n}, gen) * 1e3).to(torch::kBFloat16);
  auto ours = torch::full({n}, -1.0f);
  st::convert(x.data_ptr(), st::Dtype::kBF16, ours.data_ptr(), st::Dtype::kF32, n, "t");
  EXPECT_TRUE(torch::equal(ours, x.to(torch::kFloat)));
}

TEST(Safetensors, SlicesMatchShardSpecs) {
  const auto dir = hf_temp_dir("slices");
  auto full = torch::arange(4 * 6 * 3, torch::kFloat).reshape({4, 6, 3});
  write_model_file(dir, {{"t", full.to(torch::kBFloat16)}});
  auto file = st::File::open(dir + "/model.safetensors");
  const auto& info = file->at("t");
  for (int dim : {0, 1, 2}) {
    for (int64_t parts : {int64_t{1}, int64_t{2}, int64_t{3}}) {
      // Fused segments must split evenly; a plain split may leave padding (dim 2: 2 + 1).
      if (parts > 1 && (full.size(dim) % parts || (full.size(dim) / parts) % 2)) continue;
      for (int rank = 0; rank < 2; ++rank) {
        auto spec = core::split_spec({4, 6, 3}, dim, rank, 2, parts);
        st::Slice s{spec.dim, spec.parts, spec.offset, spec.length};
        auto got = torch::empty(st::File::slice_shape(info, s, "t"));
        file->read(info, s, st::Dtype::kF32, got.data_ptr(), got.nbytes());
        EXPECT_TRUE(torch::equal(got, core::slice_of(full, spec))) << spec.describe();
      }
    }
  }
  auto out = torch::empty({2});
  EXPECT_EQ(user_error([&] {
              file->read(info, st::Slice{1, 4, 0, 1}, st::Dtype::kF32, out.data_ptr(), 8);
            }),
            dir +
                "/model.safetensors: tensor 't': cannot take slice dim 1 (4 parts) [0, 1) of shape "
                "[4, 6, 3]: dim does not divide into parts");
}

// Runs of 64 KiB and more are read with pread, converted in 4 MiB chunks: a BF16 tensor larger
// than several chunks, whole and as TP slices along either dim, and a same-dtype read, against
// torch; a file that shrinks under the reader is one error, not a crash.
TEST(Safetensors, LargeReadsGoThroughPreadInChunks) {
  const auto dir = hf_temp_dir("pread");
  auto gen = at::detail::createCPUGenerator(5);
  const auto big = (at::randn({2600, 1001}, gen) * 100).to(torch::kBFloat16);  // 5.2 MB
  const auto f32 = at::randn({300, 700}, gen);                                 // 840 KB
  write_model_file(dir, {{"big", big}, {"f32", f32}});
  const std::string path = dir + "/model.safetensors";
  auto file = st::File::open(path);
  auto whole = torch::empty({2600, 1001});
  file->read(file->at("big"), st::Dtype::kF32, whole.data_ptr(), whole.nbytes());
  EXPECT_TRUE(torch::equal(whole, big.to(torch::kFloat)));
  auto same = torch::empty({300, 700});
  file->read(file->at("f32"), st::Dtype::kF32, same.data_ptr(), same.nbytes());
  EXPECT_TRUE(torch::equal(same, f32));
  for (int dim : {0, 1}) {
    const auto spec = core::split_spec({2600, 1001}, dim, 1, 2, 1);
    st::Slice s{spec.dim, spec.parts, spec.offset, spec.length};
    auto got = torch::empty(st::File::slice_shape(file->at("big"), s, path));
    file->read(file->at("big"), s, st::Dtype::kF32, got.data_ptr(), got.nbytes());
    EXPECT_TRUE(torch::equal(got, core::slice_of(big.to(torch::kFloat), spec))) << dim;
  }
  ASSERT_EQ(::truncate(path.c_str(), 1 << 20), 0);
  const std::string error = user_error([&] {
    file->read(file->at("big"), st::Dtype::kF32, whole.data_ptr(), whole.nbytes());
  });
  EXPECT_NE(error.find(path + ": tensor 'big': read failed at byte "), std::string::npos) << error;
  EXPECT_NE(error.find("the file shrank while it was being read"), std::string::npos) << error;
}

TEST(Safetensors, ShardedFolderWithIndexAndStaleFilesRemoved) {
  const auto dir = hf_temp_dir("sharded");
  write_model_file(dir, {{"stale", torch::zeros({1})}});  // an earlier single-file export
  std::vector<st::TensorEntry> entries;
  std::map<std::string, torch::Tensor> tensors;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "w" + std::to_string(i);
    tensors[name] = torch::full({10}, static_cast<float>(i));
    entries.push_back({name, st::Dtype::kF32, {10}});
  }
  st::ShardedWriter w(dir, entries, /*max_shard_bytes=*/100);  // 40 bytes each: 2 per shard
  for (const auto& [name, t] : tensors) w.write(name, t.data_ptr(), t.nbytes());
  const auto files = w.finish();
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                             "model-00002-of-00003.safetensors",
                                             "model-00003-of-00003.safetensors"}));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  auto folder = st::Folder::open(dir);
  EXPECT_EQ(folder.names().size(), 5u);
  EXPECT_EQ(folder.file_of("w4")->path(), dir + "/model-00003-of-00003.safetensors");
  auto index = nlohmann::json::parse(read_text(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 200);
  EXPECT_EQ(index["weight_map"]["w2"], "model-00002-of-00003.safetensors");
}

// ---- safetensors: malformed files, each with its one-line error --------------------------------

TEST(SafetensorsErrors, TruncatedAndOversizedHeaders) {
  EXPECT_EQ(parse_error(std::string(5, '\0')),
            "m.safetensors: file is 5 bytes, too short for the 8-byte header length (truncated?)");
  EXPECT_EQ(
      parse_error(image("{}", 0, 1000)),
      "m.safetensors: header length 1000 runs past the end of the file (10 bytes; truncated?)");
  EXPECT_EQ(parse_error(image("{}", 0, 200'000'000)),
            "m.safetensors: header length 200000000 exceeds the limit of 100000000 bytes");
  EXPECT_EQ(parse_error(image("", 0)), "m.safetensors: header does not start with '{'");
  EXPECT_EQ(parse_error(image("[1]", 0)), "m.safetensors: header does not start with '{'");
  const auto bad_json = parse_error(image("{\"a\": ", 0));
  EXPECT_EQ(bad_json.rfind(
                "m.safetensors: header: not valid JSON: [json.exception.parse_error.101]", 0),
            0u)
      << bad_json;
  EXPECT_EQ(bad_json.find('\n'), std::string::npos);
  // A file cut inside its data: the last tensor runs past the buffer.
  EXPECT_EQ(parse_error(image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 10)),
            "m.safetensors: tensor 'a': data_offsets end 16 runs past the data buffer (10 bytes; "
            "truncated?)");
}

TEST(SafetensorsErrors, EntriesAreValidated) {
  const auto one = [](const std::string& entry, size_t data = 24) {
    return parse_error(image("{\"a\":" + entry + "}", data));
  };
  EXPECT_EQ(one("5"), "m.safetensors: tensor 'a': entry is not an object");
  EXPECT_EQ(one(R"({"dtype":"F17","shape":[6],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': unknown dtype 'F17'");
  EXPECT_EQ(one(R"({"shape":[6],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': 'dtype' is missing or not a string");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[2,-3],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': shape entries must be non-negative integers");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': shape entries must be non-negative integers");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': shape's element count overflows");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[1152921504606846976,2],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': byte size overflows");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})", 20),
            "m.safetensors: tensor 'a': shape [2, 3] x F32 is 24 bytes but data_offsets span 20");
  EXPECT_EQ(one(R"({"dtype":"BF16","shape":[2,3],"data_offsets":[0,24]})"),
            "m.safetensors: tensor 'a': shape [2, 3] x BF16 is 12 bytes but data_offsets span 24");
  EXPECT_EQ(one(R"({"dtype":"F32","shape":[6],"data_offsets":[24,0]})"),
            "m.safetensors: tensor 'a': data_offsets [24, 0] end before begin");
  EXPECT_EQ(
      one(R"({"dtype":"F32","shape":[6],"data_offsets":[0]})"),
      "m.safetensors: tensor 'a': 'data_offsets' must be [begin, end] with non-negative integers");
  EXPECT_EQ(one(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", 2),
            "m.safetensors: tensor 'a': shape [3] x F4 is not a whole number of bytes");
  EXPECT_EQ(parse_error(image(R"({"__metadata__":{"format":1}})", 0)),
            "m.safetensors: __metadata__ 'format' is not a string");
  EXPECT_EQ(
      parse_error(image(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
          4)),
      "m.safetensors: header: the key \"a\" appears twice in one object");
  // Names from the file are printed on one line.
  EXPECT_EQ(parse_error(image("{\"x\\ny\":5}", 0)),
            "m.safetensors: tensor 'x?y': entry is not an object");
}

TEST(SafetensorsErrors, RangesMustNotOverlapNorLeaveHoles) {
  const std::string f32x4 = R"("dtype":"F32","shape":[4])";
  EXPECT_EQ(parse_error(image("{\"a\":{" + f32x4 + ",\"data_offsets\":[0,16]},\"b\":{" + f32x4 +
                                  ",\"data_offsets\":[8,24]}}",
                              24)),
            "m.safetensors: tensor 'b': data_offsets [8, 24] overlap tensor 'a'");
  const std::string holed = "{\"a\":{" + f32x4 + ",\"data_offsets\":[0,16]},\"b\":{" + f32x4 +
                            ",\"data_offsets\":[20,36]}}";
  EXPECT_EQ(parse_error(image(holed, 36)),
            "m.safetensors: tensor 'b': data_offsets begin 20 leaves a hole after byte 16");
  EXPECT_EQ(parse_error(image(holed, 36), st::ParseOptions{100'000'000, false}), "(accepted)");
  EXPECT_EQ(parse_error(image("{\"a\":{" + f32x4 + ",\"data_offsets\":[0,16]}}", 20)),
            "m.safetensors: tensors cover 16 of the 20 data bytes (holes or trailing bytes)");
  // Empty tensors may sit anywhere; trailing padding spaces in the header are fine.
  EXPECT_EQ(
      parse_error(image("{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"a\":{" +
                            f32x4 + ",\"data_offsets\":[0,16]}}    ",
                        16)),
      "(accepted)");
}

TEST(SafetensorsErrors, FilesAndIndexes) {
  const auto dir = hf_temp_dir("bad_files");
  std::ofstream(dir + "/short.safetensors") << "abc";
  EXPECT_EQ(user_error([&] { st::File::open(dir + "/short.safetensors"); }),
            dir +
                "/short.safetensors: file is 3 bytes, too short for the 8-byte header length "
                "(truncated?)");
  EXPECT_EQ(user_error([&] { st::File::open(dir + "/none.safetensors"); }),
            dir + "/none.safetensors: cannot open: No such file or directory");
  EXPECT_EQ(user_error([&] { st::Folder::open(dir); }),
            dir + ": no model.safetensors or model.safetensors.index.json");
  std::ofstream(dir + "/pytorch_model.bin") << "pickle";
  EXPECT_EQ(user_error([&] { st::Folder::open(dir); }),
            dir +
                ": no model.safetensors or model.safetensors.index.json; it holds only pickled "
                "PyTorch weights (pytorch_model.bin), which ShardTune never loads: convert them "
                "to safetensors first");

  write_model_file(dir, {{"a", torch::zeros({2})}, {"b", torch::zeros({2})}}, "part.safetensors");
  const std::string index = dir + "/model.safetensors.index.json";
  const auto with_map = [&](const std::string& map) {
    std::ofstream(index) << "{\"metadata\":{},\"weight_map\":" << map << "}";
    return user_error([&] { st::Folder::open(dir); });
  };
  EXPECT_EQ(with_map(R"({"a":"part.safetensors","b":"part.safetensors"})"), "(no error)");
  EXPECT_EQ(with_map(R"({"a":"../part.safetensors","b":"part.safetensors"})"),
            index +
                ": weight_map 'a' names file '../part.safetensors', which is not a plain path "
                "inside the folder");
  EXPECT_EQ(
      with_map(R"({"a":"/etc/passwd","b":"part.safetensors"})"),
      index +
          ": weight_map 'a' names file '/etc/passwd', which is not a plain path inside the folder");
  EXPECT_EQ(with_map(R"({"a":"part.safetensors","b":"other.safetensors"})"),
            index + ": weight_map 'b' names missing file 'other.safetensors'");
  EXPECT_EQ(with_map(R"({"a":"part.safetensors","b":"part.safetensors","c":"part.safetensors"})"),
            index + ": weight_map puts tensor 'c' in 'part.safetensors', which does not hold it");
  EXPECT_EQ(with_map(R"({"a":"part.safetensors"})"),
            dir +
                "/part.safetensors: tensor 'b' is not mapped to this file by "
                "model.safetensors.index.json");
  EXPECT_EQ(with_map(R"({"a":3})"), index + ": weight_map 'a' is not a string");
  std::ofstream(index) << "[]";
  EXPECT_EQ(user_error([&] { st::Folder::open(dir); }), index + ": index is not a JSON object");
}

// ---- config.json
// ----------------------------------------------------------------------------------

namespace {
const char* kLlamaConfig = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
  "vocab_size":128,"hidden_size":64,"intermediate_size":160,"num_hidden_layers":2,
  "num_attention_heads":8,"num_key_value_heads":2,"max_position_embeddings":256,
  "rms_norm_eps":1e-5,"rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16"})";

std::string with(const std::string& base, const std::string& extra) {
  auto j = nlohmann::json::parse(base);
  j.update(nlohmann::json::parse(extra));
  return j.dump();
}
std::string config_error(const std::string& text) {
  return user_error([&] { io::parse_hf_config(text, "m/config.json"); });
}
}  // namespace

TEST(HfConfig, ReadsTheFourArchitectures) {
  auto llama = io::parse_hf_config(kLlamaConfig, "c");
  EXPECT_EQ(llama.architecture, "LlamaForCausalLM");
  EXPECT_EQ(llama.config.family, "llama");
  EXPECT_EQ(llama.config.num_kv_heads, 2);
  EXPECT_EQ(llama.config.rope_theta, 500000.0);
  EXPECT_EQ(llama.config.norm_eps, 1e-5);
  EXPECT_TRUE(llama.config.tie_word_embeddings);
  EXPECT_FALSE(llama.config.attention_bias);
  EXPECT_EQ(llama.dtype, "bfloat16");
  // rope_parameters (newest transformers) instead of a top-level rope_theta.
  auto j = nlohmann::json::parse(kLlamaConfig);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  EXPECT_EQ(io::parse_hf_config(j.dump(), "c").config.rope_theta, 1e6);

  auto qwen = io::parse_hf_config(with(kLlamaConfig, R"({"architectures":["Qwen2ForCausalLM"],
      "model_type":"qwen2","use_sliding_window":false,"sliding_window":4096,"max_window_layers":21})"),
                                  "c");
  EXPECT_TRUE(qwen.config.attention_bias);
  // Defaults when absent: llama/qwen2 kv heads = heads, mistral 8; explicit null = heads.
  auto m = nlohmann::json::parse(with(kLlamaConfig, R"({"architectures":["MistralForCausalLM"],
      "model_type":"mistral","num_attention_heads":16,"sliding_window":null})"));
  m.erase("num_key_value_heads");
  EXPECT_EQ(io::parse_hf_config(m.dump(), "c").config.num_kv_heads, 8);
  m["num_key_value_heads"] = nullptr;
  EXPECT_EQ(io::parse_hf_config(m.dump(), "c").config.num_kv_heads, 16);
  auto l = nlohmann::json::parse(kLlamaConfig);
  l.erase("num_key_value_heads");
  EXPECT_EQ(io::parse_hf_config(l.dump(), "c").config.num_kv_heads, 8);

  auto gpt2 = io::parse_hf_config(R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2",
      "vocab_size":50257,"n_embd":768,"n_layer":12,"n_head":12,"n_positions":1024,"n_ctx":1024,
      "n_inner":null,"activation_function":"gelu_new","layer_norm_epsilon":1e-5,
      "resid_pdrop":0.1,"scale_attn_weights":true})",
                                  "c");
  EXPECT_EQ(gpt2.config.family, "gpt2");
  EXPECT_EQ(gpt2.config.intermediate_size, 3072);
  EXPECT_EQ(gpt2.config.max_position_embeddings, 1024);
  EXPECT_EQ(gpt2.config.dropout, 0.0);
}

TEST(HfConfig, RefusesWhatTheModelCannotHonour) {
  const std::string p = "m/config.json: ";
  EXPECT_EQ(
      config_error(with(kLlamaConfig, R"({"rope_scaling":{"rope_type":"llama3","factor":8.0}})")),
      p + "rope_scaling asks for 'llama3' RoPE scaling, which ShardTune does not implement "
          "(plain RoPE only); a scaled model would silently compute something else");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"rope_scaling":{"type":"linear","factor":2.0}})")),
            p + "rope_scaling asks for 'linear' RoPE scaling, which ShardTune does not implement "
                "(plain RoPE only); a scaled model would silently compute something else");
  EXPECT_EQ(config_error(
                with(kLlamaConfig, R"({"rope_parameters":{"rope_type":"yarn","rope_theta":1.0}})")),
            p + "rope_parameters asks for 'yarn' RoPE scaling, which ShardTune does not implement "
                "(plain RoPE only); a scaled model would silently compute something else");
  EXPECT_EQ(config_error(
                with(kLlamaConfig, R"({"rope_parameters":{"rope_type":"default","factor":2.0}})")),
            p + "rope_parameters.factor is not supported (plain RoPE only), got 2.0");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"rope_parameters":{"rope_theta":10000.0}})")),
            p + "rope_parameters.rope_theta differs from the top-level rope_theta");
  // MistralConfig's default window (4096) applies when the key is absent.
  EXPECT_EQ(config_error(with(kLlamaConfig,
                              R"({"architectures":["MistralForCausalLM"],"model_type":"mistral",
      "max_position_embeddings":8192})")),
            p + "sliding_window=4096 is shorter than max_position_embeddings=8192: sliding-window "
                "attention is not implemented (set max_position_embeddings <= sliding_window in a "
                "copy of config.json to train on sequences the window cannot affect)");
  EXPECT_EQ(
      config_error(with(
          kLlamaConfig,
          R"({"architectures":["MistralForCausalLM"],"model_type":"mistral","sliding_window":128})")),
      p + "sliding_window=128 is shorter than max_position_embeddings=256: sliding-window "
          "attention is not implemented (set max_position_embeddings <= sliding_window in a "
          "copy of config.json to train on sequences the window cannot affect)");
  EXPECT_EQ(
      config_error(with(
          kLlamaConfig,
          R"({"architectures":["MistralForCausalLM"],"model_type":"mistral","sliding_window":256})")),
      "(no error)");
  EXPECT_EQ(
      config_error(with(kLlamaConfig, R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2",
      "use_sliding_window":true,"sliding_window":64,"max_window_layers":1})")),
      p + "use_sliding_window=true with sliding_window=64 < max_position_embeddings=256 on "
          "layers 1..1: sliding-window attention is not implemented");
  EXPECT_EQ(
      config_error(with(kLlamaConfig, R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2",
      "use_sliding_window":true,"sliding_window":64,"max_window_layers":2})")),
      "(no error)");  // no layer at or past max_window_layers uses the window
  EXPECT_EQ(
      config_error(with(kLlamaConfig, R"({"layer_types":["full_attention","sliding_attention"]})")),
      p + "layer_types names \"sliding_attention\": only full_attention is implemented");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"head_dim":16})")),
            p + "head_dim=16 differs from hidden_size / num_attention_heads = 8 (ShardTune's "
                "attention uses hidden_size / heads)");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"hidden_act":"gelu"})")),
            p + "hidden_act='gelu' is not supported (the llama family uses silu)");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"attention_bias":true})")),
            p + "attention_bias=true is not supported (biases on q/k/v and o_proj; ShardTune's "
                "llama family has q/k/v biases only, as Qwen2)");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"mlp_bias":true})")),
            p + "mlp_bias=true is not supported (MLP without biases)");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"quantization_config":{"quant_method":"gptq"}})")),
            p + "quantization_config is present: quantized weights are not supported");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"partial_rotary_factor":0.5})")),
            p + "partial_rotary_factor must be 1 (RoPE on the whole head), got 0.5");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"num_key_value_heads":3})")),
            p + "num_key_value_heads=3 must divide num_attention_heads=8");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"hidden_size":0})")),
            p + "hidden_size must be a positive integer below 2^31, got 0");
  EXPECT_EQ(config_error(with(kLlamaConfig, R"({"rms_norm_eps":"small"})")),
            p + "rms_norm_eps must be a positive number, got \"small\"");
  auto missing = nlohmann::json::parse(kLlamaConfig);
  missing.erase("intermediate_size");
  EXPECT_EQ(config_error(missing.dump()),
            p + "intermediate_size is missing (config.json must give the model's size)");
  EXPECT_EQ(
      config_error(with(kLlamaConfig, R"({"architectures":["LlamaForSequenceClassification"]})")),
      p + "architectures ['LlamaForSequenceClassification'] with model_type 'llama' is not "
          "supported (supported: LlamaForCausalLM/llama, Qwen2ForCausalLM/qwen2, "
          "MistralForCausalLM/mistral, GPT2LMHeadModel/gpt2)");
  EXPECT_EQ(config_error(R"({"model_type":"falcon"})"),
            p + "model_type 'falcon' is not supported (supported: LlamaForCausalLM/llama, "
                "Qwen2ForCausalLM/qwen2, MistralForCausalLM/mistral, GPT2LMHeadModel/gpt2)");
  EXPECT_EQ(config_error(R"({"vocab_size":3})"),
            p + "neither model_type nor architectures is given");
  EXPECT_EQ(config_error(R"({"model_type":"llama","model_type":"gpt2"})"),
            p + "the key \"model_type\" appears twice in one object");
  EXPECT_EQ(config_error("[1]"), p + "not a JSON object");

  const std::string gpt2 =
      R"({"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"n_positions":16})";
  EXPECT_EQ(config_error(with(gpt2, R"({"activation_function":"gelu"})")),
            p + "activation_function='gelu' is not supported (ShardTune's GPT-2 uses the tanh "
                "GELU: gelu_new, gelu_pytorch_tanh or gelu_fast)");
  EXPECT_EQ(config_error(with(gpt2, R"({"scale_attn_by_inverse_layer_idx":true})")),
            p + "scale_attn_by_inverse_layer_idx=true is not supported");
  EXPECT_EQ(config_error(with(gpt2, R"({"tie_word_embeddings":false})")),
            p + "tie_word_embeddings=false is not supported for GPT-2 (the LM head is wte)");
  EXPECT_EQ(config_error(with(gpt2, R"({"add_cross_attention":true})")),
            p + "add_cross_attention=true is not supported");
  EXPECT_EQ(config_error(with(gpt2, R"({"n_head":3})")),
            p + "[model] num_heads=3 does not divide hidden_size=8");
}

TEST(HfConfig, ExportRoundTripsAndKeepsOtherKeys) {
  for (const auto& name : kCases) {
    const auto text = read_text(hf_case_dir(name) + "/config.json");
    const auto hf = io::parse_hf_config(text, name);
    const auto fresh =
        io::parse_hf_config(io::hf_config_json(hf.config, hf.model_type, "float32"), name);
    EXPECT_EQ(fresh.config, hf.config) << name;
    EXPECT_EQ(fresh.architecture, hf.architecture) << name;
    const auto kept =
        io::parse_hf_config(io::hf_config_json(hf.config, hf.model_type, "float32", text), name);
    EXPECT_EQ(kept.config, hf.config) << name;
  }
  auto hf =
      io::parse_hf_config(with(kLlamaConfig, R"({"bos_token_id":1,"eos_token_id":[2,3]})"), "c");
  auto j = nlohmann::json::parse(io::hf_config_json(
      hf.config, "", "bfloat16", with(kLlamaConfig, R"({"bos_token_id":1,"eos_token_id":[2,3]})")));
  EXPECT_EQ(j["eos_token_id"], nlohmann::json::parse("[2,3]"));
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(io::hf_model_type_for(hf.config), "llama");
  EXPECT_THROW(io::hf_model_type_for(hf.config, "qwen2"), std::invalid_argument);
}

// ---- weights against the independent reference
// ---------------------------------------------------

class HfReference : public ::testing::TestWithParam<std::string> {};

TEST(HfReferenceCases, CaseListMatchesTheScript) {
  auto names = hf_cases();
  EXPECT_EQ(names, kCases);
}

TEST_P(HfReference, ParametersLogitsAndLossMatchAtTp1) {
  hf_cases();
  const auto dir = hf_case_dir(GetParam());
  io::HfLoadReport report;
  auto model = io::load_hf_model(dir, {}, &report);
  const auto e = read_expected(dir);

  // Every parameter bit for bit: the reference converted the layout on its own (transposes, names).
  auto params = st::File::open(dir + "/params.safetensors");
  auto mine = model->named_parameters();
  EXPECT_EQ(static_cast<size_t>(report.tensors), params->tensors().size());
  for (const auto& info : params->tensors()) {
    ASSERT_NE(mine.find(info.name), nullptr) << info.name;
    EXPECT_TRUE(torch::equal(mine[info.name].detach(), read_tensor(*params, info.name)))
        << info.name;
  }

  auto logits = logits_of(*model, e);
  const auto err = logit_error(logits, e.logits, e.attention_mask);
  EXPECT_TRUE(err.ok()) << GetParam() << ": max logit error " << err.error << " (scale "
                        << err.scale << ")";
  std::ostringstream record;
  record << std::scientific << err.error / err.scale;
  RecordProperty("max_logit_error_relative", record.str());
  auto loss = core::causal_lm_loss(logits, e.labels);
  const double mean = loss.sum.item<double>() / static_cast<double>(loss.tokens);
  record.str("");
  record << std::scientific << mean - e.loss;
  RecordProperty("loss_error", record.str());
  EXPECT_NEAR(mean, e.loss, kHfRel * std::max(1.0, std::abs(e.loss))) << GetParam();
  EXPECT_EQ(loss.tokens,
            (e.labels.narrow(1, 1, e.labels.size(1) - 1) != -100).sum().item<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(Cases, HfReference, ::testing::ValuesIn(kCases));

// The comparison above is strict enough to see the two classic import mistakes.
TEST(HfReferenceCases, NonTransposedConv1DIsDetected) {
  const auto dir = hf_case_dir("gpt2_hub");
  hf_cases();
  auto model = io::load_hf_model(dir);
  const auto e = read_expected(dir);
  ASSERT_TRUE(logit_error(logits_of(*model, e), e.logits, e.attention_mask).ok());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key().find("attn.c_proj.weight") != std::string::npos)
        p.value().copy_(p.value().t().clone());
    }
  }
  const auto err = logit_error(logits_of(*model, e), e.logits, e.attention_mask);
  EXPECT_GT(err.error, 100 * kHfRel * err.scale) << "a square Conv1D weight left untransposed";
}

TEST(HfReferenceCases, MetaRotaryLayoutIsDetected) {
  // q/k rows in Meta's interleaved-pair order instead of HF's half split: the same weights seen
  // with the other rotary convention. Without RoPE the scores would not change at all.
  const auto dir = hf_case_dir("llama_mha_untied");
  hf_cases();
  auto model = io::load_hf_model(dir);
  const auto e = read_expected(dir);
  const int64_t d = model->config().head_dim(), h = model->config().num_heads;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      const auto& n = p.key();
      if (n.find("q_proj.weight") == std::string::npos &&
          n.find("k_proj.weight") == std::string::npos)
        continue;
      auto w = p.value();
      auto meta = w.view({h, 2, d / 2, -1}).transpose(1, 2).reshape(w.sizes());
      w.copy_(meta.clone());
    }
  }
  const auto err = logit_error(logits_of(*model, e), e.logits, e.attention_mask);
  EXPECT_GT(err.error, 100 * kHfRel * err.scale) << "rotary convention mismatch";
}

// ---- weight-loading errors
// -------------------------------------------------------------------------

class HfWeightErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    hf_cases();
    src_ = hf_case_dir("llama_mha_untied");
    dir_ = hf_temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::copy_file(src_ + "/config.json", dir_ + "/config.json");
    tensors_ = all_tensors(*st::File::open(src_ + "/model.safetensors"));
  }
  std::string load_error() {
    write_model_file(dir_, tensors_);
    return user_error([&] { io::load_hf_model(dir_); });
  }
  std::string src_, dir_;
  std::map<std::string, torch::Tensor> tensors_;
};

TEST_F(HfWeightErrors, MissingTensor) {
  tensors_.erase("model.layers.1.mlp.up_proj.weight");
  EXPECT_EQ(load_error(), dir_ +
                              ": tensor 'model.layers.1.mlp.up_proj.weight' is missing (the model "
                              "config.json describes needs it)");
}

TEST_F(HfWeightErrors, MissingUntiedHead) {
  tensors_.erase("lm_head.weight");
  EXPECT_EQ(load_error(), dir_ +
                              ": tensor 'lm_head.weight' is missing (config.json "
                              "tie_word_embeddings=false needs it)");
}

TEST_F(HfWeightErrors, UnexpectedTensors) {
  tensors_["model.layers.0.self_attn.q_proj.bias"] = torch::zeros({32});
  tensors_["extra.weight"] = torch::zeros({2});
  EXPECT_EQ(load_error(), dir_ +
                              ": unexpected tensor 'extra.weight' and 1 more (not a parameter of "
                              "the model config.json describes)");
}

TEST_F(HfWeightErrors, WrongShape) {
  tensors_["model.layers.0.mlp.down_proj.weight"] = torch::zeros({64, 32});
  EXPECT_EQ(load_error(), dir_ +
                              "/model.safetensors: tensor 'model.layers.0.mlp.down_proj.weight' "
                              "has shape [64, 32], expected [32, 64] for the sizes in config.json");
}

TEST_F(HfWeightErrors, WrongDtype) {
  tensors_["model.norm.weight"] = torch::ones({32}, torch::kLong);
  EXPECT_EQ(load_error(), dir_ +
                              "/model.safetensors: tensor 'model.norm.weight' has dtype I64; "
                              "expected a floating dtype (F32, BF16, F16 or F64)");
}

TEST_F(HfWeightErrors, TiedHeadMustEqualTheEmbedding) {
  auto config = nlohmann::json::parse(read_text(src_ + "/config.json"));
  config["tie_word_embeddings"] = true;
  std::ofstream(dir_ + "/config.json") << config.dump();
  tensors_["lm_head.weight"] = tensors_["model.embed_tokens.weight"].clone();
  EXPECT_EQ(load_error(), "(no error)");  // an identical copy is only redundant
  tensors_["lm_head.weight"] = tensors_["model.embed_tokens.weight"] + 1;
  EXPECT_EQ(load_error(), dir_ +
                              "/model.safetensors: tensor 'lm_head.weight' differs from the "
                              "embedding 'model.embed_tokens.weight' although config.json ties "
                              "them (tie_word_embeddings); which is meant?");
}

TEST(HfWeightErrorsGpt2, PrefixedAndBareNamesTogether) {
  hf_cases();
  const auto dir = hf_temp_dir("gpt2_both");
  fs::copy_file(hf_case_dir("gpt2_hub") + "/config.json", dir + "/config.json");
  auto tensors = all_tensors(*st::File::open(hf_case_dir("gpt2_hub") + "/model.safetensors"));
  tensors["transformer.ln_f.bias"] = tensors["ln_f.bias"];
  write_model_file(dir, tensors);
  EXPECT_EQ(user_error([&] { io::load_hf_model(dir); }),
            dir +
                ": tensors 'transformer.ln_f.bias' and 'ln_f.bias' are both present; they name "
                "the same parameter");
}

TEST(HfWeightErrorsConfig, RopeScalingFolderIsRefusedBeforeAnyWeight) {
  hf_cases();
  const auto dir = hf_temp_dir("rope_scaling");
  auto config = nlohmann::json::parse(read_text(hf_case_dir("llama_mha_untied") + "/config.json"));
  config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  std::ofstream(dir + "/config.json") << config.dump();
  EXPECT_EQ(
      user_error([&] { io::load_hf_model(dir); }),
      dir +
          "/config.json: rope_scaling asks for 'llama3' RoPE scaling, which ShardTune does "
          "not implement (plain RoPE only); a scaled model would silently compute something else");
}

// ---- export
// ----------------------------------------------------------------------------------------

class HfExport : public ::testing::TestWithParam<std::string> {};

TEST_P(HfExport, ExportThenImportGivesIdenticalLogitsAndTheReferenceAgrees) {
  hf_cases();
  const auto src = hf_case_dir(GetParam());
  auto model = io::load_hf_model(src);
  const auto e = read_expected(src);
  const auto before = logits_of(*model, e);
  const auto out = hf_temp_dir("export_" + GetParam());
  const auto tokenizer = hf_temp_dir("tokenizer_" + GetParam());
  std::ofstream(tokenizer + "/tokenizer.json") << R"({"model":{"type":"BPE"}})";
  io::HfExportOptions options;
  options.source_dir = src;
  options.tokenizer_dir = tokenizer;
  options.max_shard_bytes = 40'000;  // several shards for every case
  const auto files = io::export_hf(*model, out, /*writer=*/true, options);
  EXPECT_TRUE(std::find(files.begin(), files.end(), "tokenizer.json") != files.end());
  EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));

  auto again = io::load_hf_model(out);
  EXPECT_TRUE(torch::equal(logits_of(*again, e), before)) << "export then import";
  EXPECT_EQ(io::read_hf_config(out).config, model->config());
  const auto logits = write_logits(out + "/shardtune_logits.safetensors", before);
  expect_reference_check("check-hf " + out + " --batch " + src + "/expected.safetensors --logits " +
                         logits);
}

INSTANTIATE_TEST_SUITE_P(Cases, HfExport, ::testing::ValuesIn(kCases));

TEST(HfExportDtype, Bf16ExportRoundsOnce) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("mistral_mqa"));
  const auto out = hf_temp_dir("export_bf16");
  io::HfExportOptions options;
  options.dtype = "bfloat16";
  io::export_hf(*model, out, true, options);
  auto folder = st::Folder::open(out);
  for (const auto& name : folder.names())
    EXPECT_EQ(folder.find(name)->dtype, st::Dtype::kBF16) << name;
  EXPECT_EQ(io::read_hf_config(out).dtype, "bfloat16");
  auto again = io::load_hf_model(out);
  auto a = again->named_parameters();
  for (auto& p : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(a[p.key()], p.value().to(torch::kBFloat16).to(torch::kFloat)))
        << p.key();
  }
}

// ---- PEFT
// ------------------------------------------------------------------------------------------

namespace {
// Gives every LoRA B (zero at initialisation) and every prefix a visible value, the same at every
// TP size (full tensors from named streams, each rank keeps its slice).
void randomise_added(core::CausalLMImpl& model, double std) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters();
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (name.find(".lora.B") == std::string::npos) continue;
    auto p = params[name];
    core::assign_from_full(p, core::named_normal(spec.global_shape, std, 99, name), spec);
  }
}

void expect_peft_matches(core::CausalLMImpl& model, const std::string& case_name,
                         const std::string& adapter_dir) {
  const auto src = hf_case_dir(case_name);
  const auto e = read_expected(src);
  const auto logits =
      write_logits(adapter_dir + "/shardtune_logits.safetensors", logits_of(model, e));
  expect_reference_check("check-peft --base " + src + " --adapter " + adapter_dir + " --batch " +
                         src + "/expected.safetensors --logits " + logits);
}

nlohmann::json adapter_config(const std::string& dir) {
  return nlohmann::json::parse(read_text(dir + "/adapter_config.json"));
}
}  // namespace

TEST(PeftExport, LoraOnLlamaLoadsAsPeftDoes) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("llama_mha_untied"));
  strategies::LoraStrategy lora({{"r", "4"}, {"alpha", "8"}, {"dropout", "0"}});
  lora.apply(*model);
  randomise_added(*model, 0.3);
  const auto out = hf_temp_dir("peft_lora_llama");
  io::PeftLoraSettings s{lora.adapted(), 4, 8.0, false, 0.0, hf_case_dir("llama_mha_untied")};
  io::export_peft_lora(*model, s, out, true);
  const auto c = adapter_config(out);
  EXPECT_EQ(c["peft_type"], "LORA");
  EXPECT_EQ(c["r"], 4);
  EXPECT_EQ(c["lora_alpha"], 8);
  EXPECT_EQ(c["target_modules"], nlohmann::json::parse(R"(["q_proj","v_proj"])"));
  EXPECT_EQ(c["fan_in_fan_out"], false);
  auto file = st::File::open(out + "/adapter_model.safetensors");
  EXPECT_EQ(file->at("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight").shape,
            (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(file->at("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight").shape,
            (std::vector<int64_t>{32, 4}));
  EXPECT_EQ(file->tensors().size(), 8u);
  expect_peft_matches(*model, "llama_mha_untied", out);
}

TEST(PeftExport, RsLoraOnAllQwen2LinearsLoadsAsPeftDoes) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("qwen2_gqa_bias_f16"));
  strategies::LoraStrategy lora(
      {{"r", "3"}, {"alpha", "5"}, {"rslora", "true"}, {"target_modules", "all-linear"}});
  lora.apply(*model);
  randomise_added(*model, 0.3);
  const auto out = hf_temp_dir("peft_rslora_qwen2");
  io::export_peft_lora(*model, {lora.adapted(), 3, 5.0, true, 0.05, "Qwen/x"}, out, true);
  const auto c = adapter_config(out);
  EXPECT_EQ(c["use_rslora"], true);
  EXPECT_EQ(c["target_modules"],
            nlohmann::json::parse(
                R"(["down_proj","gate_proj","k_proj","o_proj","q_proj","up_proj","v_proj"])"));
  EXPECT_EQ(c["base_model_name_or_path"], "Qwen/x");
  expect_peft_matches(*model, "qwen2_gqa_bias_f16", out);
}

TEST(PeftExport, LoraOnGpt2Conv1DLoadsAsPeftDoes) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("gpt2_hub"));
  strategies::LoraStrategy lora(
      {{"r", "2"}, {"alpha", "3"}, {"target_modules", "c_attn,attn.c_proj"}});
  lora.apply(*model);
  randomise_added(*model, 0.3);
  const auto out = hf_temp_dir("peft_lora_gpt2");
  io::export_peft_lora(*model, {lora.adapted(), 2, 3.0, false, 0.0, "gpt2"}, out, true);
  const auto c = adapter_config(out);
  EXPECT_EQ(c["fan_in_fan_out"], true);
  // "c_proj" would also select mlp.c_proj: the full names are written instead.
  EXPECT_EQ(c["target_modules"][0], "transformer.h.0.attn.c_attn");
  EXPECT_EQ(c["target_modules"].size(), 4u);
  auto file = st::File::open(out + "/adapter_model.safetensors");
  EXPECT_EQ(file->at("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight").shape,
            (std::vector<int64_t>{96, 2}));
  expect_peft_matches(*model, "gpt2_hub", out);
}

TEST(PeftExport, PrefixWithProjectionOnGqaLlamaLoadsAsPeftDoes) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("llama_gqa_tied_sharded_bf16"));
  strategies::PtuningV2Strategy ptuning({{"pre_seq_len", "5"},
                                         {"prefix_projection", "true"},
                                         {"prefix_hidden_size", "16"},
                                         {"init_std", "2.0"},
                                         {"dropout", "0.1"}});
  ptuning.apply(*model);
  const auto out = hf_temp_dir("peft_prefix_llama");
  io::export_peft_prefix(*model, "meta/x", out, true);
  const auto c = adapter_config(out);
  EXPECT_EQ(c["peft_type"], "PREFIX_TUNING");
  EXPECT_EQ(c["num_virtual_tokens"], 5);
  EXPECT_EQ(c["num_attention_heads"], 2);  // key/value heads (grouped-query)
  EXPECT_EQ(c["token_dim"], 16);
  EXPECT_EQ(c["num_layers"], 3);
  EXPECT_EQ(c["prefix_projection"], false);
  EXPECT_EQ(st::File::open(out + "/adapter_model.safetensors")->at("prompt_embeddings").shape,
            (std::vector<int64_t>{5, 3 * 2 * 16}));
  expect_peft_matches(*model, "llama_gqa_tied_sharded_bf16", out);
}

TEST(PeftExport, PrefixOnMqaMistralLoadsAsPeftDoes) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("mistral_mqa"));
  strategies::PtuningV2Strategy ptuning({{"pre_seq_len", "3"}, {"init_std", "1.0"}});
  ptuning.apply(*model);
  const auto out = hf_temp_dir("peft_prefix_mistral");
  io::export_peft_prefix(*model, "mistral/x", out, true);
  expect_peft_matches(*model, "mistral_mqa", out);
}

TEST(PeftExport, Gpt2PrefixIsRefused) {
  hf_cases();
  auto model = io::load_hf_model(hf_case_dir("gpt2_hub"));
  strategies::PtuningV2Strategy ptuning(core::StrategyOptions{{"pre_seq_len", "3"}});
  ptuning.apply(*model);
  EXPECT_EQ(
      user_error(
          [&] { io::export_peft_prefix(*model, "gpt2", hf_temp_dir("peft_gpt2_prefix"), true); }),
      "PEFT export: a GPT-2 prefix cannot be exported for PEFT: PEFT puts the prefix in the KV "
      "cache, which moves GPT-2's learned positions of every real token by the prefix length "
      "and changes the model; export the P-tuning v2 checkpoint instead");
}

TEST(PeftExport, MergedLoraHfExportMatchesTheAdaptedModel) {
  hf_cases();
  const auto src = hf_case_dir("gpt2_saved_sharded");
  auto model = io::load_hf_model(src);
  strategies::LoraStrategy lora({{"r", "4"}, {"target_modules", "all-linear"}});
  lora.apply(*model);
  randomise_added(*model, 0.2);
  const auto e = read_expected(src);
  const auto adapted = logits_of(*model, e);
  lora.merge(*model);
  const auto out = hf_temp_dir("merged_lora_gpt2");
  io::export_hf(*model, out, true, {});
  const auto logits = write_logits(out + "/shardtune_logits.safetensors", adapted);
  expect_reference_check("check-hf " + out + " --batch " + src + "/expected.safetensors --logits " +
                         logits);
  auto again = io::load_hf_model(out);
  const auto err = logit_error(logits_of(*again, e), adapted, e.attention_mask);
  EXPECT_TRUE(err.ok()) << err.error;
}
