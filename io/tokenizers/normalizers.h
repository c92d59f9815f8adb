// tokenizer.json "normalizer": text transformations applied before pre-tokenization.
// Supported: NFC, NFD, NFKC, NFKD (through ICU), Lowercase, Prepend, Replace (a string or a
// regex pattern), Strip, Sequence. Any other type is refused with a UserError naming it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "io/tokenizers/json_util.h"

namespace shardtune::io::tokenizers {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8 and so is the result.
  virtual std::string normalize(std::string_view text) const = 0;
};

// nullptr for a JSON null (no normalizer).
std::unique_ptr<Normalizer> parse_normalizer(const JsonField& field);

}  // namespace shardtune::io::tokenizers
