#pragma once
// A reader of flat Parquet columns (MiniPile's data/train-*.parquet, the HF hub's eval datasets): the
// footer's Thrift metadata, row groups, data pages v1 and v2 (and dictionary pages), PLAIN and dictionary
// (PLAIN_DICTIONARY / RLE_DICTIONARY) values, RLE / bit-packed definition levels (nulls), RLE booleans,
// pages uncompressed or compressed with Snappy, gzip or zstd. Physical types BOOLEAN, INT32, INT64, FLOAT,
// DOUBLE, BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY. Nested columns (lists, structs, maps) are listed but not
// read. Every error is an Error naming the file (and row group / column) and what is wrong.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::data {

struct ParquetColumn {
  std::string name;          // top-level field name
  int physical_type = -1;    // parquet Type (0 BOOLEAN … 7 FIXED_LEN_BYTE_ARRAY); -1 for a nested field
  bool optional = false;     // nulls possible
  bool nested = false;       // a group or repeated field: not readable here
};

class ParquetFile {
 public:
  explicit ParquetFile(const fs::path& path);  // reads and checks the footer
  ~ParquetFile();
  ParquetFile(ParquetFile&&) noexcept;
  ParquetFile& operator=(ParquetFile&&) noexcept;

  const fs::path& path() const;
  int64_t num_rows() const;
  size_t num_row_groups() const;
  int64_t row_group_rows(size_t row_group) const;
  const std::vector<ParquetColumn>& columns() const;
  // The column's values in one row group: strings (BYTE_ARRAY as UTF-8 text; bytes that are not UTF-8 are
  // an error), numbers, booleans; null where the row has none.
  std::vector<json> read_column(size_t row_group, const std::string& name) const;
  // Just the strings of a BYTE_ARRAY column (the corpus reader's fast path); nullopt-like "absent" rows
  // are reported through `present`.
  std::vector<std::string> read_strings(size_t row_group, const std::string& name, std::vector<bool>& present) const;
  // Every row of a row group as a JSON object of the flat columns (nested ones left out).
  std::vector<json> read_rows(size_t row_group) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace fusellm::data
