// The pickle subset torch.save state dicts use (opcode meanings from Python's pickletools documentation).
#include "torch_pickle.hpp"

#include <cstring>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

#include "fusellm/util/error.hpp"

namespace fusellm::io::detail {
namespace {

struct PyObject;
using Obj = std::shared_ptr<PyObject>;

// Just enough of Python's object model: containers are shared so memoised references see later mutation.
struct PyObject {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, Opaque };
  Kind kind = Kind::None;
  int64_t int_value = 0;
  double float_value = 0;
  std::string text;    // Str/Bytes value; Global "module.name"; Opaque what it was built from
  std::vector<Obj> items;                      // Tuple, List
  std::vector<std::pair<Obj, Obj>> entries;    // Dict, in insertion order
  at::Tensor tensor;                           // Tensor, or Storage as a flat tensor
};

Obj make(PyObject::Kind kind) {
  auto o = std::make_shared<PyObject>();
  o->kind = kind;
  return o;
}

const char* kind_name(PyObject::Kind k) {
  switch (k) {
    case PyObject::Kind::None: return "None";
    case PyObject::Kind::Bool: return "bool";
    case PyObject::Kind::Int: return "int";
    case PyObject::Kind::Float: return "float";
    case PyObject::Kind::Str: return "str";
    case PyObject::Kind::Bytes: return "bytes";
    case PyObject::Kind::Tuple: return "tuple";
    case PyObject::Kind::List: return "list";
    case PyObject::Kind::Dict: return "dict";
    case PyObject::Kind::Global: return "global";
    case PyObject::Kind::Storage: return "storage";
    case PyObject::Kind::Tensor: return "tensor";
    case PyObject::Kind::Opaque: return "object";
  }
  return "?";
}

std::optional<at::ScalarType> storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},   {"torch.HalfStorage", at::kHalf},   {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.DoubleStorage", at::kDouble}, {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},   {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},
  };
  auto it = types.find(global);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

// The globals a state-dict pickle may name (docs/formats.md lists them). Nothing is ever imported or
// called — the reader interprets these few names itself — but refusing every other global up front turns
// a pickle that means to run code (os.system, builtins.eval, …) into a clear error, the same set
// torch.load(weights_only=True) accepts minus what a dense state dict never holds.
bool allowed_global(const std::string& name) {
  static const std::set<std::string> exact = {
      "collections.OrderedDict", "builtins.dict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
      "torch._tensor._rebuild_from_type", "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter",
      "torch.Tensor", "torch.Size", "torch.device", "torch.jit._pickle.restore_type_tag",
      // Named only to be refused with a precise message (see Unpickler::call).
      "torch._utils._rebuild_qtensor", "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_sparse_csr",
      "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_meta_tensor_no_storage"};
  static const std::set<std::string> dtypes = {
      "torch.float32", "torch.float", "torch.float16", "torch.half", "torch.bfloat16", "torch.float64", "torch.double",
      "torch.int64", "torch.long", "torch.int32", "torch.int", "torch.int16", "torch.int8", "torch.uint8", "torch.bool"};
  return exact.count(name) || dtypes.count(name) || storage_dtype(name).has_value() ||
         name.rfind("torch.jit._pickle.build_", 0) == 0;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const StorageLoader& load, const std::string& what)
      : data_(data), size_(size), load_(load), what_(what) {}

  Obj run();

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail("{}: corrupt data.pkl at byte {}: {}", what_, op_pos_, why);
  }
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) bad("truncated");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }
  std::string read_string(size_t n) { return std::string(reinterpret_cast<const char*>(take(n)), n); }
  std::string read_line() {
    size_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') ++pos_;
    if (pos_ == size_) bad("unterminated line");
    return std::string(reinterpret_cast<const char*>(data_) + start, pos_++ - start);
  }

  Obj pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) bad("stack underflow");
    Obj o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  Obj& top() {
    if (stack_.empty()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Obj> pop_to_mark() {
    if (marks_.empty()) bad("no MARK");
    size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Obj> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void push_int(int64_t v) {
    Obj o = make(PyObject::Kind::Int);
    o->int_value = v;
    stack_.push_back(std::move(o));
  }
  void push_str(std::string s, PyObject::Kind kind = PyObject::Kind::Str) {
    Obj o = make(kind);
    o->text = std::move(s);
    stack_.push_back(std::move(o));
  }
  void push_global(std::string name) {
    if (!allowed_global(name))
      fail("{}: data.pkl at byte {} names the global '{}', which a state dict never needs (refused: see the "
           "allowed list in docs/formats.md)", what_, op_pos_, name);
    push_str(std::move(name), PyObject::Kind::Global);
  }
  Obj tuple_of(std::vector<Obj> items) {
    Obj o = make(PyObject::Kind::Tuple);
    o->items = std::move(items);
    return o;
  }
  void set_items(const Obj& dict, std::vector<Obj>& kv) {
    if (kv.size() % 2 != 0) bad("odd number of items for SETITEMS");
    if (dict->kind == PyObject::Kind::Opaque) return;  // an object we do not model; its content is dropped
    if (dict->kind != PyObject::Kind::Dict) bad(std::string("SETITEM on a ") + kind_name(dict->kind));
    for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
  void append_items(const Obj& list, std::vector<Obj>& items) {
    if (list->kind == PyObject::Kind::Opaque) return;
    if (list->kind != PyObject::Kind::List) bad(std::string("APPEND on a ") + kind_name(list->kind));
    for (auto& item : items) list->items.push_back(std::move(item));
  }

  int64_t as_int(const Obj& o, const char* what) const {
    if (o->kind != PyObject::Kind::Int && o->kind != PyObject::Kind::Bool) bad(std::string(what) + " is not an int");
    return o->int_value;
  }
  std::vector<int64_t> as_int_tuple(const Obj& o, const char* what) const {
    if (o->kind != PyObject::Kind::Tuple && o->kind != PyObject::Kind::List) bad(std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (const Obj& item : o->items) out.push_back(as_int(item, what));
    return out;
  }

  Obj persistent_load(const Obj& pid);
  Obj call(const Obj& callable, const Obj& args);
  Obj rebuild_tensor(const std::vector<Obj>& args);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  const StorageLoader& load_;
  const std::string& what_;
  std::vector<Obj> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj> memo_;
  std::map<std::string, Obj> storages_;  // by key: one tensor per storage, so views share memory
};

// ('storage', torch.<Type>Storage, key, location, numel) → the flat storage tensor.
Obj Unpickler::persistent_load(const Obj& pid) {
  const auto& t = pid->items;
  if (pid->kind != PyObject::Kind::Tuple || t.size() < 5 || t[0]->kind != PyObject::Kind::Str || t[0]->text != "storage")
    bad("persistent id is not a ('storage', type, key, location, numel) tuple");
  if (t[1]->kind != PyObject::Kind::Global) bad("storage type is not a global");
  auto dtype = storage_dtype(t[1]->text);
  if (!dtype) fail("{}: storage type {} is not supported", what_, t[1]->text);
  if (t[2]->kind != PyObject::Kind::Str) bad("storage key is not a string");
  const std::string& key = t[2]->text;
  auto cached = storages_.find(key);
  if (cached != storages_.end()) return cached->second;
  const int64_t numel = as_int(t[4], "storage size");
  if (numel < 0) bad("negative storage size");
  Obj storage = make(PyObject::Kind::Storage);
  storage->text = key;
  storage->tensor = load_(key, *dtype, numel);
  storages_.emplace(key, storage);
  return storage;
}

// _rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(…, requires_grad, hooks[, metadata]).
Obj Unpickler::rebuild_tensor(const std::vector<Obj>& args) {
  if (args.size() < 4) bad("_rebuild_tensor with fewer than 4 arguments");
  if (args[0]->kind != PyObject::Kind::Storage) bad("_rebuild_tensor without a storage");
  const at::Tensor& flat = args[0]->tensor;
  const int64_t offset = as_int(args[1], "storage offset");
  const std::vector<int64_t> sizes = as_int_tuple(args[2], "tensor size");
  const std::vector<int64_t> strides = as_int_tuple(args[3], "tensor stride");
  if (sizes.size() != strides.size()) bad("size and stride differ in length");
  // The furthest element the view touches must lie inside the storage.
  int64_t last = offset;
  bool empty = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || strides[i] < 0) bad("negative size or stride");
    if (sizes[i] == 0) empty = true;
    last += (sizes[i] - 1) * strides[i];
  }
  if (offset < 0 || (!empty && last >= flat.numel()))
    fail("{}: tensor view (offset {}, size {}) reaches past its storage '{}' of {} elements", what_, offset,
         fmt::join(sizes, "x"), args[0]->text, flat.numel());
  Obj tensor = make(PyObject::Kind::Tensor);
  tensor->tensor = empty ? at::empty(sizes, flat.options()) : flat.as_strided(sizes, strides, offset);
  return tensor;
}

Obj Unpickler::call(const Obj& callable, const Obj& args_obj) {
  if (args_obj->kind != PyObject::Kind::Tuple) bad("REDUCE arguments are not a tuple");
  const std::vector<Obj>& args = args_obj->items;
  const std::string name = callable->kind == PyObject::Kind::Global ? callable->text : "";
  if (name == "collections.OrderedDict" || name == "builtins.dict") {
    Obj dict = make(PyObject::Kind::Dict);
    if (!args.empty() && (args[0]->kind == PyObject::Kind::List || args[0]->kind == PyObject::Kind::Tuple))
      for (const Obj& pair : args[0]->items)
        if (pair->kind == PyObject::Kind::Tuple && pair->items.size() == 2)
          dict->entries.emplace_back(pair->items[0], pair->items[1]);
    return dict;
  }
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") return rebuild_tensor(args);
  if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state" ||
      name == "torch.jit._pickle.restore_type_tag" || name.rfind("torch.jit._pickle.build_", 0) == 0) {
    if (args.empty()) bad(name + " without arguments");
    return args[0];  // a Parameter is its data; type tags and typed lists wrap their value
  }
  if (name == "torch._tensor._rebuild_from_type_v2" || name == "torch._tensor._rebuild_from_type") {
    if (args.size() < 3) bad(name + " with too few arguments");
    return call(args[0], args[2]);  // (func, subclass, args, state): the plain tensor func(*args)
  }
  if (name.rfind("torch._utils._rebuild_qtensor", 0) == 0 || name.rfind("torch._utils._rebuild_sparse", 0) == 0 ||
      name == "torch._utils._rebuild_wrapper_subclass" || name == "torch._utils._rebuild_meta_tensor_no_storage")
    fail("{}: {} tensors are not supported (dense tensors only)", what_, name);
  Obj opaque = make(PyObject::Kind::Opaque);
  opaque->text = name.empty() ? std::string("call of a ") + kind_name(callable->kind) : name;
  return opaque;
}

Obj Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: take(1); break;             // PROTO
      case 0x95: take(8); break;             // FRAME: framing is transparent to a whole-buffer reader
      case '.': {                            // STOP
        Obj result = pop();
        return result;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                              // POP
      case '1': pop_to_mark(); break;                      // POP_MARK
      case '2': stack_.push_back(top()); break;            // DUP
      case 'N': stack_.push_back(make(PyObject::Kind::None)); break;
      case 0x88:                                           // NEWTRUE
      case 0x89: {                                         // NEWFALSE
        Obj b = make(PyObject::Kind::Bool);
        b->int_value = op == 0x88;
        stack_.push_back(std::move(b));
        break;
      }
      case 'K': push_int(static_cast<int64_t>(read_le(1))); break;                       // BININT1
      case 'M': push_int(static_cast<int64_t>(read_le(2))); break;                       // BININT2
      case 'J': push_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))); break;  // BININT
      case 0x8a:                                                                         // LONG1
      case 0x8b: {                                                                       // LONG4
        const uint64_t n = read_le(op == 0x8a ? 1 : 4);
        if (n > 8) bad("integer wider than 64 bits");
        uint64_t v = read_le(static_cast<size_t>(n));
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push_int(static_cast<int64_t>(v));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        Obj f = make(PyObject::Kind::Float);
        std::memcpy(&f->float_value, &bits, 8);
        stack_.push_back(std::move(f));
        break;
      }
      case 'X': push_str(read_string(read_le(4))); break;   // BINUNICODE
      case 0x8c: push_str(read_string(read_le(1))); break;  // SHORT_BINUNICODE
      case 0x8d: push_str(read_string(read_le(8))); break;  // BINUNICODE8
      case 'T': push_str(read_string(read_le(4))); break;   // BINSTRING (py2 str)
      case 'U': push_str(read_string(read_le(1))); break;   // SHORT_BINSTRING
      case 'B': push_str(read_string(read_le(4)), PyObject::Kind::Bytes); break;  // BINBYTES
      case 'C': push_str(read_string(read_le(1)), PyObject::Kind::Bytes); break;  // SHORT_BINBYTES
      case 0x8e: push_str(read_string(read_le(8)), PyObject::Kind::Bytes); break;  // BINBYTES8
      case ')': stack_.push_back(tuple_of({})); break;                             // EMPTY_TUPLE
      case 't': stack_.push_back(tuple_of(pop_to_mark())); break;                  // TUPLE
      case 0x85:                                                                   // TUPLE1..3
      case 0x86:
      case 0x87: {
        std::vector<Obj> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        stack_.push_back(tuple_of(std::move(items)));
        break;
      }
      case ']': stack_.push_back(make(PyObject::Kind::List)); break;  // EMPTY_LIST
      case 'l': {                                                      // LIST
        Obj list = make(PyObject::Kind::List);
        list->items = pop_to_mark();
        stack_.push_back(std::move(list));
        break;
      }
      case 'a': {  // APPEND
        std::vector<Obj> one{pop()};
        append_items(top(), one);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Obj> items = pop_to_mark();
        append_items(top(), items);
        break;
      }
      case '}': stack_.push_back(make(PyObject::Kind::Dict)); break;  // EMPTY_DICT
      case 'd': {                                                      // DICT
        std::vector<Obj> kv = pop_to_mark();
        Obj dict = make(PyObject::Kind::Dict);
        set_items(dict, kv);
        stack_.push_back(std::move(dict));
        break;
      }
      case 's': {  // SETITEM
        Obj value = pop();
        Obj key = pop();
        std::vector<Obj> kv{key, value};
        set_items(top(), kv);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Obj> kv = pop_to_mark();
        set_items(top(), kv);
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module = read_line();
        std::string name = read_line();
        push_global(module + "." + name);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj name = pop();
        Obj module = pop();
        if (name->kind != PyObject::Kind::Str || module->kind != PyObject::Kind::Str) bad("STACK_GLOBAL of non-strings");
        push_global(module->text + "." + name->text);
        break;
      }
      case 'q': memo_[read_le(1)] = top(); break;  // BINPUT
      case 'r': memo_[read_le(4)] = top(); break;  // LONG_BINPUT
      case 0x94: {                                 // MEMOIZE
        const uint64_t index = memo_.size();
        memo_[index] = top();
        break;
      }
      case 'h':    // BINGET
      case 'j': {  // LONG_BINGET
        auto it = memo_.find(read_le(op == 'h' ? 1 : 4));
        if (it == memo_.end()) bad("memo reference to an unset slot");
        stack_.push_back(it->second);
        break;
      }
      case 'Q': stack_.push_back(persistent_load(pop())); break;  // BINPERSID
      case 'R': {                                                // REDUCE
        Obj args = pop();
        Obj callable = pop();
        stack_.push_back(call(callable, args));
        break;
      }
      case 0x81: {  // NEWOBJ cls.__new__(cls, *args): nothing a state dict needs
        Obj args = pop();
        Obj cls = pop();
        Obj opaque = make(PyObject::Kind::Opaque);
        opaque->text = cls->text;
        stack_.push_back(std::move(opaque));
        break;
      }
      case 'b': pop(); top(); break;  // BUILD: instance state (e.g. a state dict's _metadata) is dropped
      default: bad(fmt::format("unsupported pickle opcode 0x{:02x}", op));
    }
  }
}

}  // namespace

std::map<std::string, at::Tensor> unpickle_state_dict(const uint8_t* data, size_t size, const StorageLoader& load,
                                                      const std::string& what) {
  Unpickler unpickler(data, size, load, what);
  Obj root = unpickler.run();
  if (root->kind != PyObject::Kind::Dict)
    fail("{}: not a state dict: data.pkl holds a {}, expected a dict of name → tensor", what, kind_name(root->kind));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyObject::Kind::Str || value->kind != PyObject::Kind::Tensor) continue;
    if (!tensors.emplace(key->text, value->tensor).second) fail("{}: tensor '{}' appears twice", what, key->text);
  }
  return tensors;
}

}  // namespace fusellm::io::detail
