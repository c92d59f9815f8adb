// The checkpoint reader's metadata path on hostile files, without LibTorch (io/checkpoint/verify.h
// and the files it uses are compiled into this test): a real checkpoint (the fixture written by
// commit 98fa50c, upgraded to format 3 the way the writer writes it) is edited with the HDF5 C API
// and every edit must give one UserError naming the file and the attribute, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "base/errors.h"
#include "faults/checkpoint_harness.h"
#include "io/checkpoint/verify.h"

using namespace shardtune;
using namespace shardtune::faults;
namespace h5 = shardtune::io::h5;

namespace {

const std::string kFixture =
    std::string(SHARDTUNE_SOURCE_DIR) + "/tests/fixtures/ckpt-98fa50c-tp2-step3.h5";
const char* kEmbed = "/model/model.embed_tokens.weight";  // split in 2 pieces on dim 0

// A copy of the fixture upgraded to format 3 (run id, data fingerprint, metadata checksum).
std::string format3_copy(const std::string& name) {
  const std::string dir = scratch_dir("reader_" + name);
  const std::string file = dir + "/step-00000003.h5";
  fs::copy_file(kFixture, file);
  set_ints(file, "/", "format_version", {3});
  set_string(file, "/", "run_id", "0123456789abcdef0123456789abcdef");
  set_string(file, "/", "data_fingerprint", "00112233aabbccdd");
  reseal(file);
  return file;
}

// open_checkpoint must throw one UserError containing `text`.
void expect_refused(const std::string& file, const std::string& text) {
  try {
    io::open_checkpoint(file);
    ADD_FAILURE() << "accepted; expected an error containing: " << text;
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(text), std::string::npos) << what;
    EXPECT_NE(what.find(file), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

}  // namespace

TEST(CheckpointReader, TheUpgradedFixtureIsAccepted) {
  const auto ck = io::open_checkpoint(format3_copy("ok"));
  EXPECT_EQ(ck.info.format_version, 3);
  EXPECT_EQ(ck.info.step, 3);
  EXPECT_EQ(ck.datasets.size(), 35u);
  // The format-2 original still reads (no metadata checksum in that format).
  EXPECT_EQ(io::open_checkpoint(kFixture).info.format_version, 2);
}

TEST(CheckpointReader, AttributesOfTheWrongShapeTypeOrSize) {
  auto f = format3_copy("array");
  set_ints(f, "/", "step", std::vector<int64_t>(64, 7), false);
  expect_refused(f, "attribute 'step' must hold one value, it holds 64");
  f = format3_copy("string_step");
  set_string(f, "/", "step", "3");
  expect_refused(f, "attribute 'step' is not an integer");
  f = format3_copy("int_strategy");
  set_ints(f, "/", "strategy", {1});
  expect_refused(f, "attribute 'strategy' is not a string");
  f = format3_copy("vlen");
  set_string(f, "/", "tokenizer", "byte-v1", true);
  expect_refused(f, "attribute 'tokenizer' is a variable-length string");
  // Sizes are checked against the reader's limit before any buffer is sized (HDF5's own format
  // keeps attributes of these files under 64 KiB, so the limit is shown with a small one).
  f = format3_copy("long");
  {
    H5File h(f);
    try {
      h5::read_string_attr(h.id(), "model_config", f, 16);
      ADD_FAILURE() << "a long string was read into 16 bytes";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("attribute 'model_config' has"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("(at most 16 expected)"), std::string::npos);
    }
  }
  // An integer whose bits do not fill its bytes (3 bits at offset 61 of 8 bytes): libhdf5 1.10's
  // conversion of such types crashed on fuzzed files, so the reader refuses it before reading.
  f = format3_copy("odd_precision");
  {
    const hid_t odd = H5Tcopy(H5T_STD_I64LE);
    ASSERT_GE(H5Tset_precision(odd, 3), 0);
    ASSERT_GE(H5Tset_offset(odd, 61), 0);
    set_ints(f, "/", "step", {3}, true, odd);
    EXPECT_FALSE(h5::plain_number(odd));
    EXPECT_EQ(h5::type_name(odd), "other");
    H5Tclose(odd);
  }
  expect_refused(f, "attribute 'step' is not a plain integer");
  EXPECT_EQ(h5::type_name(H5T_IEEE_F32LE), "float32");
  EXPECT_EQ(h5::type_name(H5T_STD_U8BE), "uint8");
  f = format3_copy("version");
  set_ints(f, "/", "format_version", {99});
  expect_refused(f, "format version 99 is not supported");
}

TEST(CheckpointReader, ValuesOutOfRangeEvenWhenResealed) {
  struct Edit {
    const char* name;
    int64_t value;
    const char* text;
  };
  for (const Edit& e : {Edit{"step", -1, "step=-1 is out of range"},
                        Edit{"consumed_samples", -4, "consumed_samples=-4 is out of range"},
                        Edit{"optimizer_step", int64_t{1} << 62, "optimizer_step=4611686018427387904"},
                        Edit{"tp", 0, "tp=0 is out of range"},
                        Edit{"world", 3, "world=3 is not tp x dp"},
                        Edit{"zero", 7, "zero=7 is neither 0 nor 1"}}) {
    SCOPED_TRACE(e.name);
    const auto f = format3_copy(std::string("range_") + e.name);
    set_ints(f, "/", e.name, {e.value});
    reseal(f);
    expect_refused(f, e.text);
  }
  const auto f = format3_copy("run_id");
  set_string(f, "/", "run_id", "abc\nshardtune: error: forged");
  reseal(f);
  expect_refused(f, "run_id 'abc\\x0ashardtune: error: forged' is malformed");
}

TEST(CheckpointReader, PieceAttributesAndChecksums) {
  auto f = format3_copy("chunk");
  set_ints(f, kEmbed, "shard_chunk", {int64_t{1} << 40});
  reseal(f);
  expect_refused(f, "invalid sharding description");
  f = format3_copy("chunk0");
  set_ints(f, kEmbed, "shard_chunk", {0});
  reseal(f);
  expect_refused(f, "shard_chunk=0");
  f = format3_copy("parts");
  set_ints(f, kEmbed, "shard_parts", {-2});
  reseal(f);
  expect_refused(f, "shard_parts=-2");
  f = format3_copy("count");
  set_ints(f, kEmbed, "checksums", {1, 2, 3}, false, H5T_STD_U64LE);
  reseal(f);
  expect_refused(f, "has 3 checksums for 2 pieces");
  f = format3_copy("no_sums");
  delete_attr(f, kEmbed, "checksums");
  reseal(f);
  expect_refused(f, "attribute 'checksums' is missing");
  f = format3_copy("no_meta");
  delete_attr(f, "/", io::kMetadataChecksum);
  expect_refused(f, "attribute 'metadata_checksum' is missing");
  f = format3_copy("edited");
  set_ints(f, "/", "step", {2});
  expect_refused(f, "metadata checksum mismatch");
  f = format3_copy("edited_sum");
  set_ints(f, kEmbed, "checksums", {1, 2}, false, H5T_STD_U64LE);
  expect_refused(f, "metadata checksum mismatch");
}

TEST(CheckpointReader, LinksOutOfTheFileAreRefused) {
  auto f = format3_copy("soft");
  {
    H5File h(f);
    H5Lcreate_soft("/model/model.norm.weight", h.id(), "/model/alias", H5P_DEFAULT, H5P_DEFAULT);
  }
  expect_refused(f, "/model/alias is a soft or external link");
  f = format3_copy("external");
  {
    H5File h(f);
    H5Lcreate_external(kFixture.c_str(), "/model/model.norm.weight", h.id(), "/model/ext",
                       H5P_DEFAULT, H5P_DEFAULT);
  }
  expect_refused(f, "/model/ext is a soft or external link");
}

TEST(CheckpointReader, NotACheckpoint) {
  const std::string dir = scratch_dir("reader_junk");
  write_file(dir + "/junk.h5", std::string(4096, 'j'));
  expect_refused(dir + "/junk.h5", "not a readable HDF5 checkpoint");
  const auto f = format3_copy("truncated");
  fs::resize_file(f, fs::file_size(f) / 2);
  expect_refused(f, "not a readable HDF5 checkpoint");
}
