// Reader for WordNet 3.0's database files (Debian package wordnet-base: /usr/share/wordnet),
// and the two tasks the demo trains on: glosses (language modelling) and "define: WORD" -> gloss.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace shardtune::io {

inline constexpr const char* kDefaultWordNetDir = "/usr/share/wordnet";

struct Synset {
  uint64_t offset = 0;               // byte offset in its data file (the synset id)
  char pos = 'n';                    // n, v, a, s, r
  int lex_filenum = 0;               // lexicographer file, 0..44 (lexname() gives its name)
  std::vector<std::string> words;    // lemmas, underscores turned into spaces
  std::string definition;            // gloss text before the first example / ';' "quote"
  std::string gloss;                 // whole gloss after '|'
};

// Parses data.noun, data.verb, data.adj, data.adv under `dir` (license header lines skipped).
// Throws UserError naming the file (and line) when a file is missing or malformed.
std::vector<Synset> read_wordnet(const std::string& dir);

// The name of lexicographer file `lex_filenum` (wndb(5), lexnames(5)): "noun.artifact",
// "verb.motion", "adj.all", ...; UserError outside 0..44.
const std::string& lexname(int lex_filenum);

enum class WordNetTask { kGlosses, kDefine, kLexname, kPos };
enum class Split { kTrain, kEval };

// Which side of the split a synset falls on: FNV-1a 64 of its pos character followed by its
// offset as 8 zero-padded decimal digits (exactly as in the data file), mod 100 < eval_percent ->
// kEval. Stable across platforms and runs (no std::hash). Satellites hash with pos 's'.
// Throws UserError unless 0 <= eval_percent <= 100.
Split synset_split(const Synset& synset, int eval_percent);

// Deterministic split by synset (hash of pos + offset): eval_percent of synsets are held out of
// *both* tasks, so fine-tuning is evaluated on words whose glosses were never seen in pretraining.
//   kGlosses: Record{"", "WORD: definition"} per synset
//   kDefine:  Record{"define: WORD\n", definition} for the synset's first lemma
//   kLexname: Record{"WORD: definition\ncategory: ", lexname} (a 45-way classification of the
//             synset's lexicographer category from its gloss)
//   kPos:     Record{"WORD: definition\npart of speech: ", noun|verb|adjective|adverb}, the
//             four classes balanced: each keeps as many synsets as the rarest (adverbs) has on
//             that side of the split, the first ones in the split's hash order, dealt
//             round-robin (adjective, adverb, noun, verb, adjective, ...)
// Records keep the order of `synsets` (read_wordnet: noun, verb, adj, adv; file order within),
// except kLexname's and kPos's: the data files group synsets by lexicographer file, so a prefix of
// that order (max_eval_samples) would hold two or three categories; their records are ordered by
// the split's hash instead (a fixed pseudo-random order, any prefix a fair sample).
std::vector<Record> wordnet_records(const std::vector<Synset>& synsets, WordNetTask task,
                                    Split split, int eval_percent);

}  // namespace shardtune::io
