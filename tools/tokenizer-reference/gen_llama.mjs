// Generates tests/tokenizer/fixtures/llama2_texts.jsonl: real texts and the Llama-2 ids that
// llama-tokenizer-js (an independent JavaScript implementation with its own bundled Llama vocabulary and
// merges) gives for them, without BOS, as Hugging Face's LlamaTokenizer(add_special_tokens=False) would.
//
//   cd tools/tokenizer-reference && npm ci && node gen_llama.mjs [path/to/shared]
//
// First line: {"vocab": [...]} — llama-tokenizer-js's piece for every id, so the test can check that the
// bundled vocabulary is Llama-2's. Then one {"source", "text", "ids"} object per text.
//
// Hugging Face splits the text of special tokens ("<unk>", "<s>", "</s>") out before sentencepiece runs,
// and encodes each remaining segment on its own (each gets the dummy prefix). llama-tokenizer-js knows
// nothing of special tokens, so for texts containing them (WikiText's "<unk>") this script does that
// split and encodes the segments separately.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const shared = path.resolve(process.argv[2] || path.join(repo, '..', 'shared'));
const out = path.join(repo, 'tests', 'tokenizer', 'fixtures', 'llama2_texts.jsonl');

const SPECIAL = [['<unk>', 0], ['<s>', 1], ['</s>', 2]];

function encodeLikeHf(text) {
  const ids = [];
  let segmentStart = 0;
  let pos = 0;
  const flush = (end) => {
    if (end > segmentStart) ids.push(...llamaTokenizer.encode(text.slice(segmentStart, end), false, true));
  };
  while (pos < text.length) {
    const hit = SPECIAL.find(([s]) => text.startsWith(s, pos));
    if (!hit) { pos++; continue; }
    flush(pos);
    ids.push(hit[1]);
    pos += hit[0].length;
    segmentStart = pos;
  }
  flush(text.length);
  return ids;
}

// Every k-th element, so the selection spreads over the whole source.
const spread = (items, count) => {
  const step = Math.max(1, Math.floor(items.length / count));
  return items.filter((_, i) => i % step === 0).slice(0, count);
};

const texts = [];
const bbhDir = path.join(shared, 'data', 'eval', 'bbh', 'bbh');
for (const file of fs.readdirSync(bbhDir).filter((f) => f.endsWith('.json')).sort()) {
  const examples = JSON.parse(fs.readFileSync(path.join(bbhDir, file), 'utf8')).examples;
  spread(examples, 16).forEach((e, i) => texts.push({ source: `bbh/${file}#${i}`, text: e.input }));
}
const humaneval = zlib.gunzipSync(fs.readFileSync(path.join(shared, 'data', 'eval', 'humaneval', 'HumanEval.jsonl.gz')))
  .toString('utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
humaneval.forEach((p) => texts.push({ source: p.task_id, text: p.prompt }));
const wikiLines = fs.readFileSync(path.join(shared, 'data', 'corpus', 'wikitext-2-test.txt'), 'utf8')
  .split('\n').filter((l) => l.trim().length > 0);
spread(wikiLines, 300).forEach((l, i) => texts.push({ source: `wikitext-2-test#${i}`, text: l }));
const paragraphs = fs.readFileSync(path.join(shared, 'data', 'corpus', 'tinyshakespeare.txt'), 'utf8').split('\n\n');
spread(paragraphs, 200).forEach((p, i) => texts.push({ source: `tinyshakespeare#${i}`, text: p }));

const lines = [JSON.stringify({ vocab: llamaTokenizer.vocabById })];
for (const t of texts) lines.push(JSON.stringify({ source: t.source, text: t.text, ids: encodeLikeHf(t.text) }));
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, lines.join('\n') + '\n');
console.log(`${out}: ${texts.length} texts, ${fs.statSync(out).size} bytes`);
