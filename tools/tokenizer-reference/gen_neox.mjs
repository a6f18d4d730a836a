// Generates the GPT-NeoX-20B fixtures of tests/tokenizer/test_hf_reference.cpp with Hugging Face's own
// tokenizers library (the `tokenizers` npm package: the Rust crate behind Python's tokenizers, prebuilt
// native binding, no network needed to load a local tokenizer.json):
//
//   cd tools/tokenizer-reference && npm ci && node gen_neox.mjs [path/to/shared]
//
// tests/tokenizer/fixtures/neox_texts.jsonl: one {"source", "text", "ids"[, "tokens", "offsets"]} per text
//   (offsets in code points, as the binding reports them; the test converts them to bytes).
//   Texts: BIG-Bench Hard inputs, HumanEval prompts, WikiText-2 lines, Tiny Shakespeare paragraphs, edge cases.
// tests/tokenizer/fixtures/neox_vocab_decode.json: {"vocab_size", "token_fnv1a64" (FNV-1a 64 over every
//   id's token string followed by "\n", ids in order), "token_sample" ([id, token] pairs),
//   "decode" ([ids, skip_special_tokens, text] triples, random id sequences included)}.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const shared = path.resolve(process.argv[2] || path.join(repo, '..', 'shared'));
const fixtures = path.join(repo, 'tests', 'tokenizer', 'fixtures');
const tokenizer = Tokenizer.fromFile(path.join(shared, 'data/tokenizers/gpt-neox-20b/20B_tokenizer.json'));

// A small deterministic PRNG (mulberry32) so the fixture is reproducible.
let seed = 20240117;
function random() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const every = (list, count) => list.filter((_, i) => i % Math.max(1, Math.floor(list.length / count)) === 0).slice(0, count);

const texts = [];
const add = (source, text) => { if (text.length > 0) texts.push({ source, text }); };

// BIG-Bench Hard inputs: 10 per task.
const bbhDir = path.join(shared, 'data/eval/bbh/bbh');
for (const file of fs.readdirSync(bbhDir).filter((f) => f.endsWith('.json')).sort()) {
  const examples = JSON.parse(fs.readFileSync(path.join(bbhDir, file), 'utf8')).examples;
  for (const ex of every(examples, 10)) add(`bbh/${file}`, ex.input);
}
// HumanEval prompts: 100.
const humaneval = zlib.gunzipSync(fs.readFileSync(path.join(shared, 'data/eval/humaneval/HumanEval.jsonl.gz')))
  .toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
for (const p of every(humaneval, 100)) add('humaneval', p.prompt);
// WikiText-2 lines (non-empty, as they are, leading space and trailing newline included): 250.
const wiki = fs.readFileSync(path.join(shared, 'data/corpus/wikitext-2-test.txt'), 'utf8').split('\n')
  .filter((l) => l.trim().length > 0).map((l) => l + '\n');
for (const l of every(wiki, 250)) add('wikitext', l);
// Tiny Shakespeare paragraphs: 360.
const shakespeare = fs.readFileSync(path.join(shared, 'data/corpus/tinyshakespeare.txt'), 'utf8').split('\n\n');
for (const p of every(shakespeare, 360)) add('tinyshakespeare', p);
// Edge cases: whitespace runs, special tokens inside text, Unicode that NFC changes, emoji, CJK, controls.
const edge = [
  'Hello world', ' Hello world', 'Hello  world', 'Hello   world', '\t\tindented\n\n\n', '   ', ' ', '\n', '\r\n\r\n',
  'a<|endoftext|>b', '<|endoftext|><|padding|>', 'text <|endoftext|> more', '<|endoftext', 'x                        y',
  'e\u0301cole cafe\u0301 \u212B\u2126 \u1100\u1161\u11A8 \uFB01ne', 'ﬁ ﬂ Ⅻ ① ㎏ Å', 'o\u0308\u0301 a\u0327\u0301',
  '🦙🦙 🦙.cpp 👨‍👩‍👧‍👦 🇫🇷 ❤️', '中文文本，测试。日本語のテキスト한국어 텍스트', 'Привет, мир! Ελληνικά العربية עברית',
  'control\u0001\u0002\u001f\u007f chars\u0085\u00a0nbsp\u2028sep\u3000ideo', 'zero\u200bwidth\u200d\ufeffbom',
  "I'm, you're, they've, we'll, it's, he'd — 'quoted' 'S 'T", "DON'T SHOUT I'M HERE", '1234567890 3.14159 1,000,000 ²³',
  'def f(x):\n    return x**2  # comment\n\n\tpass', '    leading spaces and trailing   ', '!!!???...,,,;;;',
  'mixed\u00e9\u0065\u0301 NFC vs NFD', '\u0345\u0300a', 'Ǆ ǅ ǆ İstanbul ß ẞ', '\ud83e\udd99', '€100 £5 ¥1000 ₹50',
];
for (const e of edge) add('edge', e);

const lines = [];
for (const { source, text } of texts) {
  const enc = await tokenizer.encode(text);
  // Token strings and offsets for every 4th text and all edge cases (keeps the fixture under 1.5 MB).
  const full = source === 'edge' || lines.length % 4 === 0;
  const record = { source, text, ids: enc.getIds() };
  if (full) Object.assign(record, { tokens: enc.getTokens(), offsets: enc.getOffsets() });
  lines.push(JSON.stringify(record));
}
fs.writeFileSync(path.join(fixtures, 'neox_texts.jsonl'), lines.join('\n') + '\n');

// Token strings of every id.
const vocabSize = tokenizer.getVocabSize(true);
let hash = 0xcbf29ce484222325n;
const mask = (1n << 64n) - 1n;
const sample = [];
for (let id = 0; id < vocabSize; ++id) {
  const token = tokenizer.idToToken(id);
  for (const byte of Buffer.from(token + '\n', 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & mask;
  if (id % 250 === 0 || id >= vocabSize - 30 || id < 300) sample.push([id, token]);
}
// Decoding: real encodings, then random id sequences (invalid UTF-8 included), with and without specials.
const decode = [];
for (const line of every(lines, 40)) {
  const { ids } = JSON.parse(line);
  decode.push([ids, false, await tokenizer.decode(ids, false)]);
}
for (let k = 0; k < 200; ++k) {
  const length = 1 + Math.floor(random() * 12);
  const ids = [];
  for (let i = 0; i < length; ++i) {
    const r = random();
    ids.push(r < 0.1 ? Math.floor(random() * 2) : r < 0.2 ? 50254 + Math.floor(random() * 23) : Math.floor(random() * vocabSize));
  }
  const skip = k % 2 === 1;
  decode.push([ids, skip, await tokenizer.decode(ids, skip)]);
}
fs.writeFileSync(path.join(fixtures, 'neox_vocab_decode.json'),
  JSON.stringify({ vocab_size: vocabSize, token_fnv1a64: hash.toString(16).padStart(16, '0'), token_sample: sample, decode }) + '\n');
console.log(`${texts.length} texts, ${sample.length} token samples, ${decode.length} decode cases`);
