#pragma once
// Apache Thrift's compact protocol, decoded into a generic tree (Parquet's footer and page headers are
// Thrift structs). Internal to src/data.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fusellm::data::thrift {

struct Value {
  enum Kind { None, Bool, Int, Double, Binary, List, Struct, Map } kind = None;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<Value> items;           // List (and Map as key, value, key, value, ...)
  std::map<int16_t, Value> fields;    // Struct

  const Value* field(int16_t id) const {
    auto it = fields.find(id);
    return it == fields.end() ? nullptr : &it->second;
  }
  int64_t int_or(int16_t id, int64_t fallback) const {
    const Value* v = field(id);
    return v && v->kind == Int ? v->i : fallback;
  }
};

// Decodes one struct starting at data[0]; *consumed = bytes read. Throws std::runtime_error with a short
// reason on malformed input (the caller adds the file name).
Value read_struct(const uint8_t* data, size_t size, size_t* consumed);

}  // namespace fusellm::data::thrift
