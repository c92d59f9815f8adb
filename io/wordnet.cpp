// WordNet 3.0 database reader (format: wndb(5)) and the gloss / define tasks built from it.
//
// The four data files are ~22 MB together and parsed on every run of the demo, so the parser reads
// each file whole and walks it with string_views and from_chars: no regex, no per-line streams.
#include "io/wordnet.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <map>
#include <utility>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "base/errors.h"
#include "base/hash.h"
#include "base/strings.h"

namespace shardtune::io {
namespace {

// lexnames(5): the lexicographer files, by number.
constexpr int kMaxLexFilenum = 44;
const char* const kLexnames[kMaxLexFilenum + 1] = {
    "adj.all",          "adj.pert",         "adv.all",           "noun.Tops",
    "noun.act",         "noun.animal",      "noun.artifact",     "noun.attribute",
    "noun.body",        "noun.cognition",   "noun.communication", "noun.event",
    "noun.feeling",     "noun.food",        "noun.group",        "noun.location",
    "noun.motive",      "noun.object",      "noun.person",       "noun.phenomenon",
    "noun.plant",       "noun.possession",  "noun.process",      "noun.quantity",
    "noun.relation",    "noun.shape",       "noun.state",        "noun.substance",
    "noun.time",        "verb.body",        "verb.change",       "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation",    "verb.emotion",     "verb.motion",       "verb.perception",
    "verb.possession",  "verb.social",      "verb.stative",      "verb.weather",
    "adj.ppl"};

struct DataFile {
  const char* name;
  std::string_view ss_types;  // synset types allowed in this file (data.adj holds satellites too)
};

// Order matters: it is the order of read_wordnet's result and hence of every record list.
constexpr DataFile kDataFiles[] = {
    {"data.noun", "n"}, {"data.verb", "v"}, {"data.adj", "as"}, {"data.adv", "r"}};

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UserError(path + ": cannot open");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw UserError(path + ": cannot read");
  std::string data(static_cast<size_t>(size), '\0');
  in.seekg(0, std::ios::beg);
  if (size > 0 && !in.read(data.data(), size)) throw UserError(path + ": cannot read");
  return data;
}

template <typename T>
bool parse_number(std::string_view s, int base, T& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

// Lemma as shown to a model: "domestic_dog" -> "domestic dog"; adjectives may carry a syntactic
// marker, "galore(ip)" / "ready_to_hand(p)" / "(a)", which is not part of the word.
std::string clean_word(std::string_view raw) {
  for (std::string_view marker : {"(a)", "(p)", "(ip)"}) {
    if (raw.size() > marker.size() && raw.substr(raw.size() - marker.size()) == marker) {
      raw.remove_suffix(marker.size());
      break;
    }
  }
  std::string word(raw);
  for (char& c : word) {
    if (c == '_') c = ' ';
  }
  return word;
}

// The definition is the gloss before its examples, which start at the first `; "`.
std::string_view definition_of(std::string_view gloss) {
  const size_t examples = gloss.find("; \"");
  return base::trim(examples == std::string_view::npos ? gloss : gloss.substr(0, examples));
}

// Parses one synset line:
//   offset lex_filenum ss_type w_cnt(hex) {word lex_id} p_cnt {sym offset pos src/tgt}
//   [f_cnt {+ f_num w_num}]   (data.verb only)   | gloss
// `fields` is scratch space reused across lines to avoid reallocating.
Synset parse_synset(std::string_view line, const DataFile& file, const std::string& where,
                    std::vector<std::string_view>& fields) {
  const size_t bar = line.find('|');
  if (bar == std::string_view::npos) throw UserError(where + ": no gloss ('|') on the line");
  fields.clear();
  const std::string_view head = line.substr(0, bar);
  for (size_t pos = 0; pos < head.size();) {
    const size_t space = head.find(' ', pos);
    const size_t end = space == std::string_view::npos ? head.size() : space;
    if (end > pos) fields.push_back(head.substr(pos, end - pos));
    pos = end + 1;
  }
  auto field = [&](size_t i, const char* what) -> std::string_view {
    if (i >= fields.size()) {
      throw UserError(where + ": line ends before " + what + " (" + std::to_string(fields.size()) +
                      " fields before '|')");
    }
    return fields[i];
  };

  Synset synset;
  const std::string_view offset = field(0, "the synset offset");
  if (offset.size() != 8 || !parse_number(offset, 10, synset.offset)) {
    throw UserError(where + ": bad synset offset '" + std::string(offset) + "'");
  }
  const std::string_view lex_filenum = field(1, "the lexicographer file number");
  if (lex_filenum.size() != 2 || !parse_number(lex_filenum, 10, synset.lex_filenum) ||
      synset.lex_filenum > kMaxLexFilenum) {
    throw UserError(where + ": bad lexicographer file number '" + std::string(lex_filenum) +
                    "' (two digits, 00..44)");
  }
  const std::string_view ss_type = field(2, "the synset type");
  if (ss_type.size() != 1 || file.ss_types.find(ss_type[0]) == std::string_view::npos) {
    throw UserError(where + ": synset type '" + std::string(ss_type) + "' does not belong in " +
                    file.name);
  }
  synset.pos = ss_type[0];

  const std::string_view w_cnt_text = field(3, "the word count");
  unsigned w_cnt = 0;
  if (!parse_number(w_cnt_text, 16, w_cnt) || w_cnt == 0) {
    throw UserError(where + ": bad word count '" + std::string(w_cnt_text) + "' (two hex digits)");
  }
  size_t i = 4;
  synset.words.reserve(w_cnt);
  for (unsigned w = 0; w < w_cnt; ++w, i += 2) {
    synset.words.push_back(clean_word(field(i, "all words are listed")));
    field(i + 1, "a word's lex_id");
  }

  const std::string_view p_cnt_text = field(i, "the pointer count");
  size_t p_cnt = 0;
  if (!parse_number(p_cnt_text, 10, p_cnt)) {
    throw UserError(where + ": bad pointer count '" + std::string(p_cnt_text) + "'");
  }
  i += 1 + 4 * p_cnt;
  if (i > fields.size()) {
    throw UserError(where + ": line ends before all " + std::to_string(p_cnt) +
                    " pointers are listed");
  }
  // Only verbs have sentence frames after the pointers; we validate their shape but do not use them.
  if (synset.pos == 'v' && i < fields.size()) {
    size_t f_cnt = 0;
    if (!parse_number(fields[i], 10, f_cnt)) {
      throw UserError(where + ": bad frame count '" + std::string(fields[i]) + "'");
    }
    i += 1 + 3 * f_cnt;
    if (i > fields.size()) {
      throw UserError(where + ": line ends before all " + std::to_string(f_cnt) +
                      " frames are listed");
    }
  }
  if (i != fields.size()) {
    throw UserError(where + ": unexpected field '" + std::string(fields[i]) + "' before '|'");
  }

  const std::string_view gloss = base::trim(line.substr(bar + 1));
  synset.gloss = std::string(gloss);
  synset.definition = std::string(definition_of(gloss));
  return synset;
}

void parse_data_file(const std::string& path, const DataFile& file, std::vector<Synset>& out) {
  const std::string data = read_whole_file(path);
  const std::string_view text(data);
  std::vector<std::string_view> fields;
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t newline = text.find('\n', pos);
    const size_t end = newline == std::string_view::npos ? text.size() : newline;
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // The license header: every line of it starts with two spaces; synset lines start with a digit.
    if (line.empty() || line.substr(0, 2) == "  ") continue;
    out.push_back(parse_synset(line, file, path + ":" + std::to_string(line_no), fields));
  }
}

void check_eval_percent(int eval_percent) {
  require(eval_percent >= 0 && eval_percent <= 100,
          "wordnet: eval_percent must be in [0, 100], got " + std::to_string(eval_percent));
}

}  // namespace

std::vector<Synset> read_wordnet(const std::string& dir) {
  std::vector<Synset> synsets;
  synsets.reserve(120000);  // WordNet 3.0 has 117659 synsets
  for (const DataFile& file : kDataFiles) {
    parse_data_file((std::filesystem::path(dir) / file.name).string(), file, synsets);
  }
  return synsets;
}

const std::string& lexname(int lex_filenum) {
  static const std::vector<std::string> names(std::begin(kLexnames), std::end(kLexnames));
  require(lex_filenum >= 0 && lex_filenum <= kMaxLexFilenum,
          "wordnet: lexicographer file number " + std::to_string(lex_filenum) +
              " is outside 0..44");
  return names[static_cast<size_t>(lex_filenum)];
}

namespace {
uint64_t synset_hash(const Synset& synset) {
  // The key is spelled out byte by byte (not via snprintf/locale) so it is identical everywhere.
  char key[9];
  key[0] = synset.pos;
  uint64_t offset = synset.offset;
  for (int d = 8; d >= 1; --d, offset /= 10) key[d] = static_cast<char>('0' + offset % 10);
  return base::fnv1a64(key, sizeof(key), base::kFnv1a64OffsetBasis);
}
const char* part_of_speech(char pos) {
  switch (pos) {
    case 'n':
      return "noun";
    case 'v':
      return "verb";
    case 'r':
      return "adverb";
    default:
      return "adjective";  // 'a' and its satellites 's'
  }
}

// Keeps, of each label, as many records as the rarest label has (the first ones in order), dealt
// round-robin: the i-th record of every label, in label order, then the (i+1)-th, so any prefix
// holds the labels equally often.
std::vector<Record> balanced(std::vector<Record> records) {
  std::map<std::string, std::vector<Record>> by_label;
  for (Record& r : records) by_label[r.response].push_back(std::move(r));
  size_t cap = by_label.empty() ? 0 : SIZE_MAX;
  for (const auto& entry : by_label) cap = std::min(cap, entry.second.size());
  std::vector<Record> out;
  out.reserve(cap * by_label.size());
  for (size_t i = 0; i < cap; ++i) {
    for (auto& entry : by_label) out.push_back(std::move(entry.second[i]));
  }
  return out;
}

}  // namespace

Split synset_split(const Synset& synset, int eval_percent) {
  check_eval_percent(eval_percent);
  return static_cast<int>(synset_hash(synset) % 100) < eval_percent ? Split::kEval : Split::kTrain;
}

std::vector<Record> wordnet_records(const std::vector<Synset>& synsets, WordNetTask task,
                                    Split split, int eval_percent) {
  check_eval_percent(eval_percent);
  std::vector<Record> records;
  records.reserve(synsets.size());
  std::vector<std::pair<uint64_t, size_t>> order;  // kLexname: (hash, index in records)
  for (const Synset& synset : synsets) {
    if (synset.words.empty() || synset_split(synset, eval_percent) != split) continue;
    const std::string& word = synset.words.front();
    if (task == WordNetTask::kGlosses) {
      records.push_back(Record{"", word + ": " + synset.definition});
    } else if (task == WordNetTask::kDefine) {
      records.push_back(Record{"define: " + word + "\n", synset.definition});
    } else {  // a label from the gloss: lexname or pos
      const bool pos = task == WordNetTask::kPos;
      order.emplace_back(synset_hash(synset), records.size());
      records.push_back(Record{
          word + ": " + synset.definition + (pos ? "\npart of speech: " : "\ncategory: "),
          pos ? std::string(part_of_speech(synset.pos)) : lexname(synset.lex_filenum)});
    }
  }
  if (task != WordNetTask::kLexname && task != WordNetTask::kPos) return records;
  std::sort(order.begin(), order.end());  // ties (none in WordNet 3.0) keep file order
  std::vector<Record> shuffled;
  shuffled.reserve(records.size());
  for (const auto& entry : order) shuffled.push_back(std::move(records[entry.second]));
  return task == WordNetTask::kPos ? balanced(std::move(shuffled)) : shuffled;
}

}  // namespace shardtune::io
