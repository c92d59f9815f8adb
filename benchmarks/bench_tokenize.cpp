// Tokenizer encoding speed: MB/s of English text on one core (one thread), per tokenizer.
//
//   bench_tokenize [--reps R] [--text FILE] TOKENIZER_PATH...
//
// Text: WordNet's glosses (/usr/share/wordnet/data.*, Debian wordnet-base), grouped into
// documents of about 2 KB as JSONL records would hold them, or FILE's lines. Before timing, every
// document must round-trip (decode(encode(doc)) == doc) so a fast wrong encoder cannot pass.
// Timed: encode() of every document, R times; the first pass starts with empty per-thread caches
// ("cold"), the others reuse them ("warm", the steady state of a long preprocessing run). Prints
// the machine, date, compiler and each tokenizer's identity with the figures, as JSON.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "io/tokenizers/loader.h"
#include "base/errors.h"

using namespace shardtune::io::tokenizers;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::vector<std::string> wordnet_documents() {
  std::vector<std::string> docs;
  std::string doc;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    std::ifstream in(std::string("/usr/share/wordnet/data.") + pos);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("  ", 0) == 0) continue;  // licence header
      const auto bar = line.find(" | ");
      if (bar == std::string::npos) continue;
      std::string gloss = line.substr(bar + 3);
      while (!gloss.empty() && (gloss.back() == ' ' || gloss.back() == '\r')) gloss.pop_back();
      // WordNet is Latin-1; keep the documents ASCII-clean UTF-8 by dropping the rare high bytes.
      gloss.erase(std::remove_if(gloss.begin(), gloss.end(), [](char c) { return c & 0x80; }), gloss.end());
      doc += gloss;
      doc += doc.size() > 2000 ? "\n" : " ";
      if (doc.size() > 2000) {
        docs.push_back(std::move(doc));
        doc.clear();
      }
    }
  }
  if (!doc.empty()) docs.push_back(doc);
  return docs;
}

std::vector<std::string> file_documents(const std::string& path) {
  std::vector<std::string> docs;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) docs.push_back(line + "\n");
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  std::string text_file;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) reps = std::max(2, std::atoi(argv[++i]));
    else if (a == "--text" && i + 1 < argc) text_file = argv[++i];
    else paths.push_back(a);
  }
  if (paths.empty()) {
    std::fprintf(stderr, "usage: bench_tokenize [--reps R] [--text FILE] TOKENIZER_PATH...\n");
    return 2;
  }
  const auto docs = text_file.empty() ? wordnet_documents() : file_documents(text_file);
  std::size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  if (bytes == 0) {
    std::fprintf(stderr, "bench_tokenize: no text (install wordnet-base or pass --text FILE)\n");
    return 2;
  }

  utsname u{};
  uname(&u);
  char date[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  std::printf("{\n  \"benchmark\": \"bench_tokenize\",\n  \"date\": \"%s\",\n  \"machine\": \"%s, %ld online CPUs, %s %s\",\n"
              "  \"compiler\": \"%s\",\n  \"text\": \"%s\",\n  \"documents\": %zu,\n  \"bytes\": %zu,\n"
              "  \"threads\": 1,\n  \"results\": [\n",
              date, cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release,
              __VERSION__, text_file.empty() ? "WordNet glosses, ~2 KB documents" : text_file.c_str(),
              docs.size(), bytes);
  try {
    for (std::size_t p = 0; p < paths.size(); ++p) {
      const double t0 = now();
      const auto tok = load_tokenizer(paths[p]);
      const double load_s = now() - t0;
      // Correctness first.
      std::size_t tokens = 0;
      for (const auto& d : docs) {
        const auto ids = tok->encode(d);
        tokens += ids.size();
        if (tok->decode(ids) != d) {
          std::fprintf(stderr, "bench_tokenize: %s does not round-trip a document\n", paths[p].c_str());
          return 1;
        }
      }
      // The verification pass warmed this thread's cache; time a cold pass on a fresh thread's
      // worth of state by loading the tokenizer again (a new model starts with an empty cache).
      const auto cold_tok = load_tokenizer(paths[p]);
      std::vector<double> seconds;
      for (int r = 0; r < reps; ++r) {
        const auto& which = r == 0 ? *cold_tok : *tok;
        const double s = now();
        std::size_t n = 0;
        for (const auto& d : docs) n += which.encode(d).size();
        seconds.push_back(now() - s);
        if (n != tokens) {
          std::fprintf(stderr, "bench_tokenize: token count changed between passes\n");
          return 1;
        }
      }
      std::vector<double> warm(seconds.begin() + 1, seconds.end());
      std::sort(warm.begin(), warm.end());
      const double median = warm[warm.size() / 2];
      std::printf("    {\"tokenizer\": \"%s\", \"identity\": \"%s\", \"load_s\": %.3f, \"tokens\": %zu,\n"
                  "     \"bytes_per_token\": %.2f, \"cold_mb_per_s\": %.2f, \"warm_mb_per_s\": %.2f}%s\n",
                  paths[p].c_str(), tok->identity().c_str(), load_s, tokens,
                  static_cast<double>(bytes) / tokens, bytes / 1e6 / seconds[0], bytes / 1e6 / median,
                  p + 1 < paths.size() ? "," : "");
    }
  } catch (const shardtune::UserError& e) {
    std::fprintf(stderr, "bench_tokenize: %s\n", e.what());
    return 2;
  }
  std::printf("  ]\n}\n");
  return 0;
}
