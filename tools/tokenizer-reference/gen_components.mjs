// Generates tests/tokenizer/fixtures/hf_components.json: small hand-made tokenizer.json files, one per
// pipeline feature (byte-fallback BPE with Llama's normalizers and decoders, Metaspace, Split with every
// behavior, Digits, Whitespace, NFKC/Lowercase/Strip/Replace, added-token flags, TemplateProcessing), and
// what Hugging Face's tokenizers (the `tokenizers` npm package, the Rust crate's binding) makes of a set
// of texts with each: ids with and without special tokens, offsets (code points) and decodings.
//
//   cd tools/tokenizer-reference && npm ci && node gen_components.mjs
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', '..', 'tests', 'tokenizer', 'fixtures', 'hf_components.json');

// GPT-2's byte -> character table.
const byteChars = [];
{
  let next = 256;
  for (let b = 0; b < 256; ++b) {
    const printable = (b >= 33 && b <= 126) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    byteChars.push(String.fromCodePoint(printable ? b : next++));
  }
}

// A BPE model from base tokens plus merges (whose results join the vocabulary), merges as [a, b] pairs
// or "a b" strings (both forms are valid tokenizer.json).
function bpe(base, merges, extra = {}, stringMerges = false) {
  const vocab = {};
  for (const t of base) if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  for (const [a, b] of merges) if (!((a + b) in vocab)) vocab[a + b] = Object.keys(vocab).length;
  return {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, vocab, merges: stringMerges ? merges.map(([a, b]) => `${a} ${b}`) : merges,
    ...extra,
  };
}

const special = (id, content, more = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...more,
});

// Llama-style byte-fallback model.
const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'-';
const llamaBase = ['<unk>', '<s>', '</s>'];
for (let b = 0; b < 256; ++b) llamaBase.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
llamaBase.push('▁', ...letters, 'é');
const llamaMerges = [['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['i', 'n'], ['▁', 'a'], ['e', 'r'], ['▁', 'w'], ['o', 'r'],
  ['▁w', 'or'], ['l', 'd'], ['▁wor', 'ld'], ['▁', 'H'], ['e', 'l'], ['el', 'l'], ['▁H', 'ell'], ['▁Hell', 'o'],
  ['▁', '▁'], ['▁▁', '▁▁'], ['1', '2'], ['▁', 'c'], ['a', 'f'], ['▁c', 'af'], ['▁caf', 'é'], ['▁a', 'n'], ['▁an', 'd']];
const llamaModel = (extra = {}) => bpe(llamaBase, llamaMerges, { unk_token: '<unk>', fuse_unk: true, byte_fallback: true, ...extra });
const llamaAdded = [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')];
const llamaDecoder = { type: 'Sequence', decoders: [
  { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
  { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
const bosTemplate = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } };

// Byte-level model.
const blMerges = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['i', 'n'], ['Ġ', 'a'], ['e', 'r'], ['Ġ', 'w'], ['o', 'r'],
  ['Ġw', 'or'], ['l', 'd'], ['Ġwor', 'ld'], ['H', 'e'], ['l', 'l'], ['He', 'll'], ['Hell', 'o'], ['Ġ', 'Ġ'], ['1', '2'],
  ['12', '3'], ['Ċ', 'Ċ'], ['Ġ', 'd'], ['Ġd', 'o'], ['Ã', '©'], ['c', 'a'], ['ca', 'f'], ['caf', 'Ã©']];
const blModel = (stringMerges = false) => bpe(['<|bos|>', '<|eos|>', ...byteChars], blMerges, {}, stringMerges);
const blAdded = [special(0, '<|bos|>'), special(1, '<|eos|>')];
const blTemplate = { type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|eos|>', type_id: 0 } }],
  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [0], tokens: ['<|bos|>'] }, '<|eos|>': { id: '<|eos|>', ids: [1], tokens: ['<|eos|>'] } } };
const byteLevel = (more = {}) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true, ...more });
const llama3Pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const split = (pattern, behavior, invert = false) => ({ type: 'Split', pattern, behavior, invert });
const blSeq = (pre) => ({ type: 'Sequence', pretokenizers: [pre, byteLevel({ use_regex: false })] });

const tj = (parts) => ({ version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
  pre_tokenizer: null, post_processor: null, decoder: null, ...parts });

const configs = {
  llama_prepend_replace: tj({ added_tokens: llamaAdded, model: llamaModel(), post_processor: bosTemplate, decoder: llamaDecoder,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] } }),
  llama_metaspace_first: tj({ added_tokens: llamaAdded, model: llamaModel(), post_processor: bosTemplate,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } }),
  llama_metaspace_split: tj({ added_tokens: llamaAdded, model: llamaModel({ fuse_unk: false }),
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true } }),
  llama_added_flags: tj({ model: llamaModel(), decoder: llamaDecoder,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    added_tokens: [...llamaAdded, special(llamaBase.length + llamaMerges.length, '[MASK]', { lstrip: true, rstrip: true }),
      special(llamaBase.length + llamaMerges.length + 1, 'word', { single_word: true, special: false }),
      special(llamaBase.length + llamaMerges.length + 2, '▁dog', { normalized: true, special: false })] }),
  bytelevel_prefix_space: tj({ added_tokens: blAdded, model: blModel(), pre_tokenizer: byteLevel({ add_prefix_space: true }),
    post_processor: { type: 'Sequence', processors: [byteLevel({ add_prefix_space: true }), blTemplate] }, decoder: byteLevel() }),
  bytelevel_string_merges: tj({ added_tokens: blAdded, model: blModel(true), pre_tokenizer: byteLevel(),
    post_processor: byteLevel({ trim_offsets: false }), decoder: byteLevel() }),
  llama3_split_isolated: tj({ added_tokens: blAdded, model: blModel(), pre_tokenizer: blSeq(split({ Regex: llama3Pattern }, 'Isolated')),
    post_processor: { type: 'Sequence', processors: [byteLevel({ add_prefix_space: false }), blTemplate] }, decoder: byteLevel() }),
  split_removed: tj({ model: blModel(), pre_tokenizer: blSeq(split({ String: ' ' }, 'Removed')), decoder: byteLevel() }),
  split_merged_previous: tj({ model: blModel(), pre_tokenizer: blSeq(split({ Regex: '[,.!?]' }, 'MergedWithPrevious')), decoder: byteLevel() }),
  split_merged_next: tj({ model: blModel(), pre_tokenizer: blSeq(split({ String: ' ' }, 'MergedWithNext')), decoder: byteLevel() }),
  split_contiguous: tj({ model: blModel(), pre_tokenizer: blSeq(split({ Regex: '\\s' }, 'Contiguous')), decoder: byteLevel() }),
  split_inverted: tj({ model: blModel(), pre_tokenizer: blSeq(split({ Regex: '\\p{L}+' }, 'Removed', true)), decoder: byteLevel() }),
  digits_individual: tj({ model: blModel(), pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel()] }, decoder: byteLevel() }),
  digits_contiguous: tj({ model: blModel(), pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: false }, byteLevel({ use_regex: false })] }, decoder: byteLevel() }),
  whitespace: tj({ model: blModel(), pre_tokenizer: blSeq({ type: 'Whitespace' }), decoder: byteLevel() }),
  whitespace_split: tj({ model: blModel(), pre_tokenizer: blSeq({ type: 'WhitespaceSplit' }), decoder: byteLevel() }),
  normalizers_nfkc_lower_strip: tj({ model: blModel(), pre_tokenizer: byteLevel(), decoder: byteLevel(),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }] } }),
  normalizers_nfd_replace_regex: tj({ model: blModel(), pre_tokenizer: byteLevel(), decoder: byteLevel(),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Replace', pattern: { Regex: '\\d+' }, content: '#' }, { type: 'NFKD' }] } }),
};

const texts = [
  'Hello world', ' Hello world', 'Hello  world and the dog', 'the  weather in  Paris,  is fine.', '   leading', 'trailing   ',
  'café Café CAFÉ cafe\u0301', 'ﬁne ① ㎏ Ⅻ x²', '12345 678 9', 'İstanbul ΣΑΣ', 'tab\tnew\nline\n\nend', '🦙 llama 中文',
  'a<s>b </s> <unk>', '<|bos|>x<|eos|>', 'a [MASK] b  [MASK]  c', 'word words sword word. (word)', 'hot dog dog',
  "don't I'M you'll", 'x,y.z!w?', '', ' ', 'ÿ\u0000\u007f',
];

const fixture = [];
for (const [name, config] of Object.entries(configs)) {
  const tokenizer = Tokenizer.fromString(JSON.stringify(config));
  const cases = [];
  for (const text of texts) {
    const plain = await tokenizer.encode(text, null, { addSpecialTokens: false });
    const withSpecial = await tokenizer.encode(text, null, { addSpecialTokens: true });
    cases.push({ text, ids: plain.getIds(), offsets: plain.getOffsets(), ids_special: withSpecial.getIds(),
      decoded: await tokenizer.decode(plain.getIds(), false), decoded_skip: await tokenizer.decode(withSpecial.getIds(), true) });
  }
  fixture.push({ name, config, cases });
}
fs.writeFileSync(out, JSON.stringify(fixture) + '\n');
console.log(`${fixture.length} configurations x ${texts.length} texts -> ${out}`);
