// Text augmentation for training records ([data] augment=synonym,reorder,clause): WordNet synonym
// replacement, sentence reordering and clause reordering inside sentences (io/augment_clause.h),
// deterministic per seed (Wei & Zou 2019's "EDA" operations, two of four, plus clauses). Applied to training records only; evaluation data is never augmented.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/dataset.h"
#include "io/wordnet.h"

namespace shardtune::io {

struct AugmentOptions {
  bool synonym = false;   // replace words by a WordNet synonym
  bool reorder = false;   // shuffle the sentences of multi-sentence texts
  bool clause = false;    // reorder clauses inside sentences (io/augment_clause.h)
  double rate = 0.1;      // synonym: probability per word; reorder: probability per text;
                          // clause: probability per sentence
  uint64_t seed = 0;
  int64_t copies = 1;     // augmented copies added per training record (originals kept)
};

// Parses "synonym,reorder,clause" (any of them); UserError naming [data] augment otherwise.
AugmentOptions parse_augment(const std::string& list, double rate, uint64_t seed, int64_t copies);

class Augmenter {
 public:
  // `synsets` (read_wordnet) supply the synonyms: the other single-word lemmas of every synset a
  // word belongs to, in file order.
  Augmenter(const std::vector<Synset>& synsets, AugmentOptions options);
  // The augmented form of `text`, a pure function of (seed, stream, text): the same inputs give
  // the same output on every platform (own xorshift generator, no std::distribution).
  std::string augment(const std::string& text, uint64_t stream) const;
  // Augments prompt, response and every multi-turn message; stream = record index * copies + copy.
  Record augment(const Record& record, uint64_t stream) const;
  // originals followed by `copies` augmented copies of each (copies that come out identical to
  // their original are dropped: they add nothing).
  std::vector<Record> expand(const std::vector<Record>& records) const;
  // Synonyms known for `word` (lower case), for tests and docs.
  const std::vector<std::string>* synonyms(const std::string& word) const;

 private:
  std::string replace_synonyms(const std::string& text, uint64_t& state) const;
  std::string reorder_sentences(const std::string& text, uint64_t& state) const;

  AugmentOptions options_;
  std::unordered_map<std::string, std::vector<std::string>> synonyms_;
};

}  // namespace shardtune::io
