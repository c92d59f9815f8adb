// Writes the ids that independent JavaScript tokenizers give for a corpus, as JSON on stdout:
//   {"texts": [...], "ids": {"gpt2": [[...], ...], "llama3": [...], ...}}
// The C++ tests (tests/test_tokenizers_reference.cpp) run this at test time and compare.
// Encoders: gpt-3-encoder (GPT-2 BPE), @lenml/tokenizers (a fork of transformers.js) for the
// tokenizer.json files, and @sctg/sentencepiece-js (SentencePiece compiled to WebAssembly).
//
// usage: node expected_ids.mjs ASSETS_DIR CORPUS.json [WORDNET_DIR]
import { createRequire } from "module";
import { readFileSync, existsSync } from "fs";
import path from "path";

const [assetsArg, corpusFile, wordnetDir] = process.argv.slice(2);
const assets = path.resolve(assetsArg);
const require = createRequire(path.join(assets, "node", "package.json"));
const gpt2 = require("gpt-3-encoder");
const { TokenizerLoader } = require("@lenml/tokenizers");

const texts = JSON.parse(readFileSync(corpusFile, "utf8"));

// English prose: WordNet glosses, every 97th synset of each part of speech (deterministic).
if (wordnetDir) {
  for (const pos of ["noun", "verb", "adj", "adv"]) {
    const file = path.join(wordnetDir, "data." + pos);
    if (!existsSync(file)) continue;
    const lines = readFileSync(file, "latin1").split("\n").filter((l) => !l.startsWith("  "));
    for (let i = 0; i < lines.length; i += 97) {
      const bar = lines[i].indexOf(" | ");
      if (bar >= 0) texts.push(lines[i].slice(bar + 3).trim());
    }
  }
}

// Random strings over characters of many Unicode classes (seeded, so the corpus is fixed).
const pool = Array.from(
  "abcXYZ019 ,.;:'\"!?-_()[]{}<>/\\@#$%^&*+=~`|\t\n\r" +
  "éüßçñøÆŒ" + "αβγΩ" + "жЯщ" + "中文字学習" + "ひらカタ" + "한글" + "عربي" + "हिन्दी" +
  "٣٤½²" + "\u00a0\u3000\u2003" + "\u0301\u0308" + "😀🚀🌍👍🏽\u200d♀️" + "€©™…—«»");
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
for (let n = 0; n < 300; ++n) {
  const len = 1 + Math.floor(rand() * 40);
  let s = "";
  for (let i = 0; i < len; ++i) s += pool[Math.floor(rand() * pool.length)];
  texts.push(s);
}

const out = { texts, ids: {} };
out.ids.gpt2 = texts.map((t) => gpt2.encode(t));
for (const name of ["llama3", "qwen3", "llama2"]) {
  const dir = path.join(assets, name);
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
  out.ids[name] = texts.map((t) => tok.encode(t, { add_special_tokens: false }));
}

const sp = await import(path.join(assets, "node", "node_modules", "@sctg", "sentencepiece-js",
                                  "dist", "index.js"));
for (const [name, file] of [["sp_llama2", "llama2.model"], ["sp_albert", "albert-30k-clean.model"]]) {
  const proc = new sp.SentencePieceProcessor();
  await proc.loadFromB64StringModel(readFileSync(path.join(assets, "sentencepiece", file)).toString("base64"));
  out.ids[name] = texts.map((t) => Array.from(proc.encodeIds(t)));
}
process.stdout.write(JSON.stringify(out));
