#pragma once
// SentencePiece ModelProto (the `tokenizer.model` file), read natively from the protobuf wire format.
// libsentencepiece cannot share a process with LibTorch (clashing protobuf runtimes), so fusellm parses
// the few fields tokenization needs itself. Field numbers and defaults follow sentencepiece_model.proto.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/fs.hpp"

namespace fusellm::tok {

enum class SpmPieceType : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
enum class SpmModelType : uint8_t { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

const char* to_string(SpmModelType type);

struct SpmPiece {
  std::string piece;
  float score = 0.0f;
  SpmPieceType type = SpmPieceType::Normal;
};

struct SpmTrainerSpec {  // proto2 defaults
  SpmModelType model_type = SpmModelType::Unigram;
  int32_t vocab_size = 8000;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  std::string unk_surface = " \xE2\x81\x87 ";  // " ⁇ ": what raw sentencepiece decodes <unk> to
};

struct SpmNormalizerSpec {  // proto2 defaults
  std::string name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

struct SpmModel {
  std::vector<SpmPiece> pieces;
  SpmTrainerSpec trainer;
  SpmNormalizerSpec normalizer;
};

// Parses serialized ModelProto bytes; `source` names the file in errors. Checks what encoding relies on:
// at least one piece, exactly one UNKNOWN piece, no duplicate pieces, BYTE pieces only with byte_fallback.
SpmModel parse_spm_model(std::string_view bytes, const std::string& source);
SpmModel load_spm_model(const fs::path& path);

}  // namespace fusellm::tok
