#!/usr/bin/env python3
"""Parquet files written by pyarrow for tests/data/test_parquet.cpp (tests/data/fixtures/parquet/), with the
values pyarrow reads back from each in expected.json.

  /tmp/refenv/bin/pip install pyarrow
  /tmp/refenv/bin/python tools/parquet-reference/make_fixtures.py tests/data/fixtures/parquet

Every file has a `text` column (strings with nulls, empty strings, Unicode, long ones that span pages) and
flat columns of the other physical types; they differ in codec (none, snappy, gzip, zstd), encoding
(plain or dictionary), data page version (1 or 2) and row-group size. `brotli.parquet` uses a codec fusellm
does not read (the error is tested); `nested.parquet` holds a list column (flat columns only are read).
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def table():
    texts, ids, scores, flags, small = [], [], [], [], []
    for i in range(230):
        if i % 17 == 5:
            texts.append(None)
        elif i % 23 == 7:
            texts.append("")
        elif i % 31 == 3:
            texts.append(("long line %d " % i) * 120)
        else:
            texts.append(["Once upon a time", "café naïve — 日本語 🙂", "line\nbreaks\tand tabs", "repeat"][i % 4] + " #%d" % (i % 9))
        ids.append(i * 1000003 - 5)
        scores.append(None if i % 11 == 0 else i / 7.0)
        flags.append(i % 3 == 0)
        small.append(None if i % 13 == 0 else (i % 50) - 25)
    return pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.string()),
                     "score": pa.array(scores, pa.float64()), "flag": pa.array(flags, pa.bool_()),
                     "small": pa.array(small, pa.int32())})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    t = table()
    variants = {
        "plain_none_v1.parquet": dict(compression="none", use_dictionary=False, data_page_version="1.0", row_group_size=100),
        "dict_snappy_v1.parquet": dict(compression="snappy", use_dictionary=True, data_page_version="1.0", row_group_size=64),
        "plain_gzip_v1.parquet": dict(compression="gzip", use_dictionary=False, data_page_version="1.0", row_group_size=230),
        "dict_zstd_v2.parquet": dict(compression="zstd", use_dictionary=True, data_page_version="2.0", row_group_size=50),
        "plain_snappy_v2.parquet": dict(compression="snappy", use_dictionary=False, data_page_version="2.0", row_group_size=120),
        "brotli.parquet": dict(compression="brotli", use_dictionary=False, data_page_version="1.0", row_group_size=230),
    }
    for name, kw in variants.items():
        pq.write_table(t, os.path.join(out, name), data_page_size=2048, **kw)
    pq.write_table(pa.table({"text": ["a", "b"], "tags": [["x"], ["y", "z"]]}), os.path.join(out, "nested.parquet"))
    # PIQA in the HF dataset's row layout (goal, sol1, sol2, label), as Parquet and as JSONL.
    piqa = [{"goal": "How do I ready a guinea pig cage for it's new occupants?",
             "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
             "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.",
             "label": 0},
            {"goal": "To make a cake moist,", "sol1": "add a spoon of mayonnaise.", "sol2": "add a cup of sand.", "label": 0},
            {"goal": "Keep café coffee warm", "sol1": "leave it in the sun", "sol2": "use a thermos — it works", "label": 1}]
    pq.write_table(pa.Table.from_pylist(piqa), os.path.join(out, "piqa_rows.parquet"), compression="snappy")
    with open(os.path.join(out, "piqa_rows.jsonl"), "w") as f:
        for r in piqa:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    back = pq.read_table(os.path.join(out, "plain_none_v1.parquet")).to_pydict()
    expected = {"pyarrow": pa.__version__, "rows": len(back["text"]), "columns": back,
                "row_groups": {n: pq.ParquetFile(os.path.join(out, n)).num_row_groups for n in variants}}
    for n in variants:
        if n != "brotli.parquet":
            assert pq.read_table(os.path.join(out, n)).to_pydict() == back, n
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=0, ensure_ascii=False)
    print({n: os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)})


if __name__ == "__main__":
    main()
