#!/usr/bin/env python3
"""Fixture for tests/tokenizer/test_bpe_trainer.cpp: HF `tokenizers` (PyPI) encodings of texts with the
tokenizers `fusellm train-tokenizer` learns (tests/tokenizer/fixtures/trained_bpe_reference.json).

  FUSELLM_KEEP_TRAINED_BPE=/tmp/bpe build/tests/test_tokenizer --gtest_filter='BpeTrainer.Encodes*'
      # (fails when the fixture lacks a tokenizer) writes /tmp/bpe/<style> for the four styles below
  /tmp/refenv/bin/python tools/tokenizer-reference/check_trained_bpe.py ../shared /tmp/bpe \\
      tests/tokenizer/fixtures/trained_bpe_reference.json

Styles: byte-level, metaspace, byte-level-digits (--split-digits: HF Digits before ByteLevel) and
metaspace-spm (--spm-rules: digits, letters and other characters never merged together, no line breaks
in a token). All were trained (vocabulary 1000) on the non-blank lines among the first 4000 of
../shared/data/corpus/tinyshakespeare.txt, as `train-tokenizer --txt-mode line` reads them. The texts encoded: the first 600 non-empty lines of wikitext-2-test.txt and of
tinystories_sample.txt (all it has), 600 of tinyshakespeare.txt after the training lines, plus hand-written ones (Unicode, byte fallback, runs of spaces, tabs, newlines).
Per tokenizer and text: the sha256 of the ids joined by ","; the ids themselves for the first 40 texts.
"""
import hashlib
import json
import sys

from tokenizers import Tokenizer

EXTRA = ["", " ", "  leading spaces", "trailing  ", "tab\there", "new\nline", "multi\n\n\nnewlines", "a  b   c    d",
         "café naïve façade", "Straße über", "日本語のテキスト", "emoji 🙂🚀 mix", "ZWSP\u200bhere", "NBSP\u00a0here",
         "CRLF\r\nline", "<s> not special here", "</s>", "<|endoftext|> inside", "¿Qué? ¡Sí!", "Ελληνικά", "ÅÄÖ",
         "x" * 300, "1234567890 3.14159 -42", "'s 're 've 'll 'd 'm 't", "   ", "\t\t", "ǅ ǈ ǋ", "\u0301combining"]


def texts(shared):
    out = []
    for name, skip in [("wikitext-2-test.txt", 0), ("tinystories_sample.txt", 0), ("tinyshakespeare.txt", 4000)]:
        n = 0
        for k, line in enumerate(open(f"{shared}/data/corpus/{name}", encoding="utf-8")):
            if k < skip:  # tiny Shakespeare's first 4000 lines trained the tokenizers
                continue
            line = line.rstrip("\n")
            if not line.strip():
                continue
            out.append(line)
            n += 1
            if n == 600:
                break
    return out + EXTRA


def main():
    shared, root, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    styles = ["byte-level", "metaspace", "byte-level-digits", "metaspace-spm"]
    dirs = [f"{root}/{s}" for s in styles]
    all_texts = texts(shared)
    fixture = {"texts": len(all_texts), "extra": EXTRA, "tokenizers": {}}
    import tokenizers
    fixture["tokenizers_version"] = tokenizers.__version__
    for style, d in zip(styles, dirs):
        tok = Tokenizer.from_file(d + "/tokenizer.json")
        raw = open(d + "/tokenizer.json", "rb").read()
        entry = {"tokenizer_json_sha256": hashlib.sha256(raw).hexdigest(), "hashes": [], "ids": []}
        for i, t in enumerate(all_texts):
            ids = tok.encode(t).ids
            entry["hashes"].append(hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16])
            if i < 40:
                entry["ids"].append(ids)
            # Byte-level decoding gives the text back (a special token's text is skipped).
            assert tok.decode(ids, skip_special_tokens=True) == t or style.startswith("metaspace") or "<|endoftext|>" in t, (style, t)
        fixture["tokenizers"][style] = entry
        print(style, len(all_texts), "texts")
    json.dump(fixture, open(out_path, "w"), indent=0)


if __name__ == "__main__":
    main()
