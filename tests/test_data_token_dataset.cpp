// Token datasets (io/token_dataset.h) on 1, 2 and 3 ranks (label mpi): a collective write of each
// rank's documents read back as the concatenation in rank order (uint16 and uint32 ids, a rank
// without documents, truncation on read), one rank's bad document failing every rank with its
// message, and every kind of damaged file refused with its exact error.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "io/data.h"
#include "io/jsonl.h"
#include "io/preprocess.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "mpi_test_main.h"
#include "base/errors.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

namespace fs = std::filesystem;

parallel::Communicator& world() { return *mpi_runtime().world(); }

// A directory shared by the ranks: rank 0 creates it empty.
std::string shared_dir(const std::string& name) {
  const auto dir = fs::path(SHARDTUNE_BINARY_DIR) / "test-tmp" /
                   (name + "-np" + std::to_string(world().size()));
  if (world().rank() == 0) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  world().barrier();
  return dir.string();
}

// Rank r's documents: r + 1 of them (none on rank 1 when `gap`), lengths and ids from (r, d).
std::vector<core::Example> docs_of(int rank, int64_t vocab, bool gap) {
  std::vector<core::Example> docs;
  if (gap && rank == 1) return docs;
  for (int d = 0; d <= rank; ++d) {
    core::Example e;
    const int64_t len = 3 + 5 * d + rank;
    for (int64_t i = 0; i < len; ++i) {
      const int64_t id = (rank * 7919 + d * 104729 + i * 31337) % vocab;
      e.tokens.push_back(id);
      e.labels.push_back((i + d) % 3 == 0 ? core::kIgnoreIndex : id);
    }
    docs.push_back(std::move(e));
  }
  return docs;
}

io::TokenDatasetInfo vocab(int64_t size) {
  io::TokenDatasetInfo info;
  info.vocab_size = size;
  return info;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no UserError)";
}

void expect_round_trip(int64_t vocab, bool gap, const std::string& type) {
  const std::string dir = shared_dir("round-trip-" + type + (gap ? "-gap" : ""));
  const std::string path = dir + "/tokens.h5";
  io::TokenDatasetInfo info;
  info.vocab_size = vocab;
  info.tokenizer = "test-v1:abc";
  info.chat_template = "chatml";
  info.train_on_prompt = true;
  info.source = "data/train.jsonl";
  const auto written =
      io::write_token_dataset(path, info, docs_of(world().rank(), vocab, gap), world());
  std::vector<core::Example> all;
  for (int r = 0; r < world().size(); ++r) {
    for (auto& d : docs_of(r, vocab, gap)) all.push_back(std::move(d));
  }
  int64_t tokens = 0;
  for (const auto& d : all) tokens += static_cast<int64_t>(d.tokens.size());
  EXPECT_EQ(written.documents, static_cast<int64_t>(all.size()));
  EXPECT_EQ(written.tokens, tokens);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  const io::TokenDataset back = io::read_token_dataset(path);
  EXPECT_EQ(back.info.vocab_size, vocab);
  EXPECT_EQ(back.info.tokenizer, "test-v1:abc");
  EXPECT_EQ(back.info.chat_template, "chatml");
  EXPECT_TRUE(back.info.train_on_prompt);
  EXPECT_EQ(back.info.source, "data/train.jsonl");
  EXPECT_EQ(back.info.token_type, type);
  EXPECT_EQ(back.info.documents, static_cast<int64_t>(all.size()));
  EXPECT_EQ(back.info.tokens, tokens);
  ASSERT_EQ(back.documents.size(), all.size());
  for (size_t d = 0; d < all.size(); ++d) {
    EXPECT_EQ(back.documents[d].tokens, all[d].tokens) << "document " << d;
    EXPECT_EQ(back.documents[d].labels, all[d].labels) << "document " << d;
  }
  // Cut on read, as training cuts JSONL examples to seq_len.
  const io::TokenDataset cut = io::read_token_dataset(path, 4);
  for (size_t d = 0; d < all.size(); ++d) {
    const size_t n = std::min<size_t>(4, all[d].tokens.size());
    EXPECT_EQ(cut.documents[d].tokens,
              std::vector<int64_t>(all[d].tokens.begin(), all[d].tokens.begin() + n));
    EXPECT_EQ(cut.documents[d].labels,
              std::vector<int64_t>(all[d].labels.begin(), all[d].labels.begin() + n));
  }
  world().barrier();
}

}  // namespace

TEST(TokenDatasetMpi, RoundTripUint16) { expect_round_trip(259, false, "uint16"); }
TEST(TokenDatasetMpi, RoundTripUint32) { expect_round_trip(151669, false, "uint32"); }
TEST(TokenDatasetMpi, RoundTripWithARankWithoutDocuments) {
  expect_round_trip(65536, true, "uint16");
}

TEST(TokenDatasetMpi, OneBadDocumentFailsEveryRank) {
  const std::string dir = shared_dir("bad-doc");
  auto docs = docs_of(world().rank(), 259, false);
  const int bad_rank = world().size() - 1;
  if (world().rank() == bad_rank) docs.back().tokens[1] = 300;
  const std::string msg = error_of([&] {
    io::write_token_dataset(dir + "/t.h5", vocab(259), docs, world());
  });
  if (world().rank() == bad_rank) {
    EXPECT_EQ(msg, dir + "/t.h5: rank " + std::to_string(bad_rank) + ": document " +
                       std::to_string(bad_rank) + " of this rank: id 300 at position 1 is outside "
                       "the vocabulary [0, 259)");
  } else {
    EXPECT_EQ(msg, dir + "/t.h5: a document on another rank cannot be written");
  }
  EXPECT_FALSE(fs::exists(dir + "/t.h5"));
}

// ---- damaged files (each rank in its own folder, serially) --------------------------------------

namespace {

class DamagedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fs::path(SHARDTUNE_BINARY_DIR) / "test-tmp" /
           ("damaged-" + std::to_string(world().size()) + "-" + std::to_string(world().rank()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "t.h5").string();
    parallel::LocalCommunicator one;
    io::write_token_dataset(path_, vocab(259), docs_of(2, 259, false), one);
  }
  // Opens the file for writing and runs `edit` on it.
  void edit(const std::function<void(hid_t)>& fn) {
    const hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    fn(f);
    H5Fclose(f);
  }
  static void set_int_attr(hid_t f, const char* name, int64_t v) {
    const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
  }
  static void set_int_attr_new(hid_t f, const char* name, int64_t v) {
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(s);
  }
  static void set_string_attr(hid_t f, const char* name, const std::string& v) {
    H5Adelete(f, name);
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, v.size());
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, v.data());
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
  }
  template <typename T>
  static void set_element(hid_t f, const char* dataset, hid_t mem_type, hsize_t at, T value) {
    const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    const hid_t fs_ = H5Dget_space(d);
    hsize_t one = 1;
    H5Sselect_hyperslab(fs_, H5S_SELECT_SET, &at, nullptr, &one, nullptr);
    const hid_t ms = H5Screate_simple(1, &one, nullptr);
    H5Dwrite(d, mem_type, ms, fs_, H5P_DEFAULT, &value);
    H5Sclose(ms);
    H5Sclose(fs_);
    H5Dclose(d);
  }
  std::string read_error() {
    return error_of([&] { io::read_token_dataset(path_); });
  }
  fs::path dir_;
  std::string path_;
};

}  // namespace

TEST_F(DamagedFiles, EachIsRefusedWithItsReason) {
  ASSERT_EQ(io::read_token_dataset(path_).documents.size(), 3u);  // documents of 5, 10, 15 tokens
  edit([](hid_t f) { set_string_attr(f, "format", "something-else"); });
  EXPECT_EQ(read_error(), path_ + ": format is 'something-else', not 'shardtune-token-dataset'");
  SetUp();
  edit([](hid_t f) { set_int_attr(f, "format_version", 99); });
  EXPECT_EQ(read_error(), path_ + ": format_version 99 is not supported (this build reads "
                                  "version 1)");
  SetUp();
  edit([](hid_t f) { H5Adelete(f, "vocab_size"); });
  EXPECT_EQ(read_error(), path_ + ": attribute 'vocab_size' is missing");
  // Attributes of the wrong shape or size are refused before anything is read (issue 13's class
  // of bug: a 64-element attribute read into a one-element buffer).
  SetUp();
  edit([](hid_t f) {
    H5Adelete(f, "documents");
    hsize_t n = 64;
    const hid_t s = H5Screate_simple(1, &n, nullptr);
    const hid_t a = H5Acreate2(f, "documents", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int64_t> values(64, 3);
    H5Awrite(a, H5T_NATIVE_INT64, values.data());
    H5Aclose(a);
    H5Sclose(s);
  });
  EXPECT_EQ(read_error(), path_ + ": attribute 'documents' must hold one value, it holds 64");
  SetUp();
  edit([](hid_t f) { set_string_attr(f, "tokenizer", std::string(4097, 'x')); });
  EXPECT_EQ(read_error(), path_ + ": attribute 'tokenizer' has 4097-byte elements (at most 4096 "
                                  "expected)");
  SetUp();
  edit([](hid_t f) { H5Adelete(f, "source"); set_int_attr_new(f, "source", 7); });
  EXPECT_EQ(read_error(), path_ + ": attribute 'source' is not a string");
  SetUp();
  edit([](hid_t f) { set_int_attr(f, "tokens", 31); });
  EXPECT_EQ(read_error(), path_ + ": dataset 'tokens' has 30 elements, 31 expected from the "
                                  "attributes");
  SetUp();
  edit([](hid_t f) { set_element<int64_t>(f, "doc_offsets", H5T_NATIVE_INT64, 2, 4); });
  EXPECT_EQ(read_error(), path_ + ": document 1 is empty or negative (doc_offsets[1] = 5, next 4)");
  SetUp();
  edit([](hid_t f) { set_element<int64_t>(f, "doc_offsets", H5T_NATIVE_INT64, 3, 29); });
  EXPECT_EQ(read_error(), path_ + ": doc_offsets ends at 29, 30 (the token count) expected");
  SetUp();
  edit([](hid_t f) { set_element<uint16_t>(f, "tokens", H5T_NATIVE_UINT16, 7, 259); });
  EXPECT_EQ(read_error(), path_ + ": document 1, position 2: id 259 is outside the vocabulary "
                                  "[0, 259)");
  SetUp();
  edit([](hid_t f) { set_element<uint8_t>(f, "loss_mask", H5T_NATIVE_UINT8, 0, 2); });
  EXPECT_EQ(read_error(), path_ + ": document 0, position 0: loss_mask value 2 is not 0 or 1");
  SetUp();
  edit([](hid_t f) {
    H5Ldelete(f, "loss_mask", H5P_DEFAULT);
  });
  EXPECT_EQ(read_error(), path_ + ": dataset 'loss_mask' is missing");
  SetUp();
  edit([](hid_t f) {
    H5Ldelete(f, "tokens", H5P_DEFAULT);
    hsize_t n = 30;
    const hid_t s = H5Screate_simple(1, &n, nullptr);
    const hid_t d = H5Dcreate2(f, "tokens", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int64_t> zeros(30, 0);
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
    H5Dclose(d);
    H5Sclose(s);
  });
  EXPECT_EQ(read_error(), path_ + ": dataset 'tokens' has the wrong type (uint16 expected)");
  // A truncated file and a file that is not HDF5.
  SetUp();
  fs::resize_file(path_, fs::file_size(path_) / 2);
  EXPECT_EQ(read_error(), path_ + ": cannot open as HDF5 (truncated or corrupted?)");
  std::ofstream(path_, std::ios::trunc) << "{\"input_ids\": [1, 2]}\n";
  EXPECT_EQ(read_error(),
            path_ + ": not an HDF5 file (a token dataset is written by shardtune preprocess)");
  fs::remove(path_);
  EXPECT_EQ(read_error(), path_ + ": token dataset not found");
}

// ---- preprocess: byte ranges over the ranks, documents in line order --------------------------------

namespace {

// A stand-in for the training pipeline's encoder: text as bytes with every label set, pre-tokenized
// records as given.
core::Example encode_for_test(const io::JsonlRecord& r, const std::string& where) {
  core::Example e;
  if (r.form == io::JsonlForm::kTokens) {
    e.tokens = r.input_ids;
    e.labels = r.labels.empty() ? r.input_ids : r.labels;
    for (int64_t id : e.tokens) {
      if (id >= 259) throw UserError(where + ": input_ids: id " + std::to_string(id) + " is too big");
    }
    return e;
  }
  for (unsigned char c : r.text) {
    e.tokens.push_back(c);
    e.labels.push_back(c);
  }
  return e;
}

std::string jsonl_lines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i % 4 == 3) {
      s += "{\"input_ids\": [" + std::to_string(i) + ", 7], \"labels\": [-100, 7]}\n";
    } else {
      s += "{\"text\": \"line " + std::to_string(i) + std::string(static_cast<size_t>(i % 5), 'x') +
           "\"}\n";
    }
    if (i % 6 == 0) s += "\n";  // blank lines are skipped
  }
  return s;
}

}  // namespace

TEST(PreprocessMpi, DocumentsFollowTheLinesWhateverTheRankCount) {
  const std::string dir = shared_dir("preprocess");
  const std::string input = dir + "/in.jsonl";
  const std::string content = jsonl_lines(37);
  if (world().rank() == 0) std::ofstream(input, std::ios::binary) << content;
  world().barrier();
  io::TokenDatasetInfo info = vocab(259);
  info.tokenizer = "test";
  const io::PreprocessStats stats =
      io::preprocess_jsonl(input, dir + "/out.h5", info, encode_for_test, world());
  // The serial reading of the same file.
  std::vector<core::Example> want;
  for (const auto& r : io::read_jsonl_records(input)) want.push_back(encode_for_test(r, "x"));
  const io::TokenDataset got = io::read_token_dataset(dir + "/out.h5");
  ASSERT_EQ(got.documents.size(), want.size());
  int64_t trained = 0;
  for (size_t d = 0; d < want.size(); ++d) {
    EXPECT_EQ(got.documents[d].tokens, want[d].tokens) << d;
    EXPECT_EQ(got.documents[d].labels, want[d].labels) << d;
    for (int64_t l : want[d].labels) trained += l != core::kIgnoreIndex;
  }
  EXPECT_EQ(stats.trained_tokens, trained);
  EXPECT_EQ(stats.info.documents, 37);
  EXPECT_EQ(got.info.source, input);
}

TEST(PreprocessMpi, TheFirstBadLineIsReportedOnEveryRank) {
  const std::string dir = shared_dir("preprocess-bad");
  const std::string input = dir + "/in.jsonl";
  std::string content = jsonl_lines(30);
  content += "{\"input_ids\": [1, 300]}\n";  // line 36 (30 records + 5 blank lines before it)
  content += jsonl_lines(10);
  content += "{\"text\": 5}\n";
  if (world().rank() == 0) std::ofstream(input, std::ios::binary) << content;
  world().barrier();
  const std::string msg = error_of([&] {
    io::preprocess_jsonl(input, dir + "/out.h5", vocab(259), encode_for_test, world());
  });
  EXPECT_EQ(msg, input + ":36: input_ids: id 300 is too big");
  EXPECT_FALSE(fs::exists(dir + "/out.h5"));
  const std::string blank = dir + "/blank.jsonl";
  if (world().rank() == 0) std::ofstream(blank) << "\n\n";
  world().barrier();
  EXPECT_EQ(error_of([&] {
              io::preprocess_jsonl(blank, dir + "/out.h5", vocab(259), encode_for_test, world());
            }),
            blank + ": no records");
}

// ---- preprocess then train == train from JSONL --------------------------------------------------

namespace {

// Every record form the pipeline reads, some longer than seq_len (cut on both paths).
std::string mixed_records(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    switch (i % 5) {
      case 0:
        s += "{\"text\": \"plain text " + k + std::string(static_cast<size_t>(i), 'y') + "\"}\n";
        break;
      case 1:
        s += "{\"prompt\": \"q" + k + "?\", \"response\": \"answer " + k + "\"}\n";
        break;
      case 2:
        s += "{\"instruction\": \"do " + k + "\", \"input\": \"in\", \"output\": \"out " + k +
             "\"}\n";
        break;
      case 3:
        s += "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": "
             "\"user\", \"content\": \"hi " + k + "\"}, {\"role\": \"assistant\", \"content\": "
             "\"hello " + k + "\"}]}\n";
        break;
      default:
        s += "{\"input_ids\": [1, " + k + ", 7], \"labels\": [-100, " + k + ", 7]}\n";
    }
  }
  return s;
}

void expect_same_examples(const std::vector<core::Example>& got,
                          const std::vector<core::Example>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << what << " example " << i;
    EXPECT_EQ(got[i].labels, want[i].labels) << what << " example " << i;
  }
}

}  // namespace

TEST(PreprocessMpi, TokenizedDatasetsGiveTheExamplesOfTheJsonl) {
  const std::string dir = shared_dir("preprocess-equal");
  io::DataOptions d;
  d.train_file = dir + "/train.jsonl";
  d.eval_file = dir + "/eval.jsonl";
  d.tokenized_dir = dir + "/tok";
  d.max_eval_samples = 5;
  if (world().rank() == 0) {
    std::ofstream(d.train_file, std::ios::binary) << mixed_records(41);
    std::ofstream(d.eval_file, std::ios::binary) << mixed_records(9);
    fs::create_directories(d.tokenized_dir);
  }
  world().barrier();
  const int64_t seq_len = 160, model_vocab = 300;  // cuts the Alpaca-templated records
  for (const char* chat : {"none", "alpaca"}) {
    for (const bool on_prompt : {false, true}) {
      d.source = "jsonl";
      d.chat_template = chat;
      d.train_on_prompt = on_prompt;
      const std::string what = std::string(chat) + (on_prompt ? " train_on_prompt" : "");
      const auto tokenizer = io::make_tokenizer("byte", "[data] tokenizer");
      const io::DataSets want = io::load_datasets(d, seq_len, *tokenizer, model_vocab, 1);
      const auto encode = io::jsonl_encoder(d, *tokenizer, model_vocab);
      io::TokenDatasetInfo info;
      info.vocab_size = model_vocab;
      info.tokenizer = tokenizer->identity();
      info.chat_template = d.chat_template;
      info.train_on_prompt = d.train_on_prompt;
      io::preprocess_jsonl(d.train_file, io::tokenized_train_path(d), info, encode, world());
      io::preprocess_jsonl(d.eval_file, io::tokenized_eval_path(d), info, encode, world());
      d.source = "tokenized";
      const io::DataSets got = io::load_datasets(d, seq_len, *tokenizer, model_vocab, 1);
      expect_same_examples(got.train, want.train, what + " train");
      expect_same_examples(got.eval, want.eval, what + " eval");
      EXPECT_EQ(got.eval.size(), 5u);
    }
  }
  // A dataset made otherwise than this run would tokenize is refused, naming the difference.
  const auto tokenizer = io::make_tokenizer("byte", "[data] tokenizer");
  const std::string train_h5 = io::tokenized_train_path(d);
  d.chat_template = "none";
  EXPECT_EQ(error_of([&] { io::load_datasets(d, seq_len, *tokenizer, model_vocab, 1); }),
            train_h5 + ": made with chat_template=alpaca, but [data] chat_template=none (run "
                       "shardtune preprocess again with this configuration)");
  d.chat_template = "alpaca";
  d.train_on_prompt = false;
  EXPECT_EQ(error_of([&] { io::load_datasets(d, seq_len, *tokenizer, model_vocab, 1); }),
            train_h5 + ": made with train_on_prompt=true, but [data] train_on_prompt=false (run "
                       "shardtune preprocess again with this configuration)");
  d.train_on_prompt = true;
  EXPECT_EQ(error_of([&] { io::load_datasets(d, seq_len, *tokenizer, 100, 1); }),
            train_h5 + ": document 0 holds id 256, not below the model's vocabulary size 100");
  const auto none = io::make_tokenizer("none", "[data] tokenizer");
  EXPECT_EQ(error_of([&] { io::load_datasets(d, seq_len, *none, model_vocab, 1); }),
            train_h5 + ": tokenized by 'byte-v1', but [data] tokenizer is 'none' (run shardtune "
                       "preprocess again with this configuration)");
  // Augmentation draws over the whole record set: preprocess refuses it.
  d.augment = "reorder";
  EXPECT_EQ(error_of([&] { io::jsonl_encoder(d, *tokenizer, model_vocab); }),
            "[data] augment: shardtune preprocess writes the records as they are (augmentation "
            "draws over the whole record set when training from the JSONL)");
}
