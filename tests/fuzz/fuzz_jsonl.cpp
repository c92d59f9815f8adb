// Fuzzes one JSONL line (io/jsonl.cpp) and what accepted records flow into: chat templates
// (llama2 and alpaca over a byte-level tokenizer, io/chat_template.cpp) and clause reordering
// (io/augment_clause.cpp). Accepted: a record, or a UserError. Findings: any other exception, a
// crash, a sanitizer report, or a broken invariant of an accepted record (labels that are neither
// their id nor -100, turns out of order, a reordered text of another length).
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/augment_clause.h"
#include "io/chat_template.h"
#include "io/jsonl.h"
#include "base/errors.h"

using namespace shardtune;

namespace {

// Ids 0..255 are bytes, then BOS, EOS, pad (the byte tokenizer's layout).
class Bytes final : public core::Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override {
    return std::vector<int64_t>(text.begin(), text.end());
  }
  std::string decode(const std::vector<int64_t>&) const override { return {}; }
  int64_t vocab_size() const override { return 259; }
  int64_t bos_id() const override { return 256; }
  int64_t eos_id() const override { return 257; }
  int64_t pad_id() const override { return 258; }
  std::string identity() const override { return "fuzz-bytes"; }
};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  io::JsonlRecord r;
  try {
    r = io::parse_jsonl_line(line, "fuzz.jsonl:1");
  } catch (const UserError&) {
    return 0;
  }
  static const Bytes bytes;
  if (r.form == io::JsonlForm::kTokens) {
    check(!r.input_ids.empty());
    check(r.labels.empty() || r.labels.size() == r.input_ids.size());
    for (std::size_t i = 0; i < r.input_ids.size(); ++i) {
      check(r.input_ids[i] >= 0 && r.input_ids[i] <= io::kMaxTokenId);
      if (!r.labels.empty()) check(r.labels[i] == r.input_ids[i] || r.labels[i] == -100);
    }
    return 0;
  }
  std::vector<io::ChatTurn> turns;
  if (r.form == io::JsonlForm::kMessages || r.form == io::JsonlForm::kShareGpt) {
    for (const auto& t : r.turns) turns.push_back({t.role, t.content});
  } else if (r.form == io::JsonlForm::kText) {
    uint64_t state = size;
    const std::string out = io::reorder_clauses(r.text, 1.0, state);
    check(out.size() == r.text.size());
    return 0;
  } else {
    turns = {{"user", r.prompt, r.input}, {"assistant", r.response}};
  }
  // Accepted conversations are in template order: every template renders them.
  for (auto kind : {io::ChatTemplateKind::kLlama2, io::ChatTemplateKind::kAlpaca}) {
    const io::ChatTemplate chat(kind, bytes);
    const core::Example e = chat.encode(turns, false, "fuzz");
    check(e.tokens.size() == e.labels.size());
    bool any_trained = false;
    for (std::size_t i = 0; i < e.tokens.size(); ++i) {
      check(e.labels[i] == e.tokens[i] || e.labels[i] == -100);
      any_trained = any_trained || e.labels[i] != -100;
    }
    check(any_trained);  // the EOS after each assistant turn at least
  }
  return 0;
}
