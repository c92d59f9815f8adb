// JSONL records (io/jsonl.h), clause reordering (io/augment_clause.h) and chat templates with a
// byte-level tokenizer (io/chat_template.h). No LibTorch: this binary builds in seconds. The
// templates against the families' own (Jinja) templates and real tokenizers:
// test_data_chat_reference.cpp.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "io/augment_clause.h"
#include "io/chat_template.h"
#include "io/jsonl.h"
#include "base/errors.h"

namespace shardtune::io {
namespace {

namespace fs = std::filesystem;

// The error of `fn`, which must throw a one-line UserError.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error";
  return {};
}

std::string line_error(const std::string& line) {
  return error_of([&] { parse_jsonl_line(line, "d.jsonl:7"); });
}

// ---- JSONL forms ---------------------------------------------------------------------------------

TEST(JsonlRecords, EveryForm) {
  JsonlRecord r = parse_jsonl_line(R"({"text": "hello", "id": 3})", "x");
  EXPECT_EQ(r.form, JsonlForm::kText);
  EXPECT_EQ(r.text, "hello");

  r = parse_jsonl_line(R"({"prompt": "Q", "response": "A"})", "x");
  EXPECT_EQ(r.form, JsonlForm::kPromptResponse);
  EXPECT_EQ(r.prompt, "Q");
  EXPECT_EQ(r.response, "A");

  r = parse_jsonl_line(R"({"instruction": "Do", "input": "this", "output": "done"})", "x");
  EXPECT_EQ(r.form, JsonlForm::kAlpaca);
  EXPECT_EQ(r.prompt, "Do");
  EXPECT_EQ(r.input, "this");
  EXPECT_EQ(r.response, "done");

  r = parse_jsonl_line(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},)"
      R"( {"role": "assistant", "content": "A"}]})",
      "x");
  EXPECT_EQ(r.form, JsonlForm::kMessages);
  ASSERT_EQ(r.turns.size(), 3u);
  EXPECT_EQ(r.turns[0].role, "system");
  EXPECT_EQ(r.turns[2].content, "A");

  // ShareGPT: human/gpt become user/assistant; a top-level "system" becomes the first turn.
  r = parse_jsonl_line(
      R"({"id": "a1", "system": "Be kind.", "conversations": [{"from": "human", "value": "hi"},)"
      R"( {"from": "gpt", "value": "hello"}, {"from": "user", "value": "bye"},)"
      R"( {"from": "assistant", "value": "ciao"}]})",
      "x");
  EXPECT_EQ(r.form, JsonlForm::kShareGpt);
  ASSERT_EQ(r.turns.size(), 5u);
  EXPECT_EQ(r.turns[0].role, "system");
  EXPECT_EQ(r.turns[0].content, "Be kind.");
  EXPECT_EQ(r.turns[1].role, "user");
  EXPECT_EQ(r.turns[2].role, "assistant");
  EXPECT_EQ(r.turns[3].role, "user");
  EXPECT_EQ(r.turns[4].content, "ciao");

  r = parse_jsonl_line(R"({"input_ids": [1, 2, 3], "labels": [-100, 2, 3]})", "x");
  EXPECT_EQ(r.form, JsonlForm::kTokens);
  EXPECT_EQ(r.input_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.labels, (std::vector<int64_t>{-100, 2, 3}));
  r = parse_jsonl_line(R"({"input_ids": [0, 2147483647]})", "x");
  EXPECT_TRUE(r.labels.empty());
  EXPECT_EQ(r.input_ids.back(), kMaxTokenId);
}

TEST(JsonlRecords, ErrorsNameFileLineAndField) {
  EXPECT_EQ(line_error(R"({"text": 5})"), "d.jsonl:7: text: expected a string, got integer");
  EXPECT_EQ(line_error(R"({"prompt": "p", "response": null})"),
            "d.jsonl:7: response: expected a string, got null");
  EXPECT_EQ(line_error(R"({"instruction": "i", "input": [1], "output": "o"})"),
            "d.jsonl:7: input: expected a string, got array");
  EXPECT_EQ(line_error(R"({"messages": [{"role": "user", "content": "hi"}]})"),
            "d.jsonl:7: messages: has no assistant turn (nothing to train on)");
  EXPECT_EQ(line_error(R"({"messages": [{"role": "bot", "content": "hi"}]})"),
            "d.jsonl:7: messages[0].role: role 'bot' is unknown (known: system, user, assistant)");
  EXPECT_EQ(line_error(R"({"messages": [{"role": "user"}]})"),
            "d.jsonl:7: messages[0]: must be an object with \"role\" and \"content\"");
  EXPECT_EQ(line_error(R"({"messages": []})"),
            "d.jsonl:7: messages: must be a non-empty array of {\"role\", \"content\"} objects");
  EXPECT_EQ(line_error(R"({"messages": [{"role": "user", "content": 3}]})"),
            "d.jsonl:7: messages[0].content: expected a string, got integer");
  EXPECT_EQ(
      line_error(R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})"),
      "d.jsonl:7: messages[1].role: expected an assistant turn here (after an optional system "
      "turn, turns alternate user, assistant, user, ...), got user");
  EXPECT_EQ(
      line_error(R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]})"),
      "d.jsonl:7: messages[1].role: a system turn may only come first");
  EXPECT_EQ(line_error(R"({"conversations": [{"from": "bing", "value": "x"}]})"),
            "d.jsonl:7: conversations[0].from: role 'bing' is unknown (known: system, human, "
            "user, gpt, assistant)");
  EXPECT_EQ(line_error(R"({"conversations": [{"from": "gpt", "value": "x"}]})"),
            "d.jsonl:7: conversations[0].from: expected a user turn here (after an optional "
            "system turn, turns alternate user, assistant, user, ...), got assistant");
  EXPECT_EQ(line_error(R"({"system": 1, "conversations": []})"),
            "d.jsonl:7: system: expected a string, got integer");
  EXPECT_EQ(line_error(R"({"input_ids": [1, 2.5]})"),
            "d.jsonl:7: input_ids[1]: expected an integer, got number");
  EXPECT_EQ(line_error(R"({"input_ids": [-5]})"),
            "d.jsonl:7: input_ids[0]: id -5 is outside [0, 2147483647]");
  EXPECT_EQ(line_error(R"({"input_ids": [2147483648]})"),
            "d.jsonl:7: input_ids[0]: id 2147483648 is outside [0, 2147483647]");
  EXPECT_EQ(line_error(R"({"input_ids": [18446744073709551615]})"),
            "d.jsonl:7: input_ids[0]: id 18446744073709551615 is outside [0, 2147483647]");
  EXPECT_EQ(line_error(R"({"input_ids": [1e30]})"),
            "d.jsonl:7: input_ids[0]: expected an integer, got number");
  EXPECT_EQ(line_error(R"({"input_ids": "1 2 3"})"),
            "d.jsonl:7: input_ids: expected an array, got string");
  EXPECT_EQ(line_error(R"({"input_ids": []})"), "d.jsonl:7: input_ids: is empty");
  EXPECT_EQ(line_error(R"({"input_ids": [1, 2], "labels": [1]})"),
            "d.jsonl:7: labels: has 1 entries but input_ids has 2");
  EXPECT_EQ(line_error(R"({"input_ids": [1, 2], "labels": [1, 3]})"),
            "d.jsonl:7: labels[1]: 3 is neither input_ids[1] (2) nor -100 (labels name the token "
            "at their own position; the loss shifts them)");
  EXPECT_EQ(line_error(R"({"input_ids": [1], "labels": [-7]})"),
            "d.jsonl:7: labels[0]: id -7 is outside [0, 2147483647] and is not -100");
  EXPECT_EQ(line_error(R"({"labels": [1]})"),
            "d.jsonl:7: object has \"labels\" but no \"input_ids\"");
  EXPECT_EQ(line_error(R"({"prompt": "p"})"), "d.jsonl:7: object has \"prompt\" but no \"response\"");
  EXPECT_EQ(line_error(R"({"output": "o"})"), "d.jsonl:7: object has \"output\" but no \"instruction\"");
  EXPECT_EQ(line_error(R"({"text": "t", "input_ids": [1]})"),
            "d.jsonl:7: object mixes the forms text, prompt/response, instruction/output, "
            "messages, conversations, input_ids; use one");
  EXPECT_EQ(line_error(R"({"body": "b"})"),
            "d.jsonl:7: object has none of the keys text, prompt/response, instruction/output, "
            "messages, conversations, input_ids");
  EXPECT_EQ(line_error("[1, 2]"), "d.jsonl:7: expected a JSON object, got array");
  EXPECT_EQ(line_error(R"({"text": "a", "text": "b"})"),
            "d.jsonl:7: the key \"text\" appears twice in one object");
  std::string deep = R"({"text": "x", "extra": )";
  for (int i = 0; i < 20; ++i) deep += "[";
  for (int i = 0; i < 20; ++i) deep += "]";
  deep += "}";
  EXPECT_EQ(line_error(deep), "d.jsonl:7: JSON nested deeper than 16 levels");
  EXPECT_EQ(line_error("{\"text\": \"\xC3\x28\"}").rfind("d.jsonl:7: invalid JSON: ", 0), 0u);
  EXPECT_EQ(line_error(R"({"text": "a")").rfind("d.jsonl:7: invalid JSON: ", 0), 0u);
  EXPECT_EQ(line_error(R"({"text": "a")").find("[json.exception"), std::string::npos);
}

// ---- the line reader -------------------------------------------------------------------------------

class TempFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "shardtune_data_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  fs::path dir_;
};

using JsonlReader = TempFiles;

std::vector<std::pair<int64_t, std::string>> lines_in(const std::string& path, uint64_t begin,
                                                     uint64_t end) {
  JsonlLineReader reader(path, begin, end);
  std::vector<std::pair<int64_t, std::string>> out;
  std::string line;
  int64_t no = 0;
  while (reader.next(line, no)) out.emplace_back(no, line);
  return out;
}

TEST_F(JsonlReader, RangesVisitEveryLineOnceWithItsNumber) {
  const std::string content = "first\n\nthird line\r\n\n\nsixth\nlast without newline";
  const std::string path = write("a.jsonl", content);
  const auto all = lines_in(path, 0, UINT64_MAX);
  const std::vector<std::pair<int64_t, std::string>> want = {
      {1, "first"}, {2, ""}, {3, "third line"}, {4, ""}, {5, ""}, {6, "sixth"},
      {7, "last without newline"}};
  EXPECT_EQ(all, want);
  // Every cut into two and three ranges gives the same lines, each once.
  for (uint64_t a = 0; a <= content.size(); ++a) {
    auto joined = lines_in(path, 0, a);
    const auto rest = lines_in(path, a, content.size());
    joined.insert(joined.end(), rest.begin(), rest.end());
    ASSERT_EQ(joined, want) << "cut at " << a;
    for (uint64_t b = a; b <= content.size(); b += 3) {
      auto three = lines_in(path, 0, a);
      for (const auto& part : {lines_in(path, a, b), lines_in(path, b, content.size())}) {
        three.insert(three.end(), part.begin(), part.end());
      }
      ASSERT_EQ(three, want) << "cuts at " << a << ", " << b;
    }
  }
}

TEST_F(JsonlReader, ReadsRecordsAndRefusesBadFiles) {
  const std::string path = write("d.jsonl", "{\"text\": \"a\"}\n  \n{\"text\": \"b\"}\n");
  const auto records = read_jsonl_records(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].text, "b");
  const std::string bad = write("bad.jsonl", "{\"text\": \"a\"}\n\n{\"text\": 1}\n");
  EXPECT_EQ(error_of([&] { read_jsonl_records(bad); }),
            bad + ":3: text: expected a string, got integer");
  const std::string empty = write("e.jsonl", "\n \n");
  EXPECT_EQ(error_of([&] { read_jsonl_records(empty); }), empty + ": no records");
  EXPECT_EQ(error_of([&] { read_jsonl_records((dir_ / "none.jsonl").string()); }),
            (dir_ / "none.jsonl").string() + ": cannot open");
  EXPECT_EQ(error_of([&] { read_jsonl_records(dir_.string()); }),
            dir_.string() + ": cannot open (a directory)");
}

TEST_F(JsonlReader, LineLengthIsCapped) {
  // A line one byte over the cap is refused while reading, before it is parsed, with its number.
  std::string content = "{\"text\": \"ok\"}\n";
  content += std::string(kMaxJsonlLineBytes + 1, 'x');
  content += "\n";
  const std::string path = write("long.jsonl", content);
  EXPECT_EQ(error_of([&] { read_jsonl_records(path); }),
            path + ":2: line is longer than the " + std::to_string(kMaxJsonlLineBytes) +
                " bytes allowed");
  EXPECT_EQ(error_of([&] { parse_jsonl_line(std::string(kMaxJsonlLineBytes + 1, ' '), "w:1"); }),
            "w:1: line of " + std::to_string(kMaxJsonlLineBytes + 1) +
                " bytes is longer than the " + std::to_string(kMaxJsonlLineBytes) + " allowed");
}

// ---- clause reordering ------------------------------------------------------------------------------

TEST(ClauseSplit, JointsAreCommasSemicolonsAndConjunctions) {
  ClauseSplit s = split_clauses("When it rains, the road floods, and we stay home");
  EXPECT_EQ(s.clauses, (std::vector<std::string>{"When it rains", "the road floods", "we stay home"}));
  EXPECT_EQ(s.joints, (std::vector<std::string>{", ", ", and "}));
  s = split_clauses("tea or coffee; milk but no sugar");
  EXPECT_EQ(s.clauses, (std::vector<std::string>{"tea", "coffee", "milk", "no sugar"}));
  EXPECT_EQ(s.joints, (std::vector<std::string>{" or ", "; ", " but "}));
  // Not joints: a comma without a space, text in brackets or quotes, words containing "and",
  // and joints that would leave an empty clause.
  s = split_clauses("1,000 sandwiches (bread, cheese and ham) \"yes, and no\" android");
  EXPECT_EQ(s.clauses.size(), 1u);
  s = split_clauses(", and then");
  EXPECT_EQ(s.clauses.size(), 1u);
  s = split_clauses("trailing, ");
  EXPECT_EQ(s.clauses.size(), 1u);
  // Joined back, the pieces are the sentence.
  for (const std::string sentence :
       {"a, b; c and d or e", "x,  y", "one so two yet three nor four", "  lead, trail  "}) {
    s = split_clauses(sentence);
    std::string joined = s.clauses[0];
    for (size_t i = 0; i < s.joints.size(); ++i) joined += s.joints[i] + s.clauses[i + 1];
    EXPECT_EQ(joined, sentence);
  }
}

TEST(ClauseReorder, PermutesClausesKeepsJointsAndIsDeterministic) {
  const std::string text = "When it rains, the road floods, and we stay home. Short one. "
                           "Red, green and blue! I came, I saw, I conquered?";
  uint64_t a = 42, b = 42;
  const std::string once = reorder_clauses(text, 1.0, a);
  EXPECT_EQ(once, reorder_clauses(text, 1.0, b));
  EXPECT_EQ(a, b);
  uint64_t c = 42;
  EXPECT_EQ(reorder_clauses(text, 0.0, c), text);
  // Seeds differ -> at least one seed of a few reorders differently (not a fixed shuffle).
  std::set<std::string> outputs;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    uint64_t st = seed;
    outputs.insert(reorder_clauses(text, 1.0, st));
  }
  EXPECT_GT(outputs.size(), 4u);
  // Every output: the same sentences' terminators in place and each sentence's clauses permuted
  // (compared case-insensitively at the initial), joints in order.
  auto lower_initial = [](std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
  };
  const std::vector<std::string> originals = {"When it rains, the road floods, and we stay home",
                                              "Short one", "Red, green and blue",
                                              "I came, I saw, I conquered"};
  for (const std::string& out : outputs) {
    std::vector<std::string> sentences;
    size_t start = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      if ((out[i] == '.' || out[i] == '!' || out[i] == '?') &&
          (i + 1 == out.size() || out[i + 1] == ' ')) {
        sentences.push_back(out.substr(start, i - start));
        start = i + 2;
      }
    }
    ASSERT_EQ(sentences.size(), originals.size()) << out;
    for (size_t k = 0; k < originals.size(); ++k) {
      const ClauseSplit want = split_clauses(originals[k]);
      const ClauseSplit got = split_clauses(sentences[k]);
      EXPECT_EQ(got.joints, want.joints) << out;
      std::multiset<std::string> w, g;
      for (const auto& x : want.clauses) w.insert(lower_initial(x));
      for (const auto& x : got.clauses) g.insert(lower_initial(x));
      EXPECT_EQ(g, w) << out;
      // The sentence still starts with a capital letter.
      EXPECT_TRUE(std::isupper(static_cast<unsigned char>(sentences[k][0]))) << out;
    }
    EXPECT_EQ(out.substr(out.size() - 1), "?");
  }
  // Pinned (splitmix64 from seed 7 is portable), so a change of the stream is noticed. The second
  // sentence shows the limit of the capitalisation rule: a name that leaves the front is lowered.
  uint64_t seven = 7;
  EXPECT_EQ(reorder_clauses("When it rains, the road floods, and we stay home. Paris is big, but "
                            "Rome is old.", 1.0, seven),
            "The road floods, we stay home, and when it rains. Rome is old, but paris is big.");
  // "I" keeps its capital when it moves.
  for (const std::string& out : outputs) {
    EXPECT_EQ(out.find(" i "), std::string::npos) << out;
    EXPECT_EQ(out.find(", i"), std::string::npos) << out;
  }
}

// ---- chat templates with a byte-level tokenizer ----------------------------------------------------

// Bytes are ids 0..255, then BOS 256 (or none), EOS 257, pad 258: the byte tokenizer's layout,
// without its library (this binary links no LibTorch).
class BytesTokenizer final : public core::Tokenizer {
 public:
  explicit BytesTokenizer(bool with_bos) : bos_(with_bos ? 256 : -1) {}
  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int64_t> out;
    for (unsigned char c : text) out.push_back(c);
    return out;
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string s;
    for (int64_t id : ids) {
      if (id < 256) s += static_cast<char>(id);
    }
    return s;
  }
  int64_t vocab_size() const override { return 259; }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return 257; }
  int64_t pad_id() const override { return 258; }
  std::string identity() const override { return "bytes-test"; }

 private:
  int64_t bos_;
};

// The trained text of an example: bytes whose label is set, with "|" between separate runs and
// "<eos>" for EOS.
std::string trained(const core::Example& e) {
  std::string s;
  bool in = false;
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    const bool t = e.labels[i] != core::kIgnoreIndex;
    if (t && !in && !s.empty()) s += "|";
    if (t) s += e.tokens[i] == 257 ? std::string("<eos>") : std::string(1, char(e.tokens[i]));
    in = t;
  }
  return s;
}

TEST(ChatTemplates, Llama2AndAlpacaRenderAndMaskWithAnyTokenizer) {
  const BytesTokenizer tok(true);
  const std::vector<ChatTurn> chat = {{"system", "Be brief."},
                                      {"user", " Hi "},
                                      {"assistant", "Hello! "},
                                      {"user", "Bye"},
                                      {"assistant", "Ciao"}};
  const ChatTemplate llama2(ChatTemplateKind::kLlama2, tok);
  EXPECT_EQ(llama2.render_text(chat),
            "<bos>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! <eos>"
            "<bos>[INST] Bye [/INST] Ciao <eos>");
  core::Example e = llama2.encode(chat, false, "r");
  // (Llama-2-chat strips the system block and the first user text as one string: the user's
  // leading space stays.)
  EXPECT_EQ(trained(e), " Hello! <eos>| Ciao <eos>");
  EXPECT_EQ(e.tokens.front(), 256);
  EXPECT_EQ(e.labels.front(), core::kIgnoreIndex);
  // train_on_prompt: every label set except the leading BOS.
  e = llama2.encode(chat, true, "r");
  for (size_t i = 1; i < e.tokens.size(); ++i) EXPECT_EQ(e.labels[i], e.tokens[i]);
  EXPECT_EQ(e.labels[0], core::kIgnoreIndex);

  const ChatTemplate alpaca(ChatTemplateKind::kAlpaca, tok);
  EXPECT_EQ(alpaca.render_text({{"user", "Add.", "1 2"}, {"assistant", "3"}}),
            "<bos>Below is an instruction that describes a task, paired with an input that "
            "provides further context. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nAdd.\n\n### Input:\n1 2\n\n### Response:3<eos>");
  EXPECT_EQ(alpaca.render_text(chat),
            "<bos>Be brief.\n\n### Instruction:\n Hi \n\n### Response:Hello! <eos>"
            "\n\n### Instruction:\nBye\n\n### Response:Ciao<eos>");
  EXPECT_EQ(trained(alpaca.encode(chat, false, "r")), "Hello! <eos>|Ciao<eos>");

  // Without a BOS (bos_id() = -1) nothing stands in for it.
  const BytesTokenizer no_bos(false);
  EXPECT_EQ(ChatTemplate(ChatTemplateKind::kLlama2, no_bos).render_text({{"user", "a"}, {"assistant", "b"}}),
            "[INST] a [/INST] b <eos>");
  e = ChatTemplate(ChatTemplateKind::kAlpaca, no_bos).encode({{"user", "a"}, {"assistant", "b"}}, false, "r");
  EXPECT_EQ(e.tokens.front(), 'B');
  EXPECT_EQ(trained(e), "b<eos>");
}

TEST(ChatTemplates, RefusalsNameTheProblem) {
  const BytesTokenizer tok(true);
  EXPECT_EQ(error_of([&] { ChatTemplate(ChatTemplateKind::kChatml, tok); }),
            "[data] chat_template = chatml needs the token <|im_start|>, which the tokenizer "
            "(bytes-test) does not have");
  EXPECT_EQ(error_of([&] { ChatTemplate(ChatTemplateKind::kLlama3, tok); }),
            "[data] chat_template = llama3 needs the token <|start_header_id|>, which the "
            "tokenizer (bytes-test) does not have");
  EXPECT_EQ(error_of([] { parse_chat_template("vicuna", "[data] chat_template"); }),
            "[data] chat_template: 'vicuna' is unknown (known: none, chatml, llama3, llama2, "
            "alpaca)");
  const ChatTemplate llama2(ChatTemplateKind::kLlama2, tok);
  EXPECT_EQ(error_of([&] { llama2.encode({{"assistant", "a"}}, false, "f.jsonl record 3"); }),
            "f.jsonl record 3: turn 0 is assistant where llama2 expects user (an optional "
            "system turn, then user and assistant alternating)");
  EXPECT_EQ(error_of([&] {
              llama2.encode({{"user", "a"}, {"system", "b"}}, false, "r");
            }),
            "r: turn 1 is system where llama2 expects assistant (an optional system turn, then "
            "user and assistant alternating)");
}

TEST(ChatTemplates, PythonStripRemovesPythonWhitespaceOnly) {
  // Python's str.isspace set, at both ends: ASCII controls 0x09-0x0D and 0x1C-0x1F, NEL, NBSP,
  // the U+2000 block, line/paragraph separators, ideographic space.
  const std::string spaces = "\t\n\v\f\r\x1c\x1f \xC2\x85\xC2\xA0\xE1\x9A\x80\xE2\x80\x80"
                             "\xE2\x80\x8A\xE2\x80\xA8\xE2\x80\xA9\xE2\x80\xAF\xE2\x81\x9F\xE3\x80\x80";
  EXPECT_EQ(python_strip(spaces + "a b" + spaces), "a b");
  EXPECT_EQ(python_strip(spaces), "");
  // Not whitespace to Python: zero-width space U+200B and BOM U+FEFF (JavaScript trims the BOM).
  EXPECT_EQ(python_strip("\xE2\x80\x8Bx\xEF\xBB\xBF"), "\xE2\x80\x8Bx\xEF\xBB\xBF");
  EXPECT_EQ(python_strip("  \xC3\xA9t\xC3\xA9 "), "\xC3\xA9t\xC3\xA9");
}

}  // namespace
}  // namespace shardtune::io
