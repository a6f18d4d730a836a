// ParquetFile: footer, schema, pages and value decoding (see parquet.hpp). Field numbers are those of
// parquet-format's parquet.thrift (FileMetaData, SchemaElement, RowGroup, ColumnChunk, ColumnMetaData,
// PageHeader and its DataPageHeader / DictionaryPageHeader / DataPageHeaderV2).
#include "fusellm/data/parquet.hpp"

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <fstream>

#include "fusellm/data/corpus.hpp"
#include "fusellm/util/error.hpp"
#include "thrift_compact.hpp"

namespace fusellm::data {

namespace {

using thrift::Value;

enum Type { kBoolean = 0, kInt32 = 1, kInt64 = 2, kInt96 = 3, kFloat = 4, kDouble = 5, kByteArray = 6, kFixed = 7 };
enum Encoding { kPlain = 0, kPlainDictionary = 2, kRle = 3, kRleDictionary = 8 };
enum PageType { kDataPage = 0, kDictionaryPage = 2, kDataPageV2 = 3 };
const char* const kCodecNames[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};

// Values of one column chunk: the non-null values in order (in the vector of the column's type) and, per
// row, whether it has one.
struct Values {
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  std::vector<bool> present;
  size_t count() const { return strings.size() + ints.size() + doubles.size(); }
};

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& where;
  void need(size_t n) const {
    if (size_t(end - p) < n) fail("{}: page data ends early", where);
  }
};

// The RLE / bit-packed hybrid: runs of (header >> 1) repeated values (header & 1 == 0), or of
// (header >> 1)·8 values packed LSB first (header & 1 == 1). Reads `count` values.
std::vector<uint32_t> decode_hybrid(Cursor c, int bit_width, size_t count) {
  std::vector<uint32_t> out;
  out.reserve(count);
  if (bit_width > 32) fail("{}: bit width {} is not valid", c.where, bit_width);
  const size_t value_bytes = size_t(bit_width + 7) / 8;
  while (out.size() < count) {
    uint64_t header = 0;
    for (int shift = 0;; shift += 7) {
      c.need(1);
      const uint8_t b = *c.p++;
      header |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
      if (shift > 56) fail("{}: malformed run header", c.where);
    }
    if (header & 1) {
      const size_t n = size_t(header >> 1) * 8, bytes = size_t(header >> 1) * size_t(bit_width);
      c.need(bytes);
      for (size_t k = 0; k < n && out.size() < count; ++k) {
        uint32_t v = 0;
        for (int bit = 0; bit < bit_width; ++bit) {
          const size_t at = k * size_t(bit_width) + size_t(bit);
          v |= uint32_t((c.p[at / 8] >> (at % 8)) & 1) << bit;
        }
        out.push_back(v);
      }
      c.p += bytes;
    } else {
      c.need(value_bytes);
      uint32_t v = 0;
      for (size_t k = 0; k < value_bytes; ++k) v |= uint32_t(c.p[k]) << (8 * k);
      c.p += value_bytes;
      const size_t n = size_t(header >> 1);
      if (n == 0) fail("{}: empty RLE run", c.where);
      for (size_t k = 0; k < n && out.size() < count; ++k) out.push_back(v);
    }
  }
  return out;
}

// PLAIN values of `type`, appended to `out`.
void decode_plain(Cursor c, int type, int fixed_len, size_t n, Values& out) {
  switch (type) {
    case kBoolean:
      c.need((n + 7) / 8);
      for (size_t k = 0; k < n; ++k) out.ints.push_back((c.p[k / 8] >> (k % 8)) & 1);
      return;
    case kInt32:
      c.need(4 * n);
      for (size_t k = 0; k < n; ++k) out.ints.push_back(int32_t(le32(c.p + 4 * k)));
      return;
    case kInt64:
      c.need(8 * n);
      for (size_t k = 0; k < n; ++k) {
        int64_t v;
        std::memcpy(&v, c.p + 8 * k, 8);
        out.ints.push_back(v);
      }
      return;
    case kFloat:
      c.need(4 * n);
      for (size_t k = 0; k < n; ++k) {
        float v;
        std::memcpy(&v, c.p + 4 * k, 4);
        out.doubles.push_back(v);
      }
      return;
    case kDouble:
      c.need(8 * n);
      for (size_t k = 0; k < n; ++k) {
        double v;
        std::memcpy(&v, c.p + 8 * k, 8);
        out.doubles.push_back(v);
      }
      return;
    case kByteArray:
      for (size_t k = 0; k < n; ++k) {
        c.need(4);
        const uint32_t len = le32(c.p);
        c.p += 4;
        c.need(len);
        out.strings.emplace_back(reinterpret_cast<const char*>(c.p), len);
        c.p += len;
      }
      return;
    case kFixed:
      if (fixed_len <= 0) fail("{}: FIXED_LEN_BYTE_ARRAY without a type_length", c.where);
      c.need(size_t(fixed_len) * n);
      for (size_t k = 0; k < n; ++k) out.strings.emplace_back(reinterpret_cast<const char*>(c.p + k * size_t(fixed_len)), size_t(fixed_len));
      return;
    default: fail("{}: physical type {} (INT96) is not supported", c.where, type);
  }
}

// Sizes a footer or page header claims, bounded before anything is allocated from them: a page is at most
// 1 GiB uncompressed (the format's sizes are i32; writers cut pages at ~1 MiB) and a row group at most 2^26
// rows (pyarrow's largest default), so a hostile header cannot ask for terabytes.
constexpr int64_t kMaxPageBytes = int64_t{1} << 30;
constexpr int64_t kMaxRowGroupRows = int64_t{1} << 26;

std::string decompress(int codec, const uint8_t* data, size_t size, size_t expected, const std::string& where) {
  FUSELLM_CHECK(int64_t(expected) <= kMaxPageBytes, "{}: a page claims {} bytes uncompressed, above the {} limit",
                where, expected, kMaxPageBytes);
  std::string out(expected, '\0');
  switch (codec) {
    case 0:
      FUSELLM_CHECK(size == expected, "{}: uncompressed page of {} bytes, header says {}", where, size, expected);
      out.assign(reinterpret_cast<const char*>(data), size);
      return out;
    case 1: {
      size_t n = expected;
      FUSELLM_CHECK(snappy_uncompress(reinterpret_cast<const char*>(data), size, out.data(), &n) == SNAPPY_OK && n == expected,
                    "{}: corrupt Snappy page", where);
      return out;
    }
    case 2: {
      z_stream z{};
      FUSELLM_CHECK(inflateInit2(&z, 15 + 32) == Z_OK, "{}: zlib init failed", where);  // gzip or zlib header
      z.next_in = const_cast<Bytef*>(data);
      z.avail_in = uInt(size);
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = uInt(expected);
      const int rc = inflate(&z, Z_FINISH);
      const size_t produced = expected - z.avail_out;
      inflateEnd(&z);
      FUSELLM_CHECK(rc == Z_STREAM_END && produced == expected, "{}: corrupt gzip page", where);
      return out;
    }
    case 6: {
      const size_t n = ZSTD_decompress(out.data(), expected, data, size);
      FUSELLM_CHECK(!ZSTD_isError(n) && n == expected, "{}: corrupt zstd page", where);
      return out;
    }
    default:
      fail("{}: compression codec {} is not supported (supported: UNCOMPRESSED, SNAPPY, GZIP, ZSTD)", where,
           codec >= 0 && codec < 8 ? kCodecNames[codec] : std::to_string(codec).c_str());
  }
}

}  // namespace

struct ParquetFile::State {
  fs::path path;
  uint64_t file_size = 0;
  Value meta;
  int64_t rows = 0;
  std::vector<ParquetColumn> columns;
  std::vector<size_t> leaf;            // per column: its column chunk index (flat columns)
  std::vector<int> fixed_len;          // per column: FIXED_LEN_BYTE_ARRAY length

  std::string read_range(uint64_t offset, uint64_t size) const {
    FUSELLM_CHECK(offset <= file_size && size <= file_size - offset, "{}: column data at {}+{} lies outside the file ({} bytes)",
                  path.string(), offset, size, file_size);
    std::ifstream in(path, std::ios::binary);
    in.seekg(std::streamoff(offset));
    std::string bytes(size, '\0');
    in.read(bytes.data(), std::streamsize(size));
    FUSELLM_CHECK(in.gcount() == std::streamsize(size), "{}: cannot read {} bytes at {}", path.string(), size, offset);
    return bytes;
  }

  size_t column_index(const std::string& name) const {
    for (size_t i = 0; i < columns.size(); ++i)
      if (columns[i].name == name) {
        FUSELLM_CHECK(!columns[i].nested, "{}: column '{}' is nested (list, struct or map): only flat columns are read",
                      path.string(), name);
        return i;
      }
    std::string names;
    for (const auto& c : columns) names += (names.empty() ? "" : ", ") + c.name;
    fail("{}: no column '{}' (columns: {})", path.string(), name, names);
  }

  const Value& row_group(size_t g) const {
    const Value* groups = meta.field(4);
    FUSELLM_CHECK(groups && g < groups->items.size(), "{}: no row group {}", path.string(), g);
    return groups->items[g];
  }

  Values read(size_t g, size_t col) const;
};

Values ParquetFile::State::read(size_t g, size_t col) const {
  const std::string where = fmt::format("{}: row group {}, column '{}'", path.string(), g, columns[col].name);
  const Value* chunks = row_group(g).field(1);
  FUSELLM_CHECK(chunks && leaf[col] < chunks->items.size(), "{}: missing column chunk", where);
  const Value* md = chunks->items[leaf[col]].field(3);
  FUSELLM_CHECK(md, "{}: column chunk without metadata", where);
  const int type = int(md->int_or(1, -1)), codec = int(md->int_or(4, 0));
  const int64_t num_values = md->int_or(5, -1), size = md->int_or(7, -1);
  const int64_t data_offset = md->int_or(9, -1), dict_offset = md->int_or(11, -1);
  FUSELLM_CHECK(type == columns[col].physical_type && num_values >= 0 && size >= 0 && data_offset >= 4,
                "{}: malformed column metadata", where);
  const int64_t group_rows = row_group(g).int_or(3, 0);
  FUSELLM_CHECK(num_values == group_rows, "{}: {} values in a flat column of a row group of {} rows", where,
                num_values, group_rows);
  const int64_t start = dict_offset > 0 && dict_offset < data_offset ? dict_offset : data_offset;
  const std::string bytes = read_range(uint64_t(start), uint64_t(size));
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  const bool optional = columns[col].optional;

  Values out, dictionary;
  bool have_dictionary = false;
  while (int64_t(out.present.size()) < num_values) {
    FUSELLM_CHECK(p < end, "{}: pages end after {} of {} values", where, out.present.size(), num_values);
    size_t header_size = 0;
    Value header;
    try {
      header = thrift::read_struct(p, size_t(end - p), &header_size);
    } catch (const std::runtime_error& e) {
      fail("{}: bad page header: {}", where, e.what());
    }
    p += header_size;
    const int page_type = int(header.int_or(1, -1));
    const int64_t uncompressed = header.int_or(2, -1), compressed = header.int_or(3, -1);
    FUSELLM_CHECK(uncompressed >= 0 && compressed >= 0 && compressed <= end - p, "{}: page sizes out of range", where);
    const uint8_t* payload = p;
    p += compressed;
    if (page_type == kDictionaryPage) {
      const Value* dh = header.field(7);
      FUSELLM_CHECK(dh, "{}: dictionary page without its header", where);
      const std::string plain = decompress(codec, payload, size_t(compressed), size_t(uncompressed), where);
      const auto* d = reinterpret_cast<const uint8_t*>(plain.data());
      decode_plain({d, d + plain.size(), where}, type, fixed_len[col], size_t(dh->int_or(1, 0)), dictionary);
      have_dictionary = true;
      continue;
    }
    if (page_type != kDataPage && page_type != kDataPageV2) continue;  // index pages carry no values
    const bool v2 = page_type == kDataPageV2;
    const Value* dh = header.field(v2 ? 8 : 5);
    FUSELLM_CHECK(dh, "{}: data page without its header", where);
    const int64_t claimed = dh->int_or(1, 0);
    FUSELLM_CHECK(claimed >= 0 && claimed <= num_values - int64_t(out.present.size()),
                  "{}: a page claims {} values, more than the {} the column chunk has left", where, claimed,
                  num_values - int64_t(out.present.size()));
    const size_t n = size_t(claimed);
    const int encoding = int(dh->int_or(v2 ? 4 : 2, 0));
    std::string body;
    std::vector<uint32_t> defs;
    const uint8_t* values;
    const uint8_t* values_end;
    if (v2) {
      const int64_t rep_len = dh->int_or(6, 0), def_len = dh->int_or(5, 0);
      FUSELLM_CHECK(rep_len == 0, "{}: repetition levels in a flat column", where);
      FUSELLM_CHECK(def_len >= 0 && def_len <= compressed, "{}: definition levels longer than the page", where);
      if (optional) defs = decode_hybrid({payload, payload + def_len, where}, 1, n);
      const bool is_compressed = !dh->field(7) || dh->field(7)->b;
      const size_t rest = size_t(compressed - def_len), rest_uncompressed = size_t(uncompressed - def_len);
      body = is_compressed ? decompress(codec, payload + def_len, rest, rest_uncompressed, where)
                           : std::string(reinterpret_cast<const char*>(payload + def_len), rest);
      values = reinterpret_cast<const uint8_t*>(body.data());
      values_end = values + body.size();
    } else {
      body = decompress(codec, payload, size_t(compressed), size_t(uncompressed), where);
      values = reinterpret_cast<const uint8_t*>(body.data());
      values_end = values + body.size();
      if (optional) {
        FUSELLM_CHECK(int(dh->int_or(3, kRle)) == kRle, "{}: definition levels not RLE-encoded", where);
        FUSELLM_CHECK(values_end - values >= 4, "{}: page data ends early", where);
        const uint32_t len = le32(values);
        FUSELLM_CHECK(len <= size_t(values_end - values - 4), "{}: definition levels longer than the page", where);
        defs = decode_hybrid({values + 4, values + 4 + len, where}, 1, n);
        values += 4 + len;
      }
    }
    size_t non_null = n;
    if (optional) {
      non_null = 0;
      for (uint32_t d : defs) non_null += d == 1;
    }
    const size_t before = out.count();
    Cursor c{values, values_end, where};
    if (encoding == kPlain) {
      decode_plain(c, type, fixed_len[col], non_null, out);
    } else if (encoding == kPlainDictionary || encoding == kRleDictionary) {
      FUSELLM_CHECK(have_dictionary, "{}: dictionary-encoded page without a dictionary page", where);
      c.need(1);
      const int width = *c.p++;
      for (uint32_t idx : decode_hybrid(c, width, non_null)) {
        FUSELLM_CHECK(idx < dictionary.count(), "{}: dictionary index {} beyond its {} entries", where, idx, dictionary.count());
        if (!dictionary.strings.empty()) out.strings.push_back(dictionary.strings[idx]);
        else if (!dictionary.ints.empty()) out.ints.push_back(dictionary.ints[idx]);
        else out.doubles.push_back(dictionary.doubles[idx]);
      }
    } else if (encoding == kRle && type == kBoolean) {
      c.need(4);
      const uint32_t len = le32(c.p);
      for (uint32_t b : decode_hybrid({c.p + 4, std::min(c.end, c.p + 4 + len), where}, 1, non_null)) out.ints.push_back(b);
    } else {
      fail("{}: value encoding {} is not supported (supported: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, RLE for booleans)",
           where, encoding);
    }
    FUSELLM_CHECK(out.count() - before == non_null, "{}: {} values decoded, {} expected", where, out.count() - before, non_null);
    for (size_t k = 0; k < n; ++k) out.present.push_back(!optional || defs[k] == 1);
  }
  return out;
}

ParquetFile::ParquetFile(const fs::path& path) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.path = path;
  std::error_code ec;
  s.file_size = fs::file_size(path, ec);
  FUSELLM_CHECK(!ec, "{}: cannot read: {}", path.string(), ec.message());
  FUSELLM_CHECK(s.file_size >= 12, "{}: not a Parquet file ({} bytes; too short for the PAR1 magic and footer)",
                path.string(), s.file_size);
  const std::string head = s.read_range(0, 4), tail = s.read_range(s.file_size - 8, 8);
  FUSELLM_CHECK(head == "PAR1" && tail.substr(4) == "PAR1", "{}: not a Parquet file (no PAR1 magic at its start and end)",
                path.string());
  const uint32_t footer = le32(reinterpret_cast<const uint8_t*>(tail.data()));
  FUSELLM_CHECK(footer > 0 && footer <= s.file_size - 12, "{}: corrupt footer (its length {} does not fit the file)",
                path.string(), footer);
  const std::string bytes = s.read_range(s.file_size - 8 - footer, footer);
  try {
    s.meta = thrift::read_struct(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr);
  } catch (const std::runtime_error& e) {
    fail("{}: corrupt footer: {}", path.string(), e.what());
  }
  s.rows = s.meta.int_or(3, -1);
  const Value* schema = s.meta.field(2);
  FUSELLM_CHECK(schema && !schema->items.empty() && s.rows >= 0, "{}: corrupt footer (no schema or row count)", path.string());
  const size_t groups = s.meta.field(4) ? s.meta.field(4)->items.size() : 0;
  for (size_t g = 0; g < groups; ++g) {
    const int64_t rows = s.row_group(g).int_or(3, -1);
    FUSELLM_CHECK(rows >= 0 && rows <= kMaxRowGroupRows, "{}: row group {} claims {} rows (allowed: 0..{})",
                  path.string(), g, rows, kMaxRowGroupRows);
  }
  // Depth-first schema: element 0 is the root; a group's children follow it. Leaves map to column chunks.
  const auto& el = schema->items;
  size_t i = 1, leaves = 0;
  const int64_t top = el[0].int_or(5, 0);
  for (int64_t t = 0; t < top; ++t) {
    FUSELLM_CHECK(i < el.size(), "{}: corrupt schema", path.string());
    ParquetColumn c;
    const Value* name = el[i].field(4);
    c.name = name ? name->s : "";
    const int64_t children = el[i].int_or(5, 0);
    const int repetition = int(el[i].int_or(3, 0));
    c.optional = repetition == 1;
    c.nested = children > 0 || repetition == 2;
    c.physical_type = c.nested ? -1 : int(el[i].int_or(1, -1));
    s.columns.push_back(c);
    s.leaf.push_back(leaves);
    s.fixed_len.push_back(int(el[i].int_or(2, 0)));
    // Skip the whole subtree, counting its leaves.
    int64_t pending = 1;
    while (pending > 0) {
      FUSELLM_CHECK(i < el.size(), "{}: corrupt schema", path.string());
      const int64_t k = el[i].int_or(5, 0);
      if (k == 0) ++leaves;
      pending += k - 1;
      ++i;
    }
  }
}

ParquetFile::~ParquetFile() = default;
ParquetFile::ParquetFile(ParquetFile&&) noexcept = default;
ParquetFile& ParquetFile::operator=(ParquetFile&&) noexcept = default;

const fs::path& ParquetFile::path() const { return state_->path; }
int64_t ParquetFile::num_rows() const { return state_->rows; }
size_t ParquetFile::num_row_groups() const {
  const Value* groups = state_->meta.field(4);
  return groups ? groups->items.size() : 0;
}
int64_t ParquetFile::row_group_rows(size_t g) const { return state_->row_group(g).int_or(3, 0); }
const std::vector<ParquetColumn>& ParquetFile::columns() const { return state_->columns; }

std::vector<std::string> ParquetFile::read_strings(size_t g, const std::string& name, std::vector<bool>& present) const {
  const size_t col = state_->column_index(name);
  const int type = state_->columns[col].physical_type;
  FUSELLM_CHECK(type == kByteArray || type == kFixed, "{}: column '{}' holds no strings", state_->path.string(), name);
  Values v = state_->read(g, col);
  present = std::move(v.present);
  return std::move(v.strings);
}

std::vector<json> ParquetFile::read_column(size_t g, const std::string& name) const {
  const size_t col = state_->column_index(name);
  const int type = state_->columns[col].physical_type;
  const Values v = state_->read(g, col);
  std::vector<json> out;
  out.reserve(v.present.size());
  size_t k = 0;
  for (bool here : v.present) {
    if (!here) {
      out.emplace_back(nullptr);
      continue;
    }
    if (type == kByteArray || type == kFixed) {
      FUSELLM_CHECK(is_valid_utf8(v.strings[k]), "{}: row group {}, column '{}': a value is not UTF-8 text",
                    state_->path.string(), g, name);
      out.emplace_back(v.strings[k]);
    } else if (type == kBoolean) {
      out.emplace_back(v.ints[k] != 0);
    } else if (type == kFloat || type == kDouble) {
      out.emplace_back(v.doubles[k]);
    } else {
      out.emplace_back(v.ints[k]);
    }
    ++k;
  }
  return out;
}

std::vector<json> ParquetFile::read_rows(size_t g) const {
  std::vector<json> rows(size_t(row_group_rows(g)), json::object());
  for (const auto& c : state_->columns) {
    if (c.nested) continue;
    const auto values = read_column(g, c.name);
    FUSELLM_CHECK(values.size() == rows.size(), "{}: row group {}: column '{}' has {} values for {} rows",
                  state_->path.string(), g, c.name, values.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r][c.name] = values[r];
  }
  return rows;
}

}  // namespace fusellm::data
