#!/usr/bin/env python3
"""Writes the hand-made regression inputs under fuzz/regressions/ (standard library only).

Each one is a finding of issue 15's black-box check or an attack the readers must refuse; fuzzer-found
crashes are added next to them as libFuzzer minimized them (their names say so).
  python3 tools/fuzz/make_regressions.py
"""
import io
import json
import os
import struct
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "regressions")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def section(name, body, first=False):
    head = ("" if first else "\n") + "#@ " + name + "\n"
    return head.encode() + (body if isinstance(body, bytes) else body.encode())


def llama_config(layers):
    return json.dumps({"model_type": "llama", "vocab_size": 32, "hidden_size": 8, "intermediate_size": 16,
                       "num_attention_heads": 2, "num_hidden_layers": layers, "max_position_embeddings": 64})


def safetensors(tensors):
    header, data = {}, b""
    for name, shape in tensors:
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += b"\0" * n
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


# The black-box hangs: a config claiming 10^6 or 2^31 layers (model_config reads it alone), and one within
# the sane maximum whose checkpoint holds a single layer.
put("model_config", "num-layers-1e6.json", llama_config(1000000))
put("model_config", "num-layers-2e31.json", llama_config(2 ** 31))
put("model_config", "num-layers-2000-one-stored",
    section("config.json", llama_config(2000), first=True) +
    section("model.safetensors", safetensors([("model.layers.0.input_layernorm.weight", [8])])))
put("model_config", "vocab-2e40.json", json.dumps({**json.loads(llama_config(2)), "vocab_size": 2 ** 40}))
# A number JSON cannot hold (found by libFuzzer: nlohmann's out_of_range escaped the reader).
put("model_config", "number-overflow.json", llama_config(1).replace('"vocab_size": 32', '"vocab_size": 11e309'))

# A pre-tokenizer regex that backtracks exponentially on a run of a's not followed by the end.
tokenizer = {"version": "1.0", "added_tokens": [], "normalizer": None, "post_processor": None,
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated",
                               "invert": False},
             "decoder": None,
             "model": {"type": "BPE", "dropout": None, "unk_token": None, "vocab": {"a": 0, "b": 1}, "merges": []}}
put("tokenizer_json", "backtracking-regex",
    section("tokenizer.json", json.dumps(tokenizer), first=True) + section("text", "a" * 64 + "b"))

# torch.save archive whose pickle names os.system (a code-execution payload under Python's pickle).
pickle = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echo\x85R."
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
    for name, body in (("archive/data.pkl", pickle), ("archive/version", "3\n")):
        z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), body)  # fixed time: same bytes each run
put("torch_bin", "os-system-global.bin", buffer.getvalue())

# A safetensors header whose shape product overflows 64 bits while the offsets look small.
put("safetensors", "shape-product-overflow.safetensors",
    struct.pack("<Q", 96) + json.dumps({"w": {"dtype": "F32", "shape": [2 ** 32, 2 ** 32, 16],
                                              "data_offsets": [0, 0]}}).encode().ljust(96))

# Trainer state (a training output directory): a ZeRO shard table whose slice offset + length overflows
# 64 bits, and one whose shard file name climbs out of trainer_state/zero/ to the weights.
weights = safetensors([("w", [4])])
for name, slices, file in (("zero-slice-overflow", [["w", 2 ** 63 - 1, 2]], "rank-00000-of-00001.safetensors"),
                           ("zero-shard-path-escape", [["w", 0, 4]], "../../model.safetensors")):
    state = {"format": "fusellm.train_state", "version": 1, "step": 1, "total_steps": 1, "loader": {},
             "zero": {"stage": 1, "world_size": 1, "kinds": ["master", "exp_avg", "exp_avg_sq"],
                      "shards": [{"file": file, "bytes": len(weights), "xxh3": "0", "slices": slices}]}}
    put("train_state", name,
        section("checkpoints/latest", "step-00000001", first=True) +
        section("checkpoints/step-00000001/model.safetensors", weights) +
        section("checkpoints/step-00000001/trainer_state/state.json", json.dumps(state)) +
        section("checkpoints/step-00000001/trainer_state/zero/rank-00000-of-00001.safetensors", weights))
