// Chat templates for supervised data ([data] chat_template): a conversation rendered the way a
// model family's own template renders it, encoded to ids, with the loss on assistant turns only.
// Free of LibTorch.
//
// Templates (the strings are those of the families' tokenizer_config.json chat_template, as
// transformers' apply_chat_template renders them; docs/data.md shows each):
//   chatml  Qwen2-Instruct's ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" per turn, with
//           "You are a helpful assistant." as the system turn when the conversation has none
//   llama3  Meta-Llama-3-Instruct: BOS, then "<|start_header_id|>{role}<|end_header_id|>\n\n"
//           {content, stripped} "<|eot_id|>" per turn
//   llama2  Llama-2-chat: BOS "[INST] " {user} " [/INST]" " " {assistant} " " EOS per pair, the
//           system turn inside the first [INST] as "<<SYS>>\n{system}\n<</SYS>>\n\n"
//   alpaca  Stanford Alpaca: BOS {preamble} "\n\n### Instruction:\n{user}\n\n[### Input:\n{input}
//           \n\n]### Response:" {assistant} EOS; the preamble is the system turn or Stanford's
//           sentence; later pairs follow after "\n\n"
// Special tokens come from the tokenizer by name (<|im_start|>, <|eot_id|>, ...) or role (BOS,
// EOS); a template whose tokens the tokenizer lacks is refused when the template is built. A
// tokenizer without a BOS renders none (as Jinja renders an absent bos_token as "").
//
// Loss: the assistant content and the token that ends its turn (<|im_end|>, <|eot_id|>, EOS); not
// the newline ChatML puts after <|im_end|> (generation stops at <|im_end|>, so it is never
// produced). Text of the conversation is encoded with special-token parsing off: a user who
// writes "<|im_end|>" gets those characters, not the control token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/example.h"
#include "core/tokenizer.h"

namespace shardtune::io {

enum class ChatTemplateKind { kNone, kChatml, kLlama3, kLlama2, kAlpaca };

// "none", "chatml", "llama3", "llama2", "alpaca" -> kind; UserError naming `field` otherwise.
ChatTemplateKind parse_chat_template(const std::string& name, const std::string& field);
const char* chat_template_name(ChatTemplateKind kind);

// One turn. `input` is Alpaca's "input" field of a user turn: the alpaca template renders it as
// its "### Input:" section, the others append it to the content after a newline.
struct ChatTurn {
  std::string role;  // "system", "user", "assistant"
  std::string content;
  std::string input = {};
};

// A piece of a rendered conversation: a run of text, or one special token (token >= 0; text is
// then its spelling, for display).
struct ChatPiece {
  std::string text;
  int64_t token = -1;
  bool trained = false;
};

// Python's str.strip() (what Jinja's `trim` filter and `.strip()` run in transformers): removes
// leading and trailing Unicode whitespace (Python's str.isspace set) from UTF-8 text.
std::string python_strip(const std::string& text);

class ChatTemplate {
 public:
  // `kind` must not be kNone. Looks up the special tokens the template needs in `tokenizer`
  // (which must outlive this); UserError "[data] chat_template = chatml needs the token
  // <|im_start|>, which the tokenizer (IDENTITY) does not have".
  ChatTemplate(ChatTemplateKind kind, const core::Tokenizer& tokenizer);

  ChatTemplateKind kind() const { return kind_; }

  // The pieces of `turns`: an optional system turn first, then user and assistant alternating
  // from a user turn (UserError otherwise, naming `where`).
  std::vector<ChatPiece> render(const std::vector<ChatTurn>& turns, const std::string& where) const;
  // The rendered text with special tokens spelled out: what apply_chat_template(tokenize=False)
  // returns for the family's template.
  std::string render_text(const std::vector<ChatTurn>& turns) const;

  // Ids and labels of the rendered conversation (not truncated). Each run of text between two
  // special tokens is encoded as a whole, as Hugging Face does, so the ids are those of
  // apply_chat_template(tokenize=True). labels[i] = ids[i] on trained pieces (on every piece with
  // train_on_prompt, except a leading BOS), else -100. Where a token holds text from both sides
  // of a boundary between an untrained and a trained piece, it and the tokens after it count as
  // the later piece's.
  core::Example encode(const std::vector<ChatTurn>& turns, bool train_on_prompt,
                       const std::string& where) const;

 private:
  ChatPiece special(int64_t id, bool trained) const;

  ChatTemplateKind kind_;
  const core::Tokenizer& tokenizer_;
  // Special tokens by role in this template (-1 when the template does not use them or the
  // tokenizer has no BOS).
  int64_t bos_ = -1, eos_ = -1;
  int64_t im_start_ = -1, im_end_ = -1;                     // chatml
  int64_t start_header_ = -1, end_header_ = -1, eot_ = -1;  // llama3
};

// Encodes text with the tokenizer's special-token parsing off when it has that option (file
// tokenizers); the byte tokenizer has no special-token text to parse.
std::vector<int64_t> encode_plain(const core::Tokenizer& tokenizer, const std::string& text);

}  // namespace shardtune::io
