// Protobuf wire-format reader for SentencePiece's ModelProto. Only varint (0), 64-bit (1), length-delimited
// (2) and 32-bit (5) wire types exist in this proto; anything else (or a truncated field) means the file is
// not a model. Unknown fields are skipped, as protobuf does, so newer model files still load.
#include "fusellm/tokenizer/sentencepiece_model.hpp"

#include <cstring>
#include <unordered_set>

#include "fusellm/util/error.hpp"

namespace fusellm::tok {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  WireType wire = kVarint;
  uint64_t varint = 0;         // kVarint, kFixed64, kFixed32
  std::string_view bytes;      // kLengthDelimited
};

// Iterates over the fields of one message; errors name the file and which message is broken.
class WireReader {
 public:
  WireReader(std::string_view data, const std::string& source, const char* message)
      : data_(data), source_(source), message_(message) {}

  bool next(Field& field) {
    if (pos_ == data_.size()) return false;
    uint64_t key = read_varint();
    field.number = static_cast<uint32_t>(key >> 3);
    field.wire = static_cast<WireType>(key & 7);
    if (field.number == 0) bad("field number 0");
    switch (field.wire) {
      case kVarint: field.varint = read_varint(); break;
      case kFixed64: field.varint = read_fixed(8); break;
      case kFixed32: field.varint = read_fixed(4); break;
      case kLengthDelimited: {
        uint64_t len = read_varint();
        if (len > data_.size() - pos_) bad("length-delimited field runs past the end");
        field.bytes = data_.substr(pos_, len);
        pos_ += len;
        break;
      }
      default: bad(fmt::format("unsupported wire type {} in field {}", static_cast<int>(field.wire), field.number));
    }
    return true;
  }

  [[noreturn]] void bad(const std::string& what) const {
    fail("{}: not a valid SentencePiece model ({} at byte {}: {})", source_, message_, pos_, what);
  }
  void expect(const Field& f, WireType wire) const {
    if (f.wire != wire) bad(fmt::format("field {} has wire type {}, expected {}", f.number, static_cast<int>(f.wire),
                                        static_cast<int>(wire)));
  }

 private:
  uint64_t read_varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) bad("truncated varint");
      uint8_t byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    bad("varint longer than 10 bytes");
  }
  uint64_t read_fixed(size_t n) {
    if (data_.size() - pos_ < n) bad("truncated fixed-width field");
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) value |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += n;
    return value;
  }

  std::string_view data_;
  size_t pos_ = 0;
  const std::string& source_;
  const char* message_;
};

float as_float(uint64_t bits32) {
  uint32_t bits = static_cast<uint32_t>(bits32);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// int32 fields hold negative values as 64-bit two's complement varints (pad_id = -1).
int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

SpmPiece parse_piece(std::string_view bytes, const std::string& source) {
  SpmPiece piece;
  WireReader r(bytes, source, "ModelProto.pieces");
  Field f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.expect(f, kLengthDelimited); piece.piece = std::string(f.bytes); break;
      case 2: r.expect(f, kFixed32); piece.score = as_float(f.varint); break;
      case 3:
        r.expect(f, kVarint);
        if (f.varint < 1 || f.varint > 6) r.bad(fmt::format("unknown piece type {}", f.varint));
        piece.type = static_cast<SpmPieceType>(f.varint);
        break;
      default: break;
    }
  }
  return piece;
}

void parse_trainer_spec(std::string_view bytes, const std::string& source, SpmTrainerSpec& spec) {
  WireReader r(bytes, source, "TrainerSpec");
  Field f;
  while (r.next(f)) {
    switch (f.number) {
      case 3:
        r.expect(f, kVarint);
        if (f.varint < 1 || f.varint > 4) r.bad(fmt::format("unknown model_type {}", f.varint));
        spec.model_type = static_cast<SpmModelType>(f.varint);
        break;
      case 4: r.expect(f, kVarint); spec.vocab_size = as_int32(f.varint); break;
      case 24: r.expect(f, kVarint); spec.treat_whitespace_as_suffix = f.varint != 0; break;
      case 35: r.expect(f, kVarint); spec.byte_fallback = f.varint != 0; break;
      case 40: r.expect(f, kVarint); spec.unk_id = as_int32(f.varint); break;
      case 41: r.expect(f, kVarint); spec.bos_id = as_int32(f.varint); break;
      case 42: r.expect(f, kVarint); spec.eos_id = as_int32(f.varint); break;
      case 43: r.expect(f, kVarint); spec.pad_id = as_int32(f.varint); break;
      case 44: r.expect(f, kLengthDelimited); spec.unk_surface = std::string(f.bytes); break;
      case 45: r.expect(f, kLengthDelimited); spec.unk_piece = std::string(f.bytes); break;
      case 46: r.expect(f, kLengthDelimited); spec.bos_piece = std::string(f.bytes); break;
      case 47: r.expect(f, kLengthDelimited); spec.eos_piece = std::string(f.bytes); break;
      case 48: r.expect(f, kLengthDelimited); spec.pad_piece = std::string(f.bytes); break;
      default: break;  // training-only options
    }
  }
}

void parse_normalizer_spec(std::string_view bytes, const std::string& source, SpmNormalizerSpec& spec) {
  WireReader r(bytes, source, "NormalizerSpec");
  Field f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.expect(f, kLengthDelimited); spec.name = std::string(f.bytes); break;
      case 2: r.expect(f, kLengthDelimited); spec.precompiled_charsmap = std::string(f.bytes); break;
      case 3: r.expect(f, kVarint); spec.add_dummy_prefix = f.varint != 0; break;
      case 4: r.expect(f, kVarint); spec.remove_extra_whitespaces = f.varint != 0; break;
      case 5: r.expect(f, kVarint); spec.escape_whitespaces = f.varint != 0; break;
      default: break;  // normalization_rule_tsv: training only
    }
  }
}

}  // namespace

const char* to_string(SpmModelType type) {
  switch (type) {
    case SpmModelType::Unigram: return "UNIGRAM";
    case SpmModelType::Bpe: return "BPE";
    case SpmModelType::Word: return "WORD";
    case SpmModelType::Char: return "CHAR";
  }
  return "?";
}

SpmModel parse_spm_model(std::string_view bytes, const std::string& source) {
  SpmModel model;
  WireReader r(bytes, source, "ModelProto");
  Field f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.expect(f, kLengthDelimited); model.pieces.push_back(parse_piece(f.bytes, source)); break;
      case 2: r.expect(f, kLengthDelimited); parse_trainer_spec(f.bytes, source, model.trainer); break;
      case 3: r.expect(f, kLengthDelimited); parse_normalizer_spec(f.bytes, source, model.normalizer); break;
      default: break;  // self_test_data, denormalizer_spec
    }
  }
  if (model.pieces.empty()) fail("{}: not a valid SentencePiece model (no pieces)", source);

  std::unordered_set<std::string_view> seen;
  int unknown = 0, bytes_found = 0;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const SpmPiece& p = model.pieces[i];
    if (p.piece.empty()) fail("{}: SentencePiece model: piece {} is empty", source, i);
    if (!seen.insert(p.piece).second) fail("{}: SentencePiece model: piece '{}' (id {}) is duplicated", source, p.piece, i);
    if (p.type == SpmPieceType::Unknown) ++unknown;
    if (p.type == SpmPieceType::Byte) {
      if (!model.trainer.byte_fallback)
        fail("{}: SentencePiece model: byte piece '{}' (id {}) but byte_fallback is false", source, p.piece, i);
      ++bytes_found;
    }
  }
  if (unknown != 1) fail("{}: SentencePiece model: expected exactly one UNKNOWN piece, found {}", source, unknown);
  if (model.trainer.byte_fallback && bytes_found != 256)
    fail("{}: SentencePiece model: byte_fallback needs 256 byte pieces <0x00>..<0xFF>, found {}", source, bytes_found);
  return model;
}

SpmModel load_spm_model(const fs::path& path) { return parse_spm_model(read_file(path), path.string()); }

}  // namespace fusellm::tok
