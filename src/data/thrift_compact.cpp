// Thrift compact protocol decoding (see thrift_compact.hpp). Types: 1/2 bool true/false (in a field
// header), 3 byte, 4 i16, 5 i32, 6 i64 (zigzag varints), 7 double, 8 binary, 9 list, 10 set, 11 map,
// 12 struct; a field header is (id delta << 4) | type, delta 0 meaning a zigzag i16 id follows; 0 ends
// a struct.
#include "thrift_compact.hpp"

#include <cstring>
#include <stdexcept>

namespace fusellm::data::thrift {

namespace {

constexpr int kMaxDepth = 64;  // a hostile file cannot recurse without bound

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size), begin_(data) {}
  size_t position() const { return size_t(p_ - begin_); }

  uint8_t byte() {
    if (p_ >= end_) throw std::runtime_error("truncated Thrift data");
    return *p_++;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = byte();
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("Thrift varint longer than 10 bytes");
  }
  int64_t zigzag() {
    const uint64_t v = varint();
    return int64_t(v >> 1) ^ -int64_t(v & 1);
  }

  Value value(int type, int depth) {
    if (depth > kMaxDepth) throw std::runtime_error("Thrift data nested too deeply");
    Value v;
    switch (type) {
      case 1: case 2: v.kind = Value::Bool; v.b = type == 1; break;  // only inside field headers
      case 3: v.kind = Value::Int; v.i = int8_t(byte()); break;
      case 4: case 5: case 6: v.kind = Value::Int; v.i = zigzag(); break;
      case 7: {
        if (end_ - p_ < 8) throw std::runtime_error("truncated Thrift double");
        v.kind = Value::Double;
        std::memcpy(&v.d, p_, 8);
        p_ += 8;
        break;
      }
      case 8: {
        const uint64_t n = varint();
        if (n > uint64_t(end_ - p_)) throw std::runtime_error("Thrift binary longer than the data");
        v.kind = Value::Binary;
        v.s.assign(reinterpret_cast<const char*>(p_), size_t(n));
        p_ += n;
        break;
      }
      case 9: case 10: {
        const uint8_t h = byte();
        uint64_t n = h >> 4;
        if (n == 15) n = varint();
        const int elem = h & 0x0F;
        if (n > uint64_t(end_ - p_)) throw std::runtime_error("Thrift list longer than the data");
        v.kind = Value::List;
        for (uint64_t k = 0; k < n; ++k) {
          if (elem == 1 || elem == 2) {  // booleans in a list are one byte each
            Value b;
            b.kind = Value::Bool;
            b.b = byte() == 1;
            v.items.push_back(b);
          } else {
            v.items.push_back(value(elem, depth + 1));
          }
        }
        break;
      }
      case 11: {
        const uint64_t n = varint();
        v.kind = Value::Map;
        if (n == 0) break;
        if (n > uint64_t(end_ - p_)) throw std::runtime_error("Thrift map longer than the data");
        const uint8_t types = byte();
        for (uint64_t k = 0; k < n; ++k) {
          v.items.push_back(value(types >> 4, depth + 1));
          v.items.push_back(value(types & 0x0F, depth + 1));
        }
        break;
      }
      case 12: v = structure(depth + 1); break;
      default: throw std::runtime_error("unknown Thrift type " + std::to_string(type));
    }
    return v;
  }

  Value structure(int depth) {
    Value v;
    v.kind = Value::Struct;
    int16_t last = 0;
    for (;;) {
      const uint8_t h = byte();
      if (h == 0) return v;
      const int type = h & 0x0F, delta = h >> 4;
      const int16_t id = delta ? int16_t(last + delta) : int16_t(zigzag());
      v.fields[id] = value(type, depth);
      last = id;
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
};

}  // namespace

Value read_struct(const uint8_t* data, size_t size, size_t* consumed) {
  Reader r(data, size);
  Value v = r.structure(0);
  if (consumed) *consumed = r.position();
  return v;
}

}  // namespace fusellm::data::thrift
