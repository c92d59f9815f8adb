// `shardtune preprocess` (see cmd_preprocess.h).
#include "launch/cmd_preprocess.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

#include "base/errors.h"
#include "io/data.h"
#include "io/preprocess.h"
#include "io/tokenizer.h"
#include "launch/agree.h"

namespace shardtune::launch {

int run_preprocess(WorldContext& context) {
  const Config& c = context.config;
  const io::DataOptions& d = c.data;
  auto& world = context.world;
  std::unique_ptr<core::Tokenizer> tokenizer;
  io::DocumentEncoder encode;
  io::TokenDatasetInfo info;
  // Set-up on every rank (each reads the tokenizer itself), agreed on before any collective.
  int rc = agree(world, [&] {
    require(d.source == "jsonl" || d.source == "tokenized",
            "shardtune preprocess reads JSONL: [data] source=" + d.source +
                " has no files to tokenize");
    require(!d.train_file.empty(), "shardtune preprocess needs [data] train_file (JSONL)");
    require(!d.tokenized_dir.empty(),
            "shardtune preprocess needs [data] tokenized_dir (where train.h5 and eval.h5 go)");
    tokenizer = io::make_model_tokenizer(d.tokenizer, c.model.vocab_size);
    encode = io::jsonl_encoder(d, *tokenizer, c.model.vocab_size);
    info.vocab_size = c.model.vocab_size;
    info.tokenizer = tokenizer->identity();
    info.chat_template = d.chat_template;
    info.train_on_prompt = d.train_on_prompt;
    if (world.rank() == 0) {
      std::error_code ec;
      std::filesystem::create_directories(d.tokenized_dir, ec);
      require(!ec, d.tokenized_dir + ": cannot create ([data] tokenized_dir): " + ec.message());
    }
  });
  if (rc != 0) return rc;
  // preprocess_jsonl agrees on its own errors (every rank throws the first in file order).
  auto one = [&](const std::string& input, const std::string& output) {
    return agree(world, [&] {
      const auto stats = io::preprocess_jsonl(input, output, info, encode, world);
      if (context.root) {
        spdlog::info("preprocess: {} -> {}: {} documents, {} tokens ({} trained), longest {} "
                     "tokens, {} ids, {} ranks",
                     input, output, stats.info.documents, stats.info.tokens,
                     stats.trained_tokens, stats.longest, stats.info.token_type, world.size());
      }
    });
  };
  if ((rc = one(d.train_file, io::tokenized_train_path(d))) != 0) return rc;
  if (!d.eval_file.empty()) return one(d.eval_file, io::tokenized_eval_path(d));
  if (context.root) {
    std::error_code ec;
    std::filesystem::remove(io::tokenized_eval_path(d), ec);  // no stale held-out set
  }
  return 0;
}

}  // namespace shardtune::launch
