// Chat templates: rendering into text and special-token pieces, and encoding with the loss mask.
#include "io/chat_template.h"

#include <algorithm>

#include "io/tokenizers/text_tokenizer.h"
#include "base/errors.h"

namespace shardtune::io {
namespace {

constexpr const char* kQwenDefaultSystem = "You are a helpful assistant.";
constexpr const char* kAlpacaPreamble =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.";
constexpr const char* kAlpacaPreambleInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.";

// Decodes the UTF-8 character starting at s[i] (the text was validated when it was read; an
// ill-formed byte counts as one non-space character).
char32_t decode_at(const std::string& s, size_t i, size_t& len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const size_t left = s.size() - i;
  if (c < 0x80) {
    len = 1;
    return c;
  }
  if ((c & 0xE0) == 0xC0 && left >= 2) {
    len = 2;
    return (char32_t(c & 0x1F) << 6) | (b(1) & 0x3F);
  }
  if ((c & 0xF0) == 0xE0 && left >= 3) {
    len = 3;
    return (char32_t(c & 0x0F) << 12) | (char32_t(b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  }
  if ((c & 0xF8) == 0xF0 && left >= 4) {
    len = 4;
    return (char32_t(c & 0x07) << 18) | (char32_t(b(1) & 0x3F) << 12) |
           (char32_t(b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
  len = 1;
  return 0xFFFD;
}

// Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
bool python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<int64_t> encode_text(const core::Tokenizer& tokenizer, const std::string& text) {
  return encode_plain(tokenizer, text);
}

const tokenizers::TextTokenizer* as_text_tokenizer(const core::Tokenizer& tokenizer) {
  return dynamic_cast<const tokenizers::TextTokenizer*>(&tokenizer);
}

}  // namespace

std::vector<int64_t> encode_plain(const core::Tokenizer& tokenizer, const std::string& text) {
  if (const auto* t = as_text_tokenizer(tokenizer)) {
    tokenizers::EncodeOptions options;
    options.parse_special = false;
    return t->encode(text, options);
  }
  return tokenizer.encode(text);
}

std::string python_strip(const std::string& text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t len = 1;
    if (!python_space(decode_at(text, begin, len))) break;
    begin += len;
  }
  // Scan forward for the end of the last non-space character (UTF-8 is not decodable backwards
  // without care, and texts are short).
  size_t end = begin;
  for (size_t i = begin; i < text.size();) {
    size_t len = 1;
    const bool space = python_space(decode_at(text, i, len));
    i += len;
    if (!space) end = i;
  }
  return text.substr(begin, end - begin);
}

ChatTemplateKind parse_chat_template(const std::string& name, const std::string& field) {
  if (name == "none") return ChatTemplateKind::kNone;
  if (name == "chatml") return ChatTemplateKind::kChatml;
  if (name == "llama3") return ChatTemplateKind::kLlama3;
  if (name == "llama2") return ChatTemplateKind::kLlama2;
  if (name == "alpaca") return ChatTemplateKind::kAlpaca;
  throw UserError(field + ": '" + name + "' is unknown (known: none, chatml, llama3, llama2, alpaca)");
}

const char* chat_template_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kNone: return "none";
    case ChatTemplateKind::kChatml: return "chatml";
    case ChatTemplateKind::kLlama3: return "llama3";
    case ChatTemplateKind::kLlama2: return "llama2";
    case ChatTemplateKind::kAlpaca: return "alpaca";
  }
  return "?";
}

ChatTemplate::ChatTemplate(ChatTemplateKind kind, const core::Tokenizer& tokenizer)
    : kind_(kind), tokenizer_(tokenizer) {
  require(kind != ChatTemplateKind::kNone, "ChatTemplate: kind none has no template");
  const std::string name = chat_template_name(kind);
  const auto* text = as_text_tokenizer(tokenizer);
  auto named = [&](const char* token) {
    std::optional<int64_t> id;
    if (text) id = text->token_to_id(token);
    if (!id) {
      throw UserError(std::string("[data] chat_template = ") + name + " needs the token " + token +
                      ", which the tokenizer (" + tokenizer.identity() + ") does not have");
    }
    return *id;
  };
  auto role = [&](int64_t id, const char* what) {
    if (id < 0) {
      throw UserError(std::string("[data] chat_template = ") + name + " needs an " + what +
                      " token, which the tokenizer (" + tokenizer.identity() + ") does not have");
    }
    return id;
  };
  switch (kind) {
    case ChatTemplateKind::kChatml:
      im_start_ = named("<|im_start|>");
      im_end_ = named("<|im_end|>");
      break;
    case ChatTemplateKind::kLlama3:
      bos_ = tokenizer.bos_id();
      start_header_ = named("<|start_header_id|>");
      end_header_ = named("<|end_header_id|>");
      eot_ = named("<|eot_id|>");
      break;
    case ChatTemplateKind::kLlama2:
    case ChatTemplateKind::kAlpaca:
      bos_ = tokenizer.bos_id();
      eos_ = role(tokenizer.eos_id(), "end-of-sequence (EOS)");
      break;
    case ChatTemplateKind::kNone:
      break;
  }
}

ChatPiece ChatTemplate::special(int64_t id, bool trained) const {
  ChatPiece piece;
  piece.token = id;
  piece.trained = trained;
  if (const auto* text = as_text_tokenizer(tokenizer_)) {
    piece.text = text->id_to_token(id);
  } else {
    piece.text = id == tokenizer_.bos_id() ? "<bos>" : id == tokenizer_.eos_id() ? "<eos>" : "<special>";
  }
  return piece;
}

std::vector<ChatPiece> ChatTemplate::render(const std::vector<ChatTurn>& turns,
                                            const std::string& where) const {
  // The structure every template here assumes (Llama 2's raises otherwise): an optional system
  // turn, then user/assistant alternating from a user turn.
  for (size_t i = 0; i < turns.size(); ++i) {
    const std::string& role = turns[i].role;
    const bool after_system = i == 1 && turns[0].role == "system";
    std::string expected;
    if (i == 0 && role == "system") continue;
    if (i == 0 || after_system) {
      expected = "user";
    } else {
      expected = turns[i - 1].role == "user" ? "assistant" : "user";
    }
    if (role != expected) {
      throw UserError(where + ": turn " + std::to_string(i) + " is " + role + " where " +
                      chat_template_name(kind_) + " expects " + expected +
                      " (an optional system turn, then user and assistant alternating)");
    }
  }
  std::vector<ChatPiece> out;
  auto text = [&](std::string s, bool trained = false) {
    if (!s.empty()) out.push_back(ChatPiece{std::move(s), -1, trained});
  };
  auto with_input = [](const ChatTurn& t) {
    return t.input.empty() ? t.content : t.content + "\n" + t.input;
  };
  const bool has_system = !turns.empty() && turns[0].role == "system";
  switch (kind_) {
    case ChatTemplateKind::kChatml: {
      if (!has_system) {
        out.push_back(special(im_start_, false));
        text(std::string("system\n") + kQwenDefaultSystem);
        out.push_back(special(im_end_, false));
        text("\n");
      }
      for (const ChatTurn& t : turns) {
        const bool assistant = t.role == "assistant";
        out.push_back(special(im_start_, false));
        text(t.role + "\n");
        text(with_input(t), assistant);
        out.push_back(special(im_end_, assistant));
        text("\n");
      }
      break;
    }
    case ChatTemplateKind::kLlama3: {
      if (bos_ >= 0) out.push_back(special(bos_, false));
      for (const ChatTurn& t : turns) {
        const bool assistant = t.role == "assistant";
        out.push_back(special(start_header_, false));
        text(t.role);
        out.push_back(special(end_header_, false));
        text("\n\n");
        text(python_strip(with_input(t)), assistant);
        out.push_back(special(eot_, assistant));
      }
      break;
    }
    case ChatTemplateKind::kLlama2: {
      const size_t first = has_system ? 1 : 0;
      for (size_t i = first; i < turns.size(); ++i) {
        const ChatTurn& t = turns[i];
        std::string content = with_input(t);
        if (i == first && has_system) {
          content = "<<SYS>>\n" + turns[0].content + "\n<</SYS>>\n\n" + content;
        }
        if (t.role == "user") {
          if (bos_ >= 0) out.push_back(special(bos_, false));
          text("[INST] " + python_strip(content) + " [/INST]");
        } else {
          text(" " + python_strip(content) + " ", true);
          out.push_back(special(eos_, true));
        }
      }
      break;
    }
    case ChatTemplateKind::kAlpaca: {
      if (bos_ >= 0) out.push_back(special(bos_, false));
      const size_t first = has_system ? 1 : 0;
      for (size_t i = first; i < turns.size(); ++i) {
        const ChatTurn& t = turns[i];
        if (t.role == "user") {
          std::string prompt;
          if (i == first) {
            prompt = has_system ? turns[0].content
                                : (t.input.empty() ? kAlpacaPreamble : kAlpacaPreambleInput);
          }
          prompt += "\n\n### Instruction:\n" + t.content + "\n\n";
          if (!t.input.empty()) prompt += "### Input:\n" + t.input + "\n\n";
          prompt += "### Response:";
          text(std::move(prompt));
        } else {
          text(t.content, true);
          out.push_back(special(eos_, true));
        }
      }
      break;
    }
    case ChatTemplateKind::kNone:
      break;
  }
  return out;
}

std::string ChatTemplate::render_text(const std::vector<ChatTurn>& turns) const {
  std::string s;
  for (const ChatPiece& p : render(turns, "render_text")) s += p.text;
  return s;
}

core::Example ChatTemplate::encode(const std::vector<ChatTurn>& turns, bool train_on_prompt,
                                   const std::string& where) const {
  const std::vector<ChatPiece> pieces = render(turns, where);
  core::Example ex;
  auto push = [&](int64_t id, bool trained) {
    ex.tokens.push_back(id);
    ex.labels.push_back(trained || train_on_prompt ? id : core::kIgnoreIndex);
  };
  size_t i = 0;
  while (i < pieces.size()) {
    if (pieces[i].token >= 0) {
      push(pieces[i].token, pieces[i].trained);
      ++i;
      continue;
    }
    // A run of text between special tokens: encoded whole (as HF splits on special tokens and
    // encodes each run), its pieces' flags mapped onto the ids through the ids of each prefix.
    size_t j = i;
    std::string run;
    std::vector<size_t> starts;  // byte offset where each flag segment starts
    std::vector<bool> flags;
    for (; j < pieces.size() && pieces[j].token < 0; ++j) {
      if (flags.empty() || flags.back() != pieces[j].trained) {
        starts.push_back(run.size());
        flags.push_back(pieces[j].trained);
      }
      run += pieces[j].text;
    }
    const std::vector<int64_t> ids = encode_text(tokenizer_, run);
    // first[s]: index in ids of the first token of segment s.
    std::vector<size_t> first(flags.size(), 0);
    for (size_t s = 1; s < flags.size(); ++s) {
      const std::vector<int64_t> prefix = encode_text(tokenizer_, run.substr(0, starts[s]));
      size_t common = 0;
      while (common < prefix.size() && common < ids.size() && prefix[common] == ids[common]) {
        ++common;
      }
      // Tokens the prefix shares with the whole lie before the boundary; from the first
      // difference on, a token may hold text of both sides, and counts as the later segment's.
      first[s] = std::max(first[s - 1], common);
    }
    size_t s = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      while (s + 1 < flags.size() && t >= first[s + 1]) ++s;
      push(ids[t], flags[s]);
    }
    i = j;
  }
  // A leading BOS is never a prediction target (nothing comes before it).
  if (!ex.tokens.empty() && ex.tokens[0] == bos_ && bos_ >= 0) ex.labels[0] = core::kIgnoreIndex;
  return ex;
}

}  // namespace shardtune::io
