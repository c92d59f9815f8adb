"""A FreeDict dictionary of Debian's dict-freedict-* packages as prompt/response JSONL.

usage: freedict_jsonl.py PAIR OUT_DIR [--dictd DIR] [--eval-percent P]
  PAIR: e.g. eng-fra (reads DIR/freedict-PAIR.index and .dict.dz, DIR = /usr/share/dictd)
  writes OUT_DIR/train.jsonl and OUT_DIR/eval.jsonl: {"prompt": "absolve = ", "response": "absoudre"}

Each headword gives one record: its first translation (the first item of the first sense). The
held-out split is a hash of the headword, so it is the same for every pair and every run.
dictd's index: one line per headword, "headword TAB offset TAB length" with offset and length in
dictd's base64 digits; the .dict.dz file is gzip (dictzip) text, read whole.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import sys

DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(text, where):
    value = 0
    for ch in text:
        digit = DIGITS.find(ch)
        if digit < 0:
            sys.exit(f"freedict_jsonl: {where}: '{text}' is not a dictd number")
        value = value * 64 + digit
    return value


def first_translation(entry):
    """Entry text: 'headword /ipa/' then senses, numbered ('1. a, b') or not ('a, b')."""
    lines = [line.strip() for line in entry.splitlines()[1:] if line.strip()]
    if not lines:
        return None
    sense = re.sub(r"^\d+\.\s*", "", lines[0])
    sense = re.sub(r"\([^)]*\)", "", sense)  # usage notes such as (animal)
    first = sense.split(",")[0].split(";")[0].strip()
    return first or None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pair")
    ap.add_argument("out_dir")
    ap.add_argument("--dictd", default="/usr/share/dictd")
    ap.add_argument("--eval-percent", type=int, default=5)
    a = ap.parse_args()
    index = os.path.join(a.dictd, f"freedict-{a.pair}.index")
    text_path = os.path.join(a.dictd, f"freedict-{a.pair}.dict.dz")
    for path in (index, text_path):
        if not os.path.exists(path):
            sys.exit(f"freedict_jsonl: {path} missing (Debian package dict-freedict-{a.pair})")
    data = gzip.open(text_path).read()
    seen = set()
    splits = {"train": [], "eval": []}
    with open(index, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                sys.exit(f"freedict_jsonl: {index}:{number}: expected 3 tab-separated fields")
            word, offset, length = fields
            if word.startswith("00database") or word in seen:
                continue
            start = b64(offset, f"{index}:{number}")
            end = start + b64(length, f"{index}:{number}")
            if end > len(data):
                sys.exit(f"freedict_jsonl: {index}:{number}: entry beyond the end of {text_path}")
            translation = first_translation(data[start:end].decode("utf-8", "replace"))
            if translation is None:
                continue
            seen.add(word)
            bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % 100
            split = "eval" if bucket < a.eval_percent else "train"
            splits[split].append({"prompt": f"{word} = ", "response": translation})
    os.makedirs(a.out_dir, exist_ok=True)
    for split, records in splits.items():
        with open(os.path.join(a.out_dir, f"{split}.jsonl"), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{a.pair}: {len(splits['train'])} train, {len(splits['eval'])} held-out records "
          f"-> {a.out_dir}")


if __name__ == "__main__":
    main()
