// Clause reordering ([data] augment = clause): inside each sentence, the clauses and phrases
// between commas, semicolons and coordinating conjunctions trade places, while the joints stay at
// their positions: "When it rains, the road floods, and we stay home." may become "The road
// floods, we stay home, and when it rains." The third text perturbation next to WordNet synonyms
// and sentence reordering (io/augment.h); deterministic per seed. Free of LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardtune::io {

// splitmix64: a portable generator whose sequence is fixed by its seed (the augmentations' one).
uint64_t augment_next(uint64_t& state);
// Uniform in [0, 1) with 53 random bits.
double augment_uniform(uint64_t& state);

// A sentence cut at its joints: clauses[0] joints[0] clauses[1] ... joints[n-2] clauses[n-1]
// reproduces it byte for byte.
struct ClauseSplit {
  std::vector<std::string> clauses;
  std::vector<std::string> joints;
};

// Joints are ", " and "; " (with the spaces after them, and a coordinating conjunction that
// follows: ", and "), and " and ", " but ", " or ", " nor ", " yet ", " so " between words
// ("for" is left out: it is mostly a preposition). Commas and conjunctions inside (), [], {} or
// double quotes are not joints, nor is a comma without a space after it ("1,000"). A joint that
// would leave an empty clause is not one.
ClauseSplit split_clauses(const std::string& sentence);

// Each sentence of `text` (ending at '.', '!' or '?' followed by whitespace, or at the end of the
// text; the terminator stays in place) with at least two clauses is reordered with probability
// `rate`: its clauses are shuffled (Fisher-Yates from `state`) and rejoined with the joints in
// their original order. The sentence's first letter stays capitalised: the clause that lands
// first gets an upper-case initial, and a clause that leaves the front gets a lower-case one
// unless its first word looks like a name ("I", or a second letter that is upper case). One draw
// per sentence for the decision, whatever its clause count, keeps the stream aligned with the
// text.
std::string reorder_clauses(const std::string& text, double rate, uint64_t& state);

}  // namespace shardtune::io
