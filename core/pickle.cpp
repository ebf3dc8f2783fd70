#include "core/pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace eggroll::pickle {

namespace {

// ---- limits ---------------------------------------------------------------------------------
// A 13.3B-parameter state dict pickles to ~300 KB and ~50K objects; these bounds are far above
// any real state dict and keep hostile input from using much memory or stack.
constexpr size_t kMaxPickleBytes = size_t(64) << 20;
constexpr size_t kMaxObjects = size_t(4) << 20;
constexpr int kMaxDepth = 64;  // nesting of tuples/lists/dicts (destruction recurses this deep)
constexpr size_t kMaxDims = 64;

enum class Kind : uint8_t { None, Bool, Int, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class Fn : uint8_t { OrderedDict, RebuildTensorV2, RebuildParameter, Storage };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Str: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

struct Value;
using Ptr = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::None;
  Fn fn = Fn::OrderedDict;  // Global
  DType dtype = DType::F32;  // Global (a storage class) and Storage
  bool frozen = false;       // held by another container: may no longer be modified
  int depth = 0;             // 0 for scalars, 1 + deepest item for containers
  int64_t i = 0;             // Int, Bool
  std::string s;             // Str, Storage key, Global's dotted name
  std::vector<Ptr> items;    // Tuple, List; Dict as key, value, key, value, ...
  std::unique_ptr<TensorRef> tensor;
};


class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& source)
      : p_(data), begin_(data), end_(data + size), source_(source) {
    none_ = node(Kind::None);
    true_ = node(Kind::Bool);
    true_->i = 1;
    false_ = node(Kind::Bool);
    empty_tuple_ = node(Kind::Tuple);
    empty_tuple_->frozen = true;
    empty_tuple_->depth = 1;
  }

  Ptr run();

 private:
  [[noreturn]] void fail(const std::string& what) const { throw InputError(source_ + ": " + what); }
  [[noreturn]] void fail_at(const std::string& what) const {
    fail(what + " (pickle byte " + std::to_string(op_pos_) + ")");
  }

  Ptr node(Kind k) {
    if (++objects_ > kMaxObjects) fail("pickle has too many objects (limit " + std::to_string(kMaxObjects) + ")");
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
  }

  // -- input
  const uint8_t* take(size_t n) {
    if (size_t(end_ - p_) < n) fail_at("truncated pickle");
    const uint8_t* q = p_;
    p_ += n;
    return q;
  }
  uint64_t le(size_t n) {
    const uint8_t* q = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v |= uint64_t(q[k]) << (8 * k);
    return v;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', size_t(end_ - p_)));
    if (!nl) fail_at("truncated pickle (GLOBAL without newline)");
    std::string s(reinterpret_cast<const char*>(p_), size_t(nl - p_));
    p_ = nl + 1;
    return s;
  }
  Ptr str_of(size_t n) {
    if (size_t(end_ - p_) < n) fail_at("truncated pickle (string of " + std::to_string(n) + " bytes)");
    Ptr v = node(Kind::Str);
    v->s.assign(reinterpret_cast<const char*>(take(n)), n);
    return v;
  }
  Ptr int_of(int64_t x) {
    Ptr v = node(Kind::Int);
    v->i = x;
    return v;
  }

  // -- stack
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Ptr v) { stack_.push_back(std::move(v)); }
  Ptr pop() {
    if (stack_.size() <= fence()) fail_at("pickle stack underflow");
    Ptr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const Ptr& top() const {
    if (stack_.size() <= fence()) fail_at("pickle stack underflow");
    return stack_.back();
  }
  std::vector<Ptr> pop_mark() {
    if (marks_.empty()) fail_at("pickle uses a MARK that was never set");
    size_t k = marks_.back();
    marks_.pop_back();
    std::vector<Ptr> items(std::make_move_iterator(stack_.begin() + ptrdiff_t(k)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(k);
    return items;
  }

  // -- containers
  void contain(Value& c, const Ptr& item) {
    if (item.get() == &c) fail_at("pickle puts a container inside itself");
    item->frozen = true;
    if (item->depth + 1 > kMaxDepth) fail_at("pickle nests deeper than " + std::to_string(kMaxDepth));
    c.depth = std::max(c.depth, item->depth + 1);
  }
  Ptr make_tuple(std::vector<Ptr> items) {
    if (items.empty()) return empty_tuple_;
    Ptr t = node(Kind::Tuple);
    t->depth = 1;
    for (const Ptr& it : items) contain(*t, it);
    t->items = std::move(items);
    return t;
  }
  Value& mutable_top(Kind k, const char* op) {
    const Ptr& c = top();
    if (c->kind != k)
      fail_at(std::string(op) + " on a " + kind_name(c->kind) + " (expected a " + kind_name(k) + ")");
    if (c->frozen) fail_at(std::string(op) + " modifies a container already stored elsewhere (unsupported)");
    return *c;
  }
  void append(Value& c, std::vector<Ptr>& items) {
    for (const Ptr& it : items) contain(c, it);
    if ((objects_ += items.size()) > kMaxObjects) fail("pickle has too many objects");
    c.items.insert(c.items.end(), items.begin(), items.end());
  }

  // -- globals and calls
  Ptr global(const std::string& module, const std::string& name) {
    std::string dotted = module + "." + name;
    Ptr g = node(Kind::Global);
    g->s = dotted;
    if (dotted == "collections.OrderedDict") {
      g->fn = Fn::OrderedDict;
    } else if (dotted == "torch._utils._rebuild_tensor_v2") {
      g->fn = Fn::RebuildTensorV2;
    } else if (dotted == "torch._utils._rebuild_parameter") {
      g->fn = Fn::RebuildParameter;
    } else if (dotted == "torch.FloatStorage") {
      g->fn = Fn::Storage;
      g->dtype = DType::F32;
    } else if (dotted == "torch.BFloat16Storage") {
      g->fn = Fn::Storage;
      g->dtype = DType::BF16;
    } else if (dotted == "torch.HalfStorage") {
      g->fn = Fn::Storage;
      g->dtype = DType::F16;
    } else {
      fail("unsupported pickle global '" + printable(dotted, 120) + "'");
    }
    return g;
  }

  static bool is_int(const Ptr& v) { return v->kind == Kind::Int || v->kind == Kind::Bool; }

  std::vector<int64_t> int_tuple(const Ptr& v, const char* what) {
    if (v->kind != Kind::Tuple) fail_at(std::string("tensor ") + what + " is a " + kind_name(v->kind) + ", not a tuple");
    if (v->items.size() > kMaxDims) fail_at(std::string("tensor ") + what + " has too many dimensions");
    std::vector<int64_t> out;
    for (const Ptr& it : v->items) {
      if (it->kind != Kind::Int) fail_at(std::string("tensor ") + what + " holds a " + kind_name(it->kind));
      out.push_back(it->i);
    }
    return out;
  }

  Ptr call(const Ptr& fn, const Ptr& args) {
    if (fn->kind != Kind::Global) fail_at(std::string("REDUCE calls a ") + kind_name(fn->kind));
    if (args->kind != Kind::Tuple) fail_at(std::string("REDUCE arguments are a ") + kind_name(args->kind));
    const auto& a = args->items;
    switch (fn->fn) {
      case Fn::OrderedDict:
        if (!a.empty()) fail_at("collections.OrderedDict called with arguments (unsupported)");
        return node(Kind::Dict);
      case Fn::RebuildTensorV2: {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.size() != 6 && a.size() != 7) fail_at("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
        if (a[0]->kind != Kind::Storage) fail_at(std::string("_rebuild_tensor_v2: storage is a ") + kind_name(a[0]->kind));
        if (a[1]->kind != Kind::Int || a[1]->i < 0) fail_at("_rebuild_tensor_v2: bad storage offset");
        if (!is_int(a[4])) fail_at("_rebuild_tensor_v2: requires_grad is not a bool");
        Ptr t = node(Kind::Tensor);
        t->tensor = std::make_unique<TensorRef>();
        TensorRef& r = *t->tensor;
        r.storage_key = a[0]->s;
        r.dtype = a[0]->dtype;
        r.storage_offset = a[1]->i;
        r.sizes = int_tuple(a[2], "size");
        r.strides = int_tuple(a[3], "stride");
        if (r.sizes.size() != r.strides.size()) fail_at("tensor size and stride have different lengths");
        for (int64_t s : r.sizes)
          if (s < 0) fail_at("negative tensor size");
        return t;
      }
      case Fn::RebuildParameter:
        // (data, requires_grad, backward_hooks): the parameter is its data tensor
        if (a.size() != 3 || a[0]->kind != Kind::Tensor) fail_at("bad _rebuild_parameter arguments");
        return a[0];
      case Fn::Storage:
        fail_at("'" + fn->s + "' cannot be called");
    }
    fail_at("bad REDUCE");
  }

  Ptr persistent_load(const Ptr& pid) {
    // ('storage', storage class, key, location, numel)
    if (pid->kind != Kind::Tuple || pid->items.size() != 5) fail_at("unsupported persistent id (expected a 5-tuple)");
    const auto& a = pid->items;
    if (a[0]->kind != Kind::Str || a[0]->s != "storage") fail_at("unsupported persistent id (not a storage)");
    if (a[1]->kind != Kind::Global || a[1]->fn != Fn::Storage) fail_at("persistent id without a storage class");
    if (a[2]->kind != Kind::Str || a[3]->kind != Kind::Str || a[4]->kind != Kind::Int || a[4]->i < 0)
      fail_at("malformed storage persistent id");
    Ptr s = node(Kind::Storage);
    s->dtype = a[1]->dtype;
    s->s = a[2]->s;
    return s;
  }

  const uint8_t* p_;
  const uint8_t* begin_;
  const uint8_t* end_;
  const std::string& source_;
  size_t op_pos_ = 0;
  size_t objects_ = 0;
  std::vector<Ptr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ptr> memo_;
  Ptr none_, true_, false_, empty_tuple_;
};

Ptr Machine::run() {
  if (size_t(end_ - p_) > kMaxPickleBytes) fail("data.pkl is larger than " + std::to_string(kMaxPickleBytes >> 20) + " MB");
  while (true) {
    op_pos_ = size_t(p_ - begin_);
    if (p_ == end_) fail_at("truncated pickle (no STOP opcode)");
    uint8_t op = *p_++;
    switch (op) {
      case 0x80: {  // PROTO
        uint64_t v = le(1);
        if (v > 5) fail_at("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case 0x95:  // FRAME (protocol 4): just a length hint
        le(8);
        break;
      case '.': {  // STOP
        if (stack_.empty()) fail_at("pickle STOP with an empty stack");
        return stack_.back();
      }
      case '(':  // MARK
        marks_.push_back(stack_.size());
        break;
      case '}': push(node(Kind::Dict)); break;   // EMPTY_DICT
      case ']': push(node(Kind::List)); break;   // EMPTY_LIST
      case ')': push(empty_tuple_); break;       // EMPTY_TUPLE
      case 't': push(make_tuple(pop_mark())); break;  // TUPLE
      case 0x85: case 0x86: case 0x87: {        // TUPLE1..3
        size_t n = size_t(op - 0x84);
        std::vector<Ptr> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case 'N': push(none_); break;   // NONE
      case 0x88: push(true_); break;  // NEWTRUE
      case 0x89: push(false_); break; // NEWFALSE
      case 'J': push(int_of(int32_t(uint32_t(le(4))))); break;  // BININT
      case 'K': push(int_of(int64_t(le(1)))); break;             // BININT1
      case 'M': push(int_of(int64_t(le(2)))); break;             // BININT2
      case 0x8a: {  // LONG1
        size_t n = size_t(le(1));
        if (n > 8) fail_at("pickle integer too large");
        uint64_t v = le(n);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
        push(int_of(int64_t(v)));
        break;
      }
      case 'X': push(str_of(size_t(le(4)))); break;     // BINUNICODE
      case 0x8d: {                                       // BINUNICODE8
        uint64_t n = le(8);
        if (n > uint64_t(end_ - p_)) fail_at("truncated pickle (string of " + std::to_string(n) + " bytes)");
        push(str_of(size_t(n)));
        break;
      }
      case 0x8c: push(str_of(size_t(le(1)))); break;    // SHORT_BINUNICODE
      case 'T': {                                        // BINSTRING
        int32_t n = int32_t(uint32_t(le(4)));
        if (n < 0) fail_at("negative string length");
        push(str_of(size_t(n)));
        break;
      }
      case 'U': push(str_of(size_t(le(1)))); break;     // SHORT_BINSTRING
      case 'c': {                                        // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Ptr name = pop(), module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail_at("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'q': memo_[uint32_t(le(1))] = top(); break;  // BINPUT
      case 'r': memo_[uint32_t(le(4))] = top(); break;  // LONG_BINPUT
      case 0x94: {                                      // MEMOIZE
        const Ptr& v = top();
        memo_[uint32_t(memo_.size())] = v;
        break;
      }
      case 'h': case 'j': {  // BINGET, LONG_BINGET
        uint32_t idx = uint32_t(le(op == 'h' ? 1 : 4));
        auto it = memo_.find(idx);
        if (it == memo_.end()) fail_at("pickle memo index " + std::to_string(idx) + " was never set");
        push(it->second);
        break;
      }
      case 'R': {  // REDUCE
        Ptr args = pop(), fn = pop();
        push(call(fn, args));
        break;
      }
      case 'Q': {  // BINPERSID
        Ptr pid = pop();
        push(persistent_load(pid));
        break;
      }
      case 's': {  // SETITEM
        Ptr v = pop(), k = pop();
        std::vector<Ptr> kv{std::move(k), std::move(v)};
        append(mutable_top(Kind::Dict, "SETITEM"), kv);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Ptr> kv = pop_mark();
        if (kv.size() % 2) fail_at("SETITEMS with an odd number of items");
        append(mutable_top(Kind::Dict, "SETITEMS"), kv);
        break;
      }
      case 'a': {  // APPEND
        std::vector<Ptr> one{pop()};
        append(mutable_top(Kind::List, "APPEND"), one);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Ptr> items = pop_mark();
        append(mutable_top(Kind::List, "APPENDS"), items);
        break;
      }
      case 'b': {  // BUILD: only the empty state of an OrderedDict
        Ptr state = pop();
        const Ptr& obj = top();
        bool empty_state = state->kind == Kind::None ||
                           ((state->kind == Kind::Dict || state->kind == Kind::Tuple) && state->items.empty());
        if (obj->kind != Kind::Dict || !empty_state)
          fail_at(std::string("unsupported pickle BUILD on a ") + kind_name(obj->kind));
        break;
      }
      default: {
        char buf[48];
        if (op >= 0x20 && op < 0x7f)
          std::snprintf(buf, sizeof buf, "0x%02x ('%c')", op, op);
        else
          std::snprintf(buf, sizeof buf, "0x%02x", op);
        fail_at(std::string("unsupported pickle opcode ") + buf);
      }
    }
  }
}

// ---- writer helpers ------------------------------------------------------------------------

struct Out {
  std::vector<uint8_t> b;
  void op(uint8_t c) { b.push_back(c); }
  void raw(std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }
  void le(uint64_t v, int n) {
    for (int k = 0; k < n; k++) b.push_back(uint8_t(v >> (8 * k)));
  }
  void str(std::string_view s) {
    op('X');
    le(s.size(), 4);
    raw(s);
  }
  void global(std::string_view module, std::string_view name) {
    op('c');
    raw(module);
    op('\n');
    raw(name);
    op('\n');
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      le(uint64_t(v), 1);
    } else if (v >= 0 && v < 65536) {
      op('M');
      le(uint64_t(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le(uint64_t(v), 4);
    } else {
      op(0x8a);
      op(8);
      le(uint64_t(v), 8);
    }
  }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(')');
    if (v.size() > 3) op('(');
    for (int64_t x : v) integer(x);
    op(v.size() == 1 ? 0x85 : v.size() == 2 ? 0x86 : v.size() == 3 ? 0x87 : 't');
  }
};

const char* storage_class(DType t) {
  switch (t) {
    case DType::F32: return "FloatStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::F16: return "HalfStorage";
  }
  return "?";
}

}  // namespace

std::vector<TensorRef> read_state_dict(const uint8_t* data, size_t size, const std::string& source) {
  Machine m(data, size, source);
  Ptr result = m.run();
  if (result->kind != Kind::Dict)
    throw InputError(source + ": the pickle holds a " + kind_name(result->kind) + ", not a state dict");
  std::vector<TensorRef> out;
  std::unordered_map<std::string, size_t> where;
  const auto& kv = result->items;
  for (size_t k = 0; k + 1 < kv.size(); k += 2) {
    if (kv[k]->kind != Kind::Str)
      throw InputError(source + ": state dict key is a " + kind_name(kv[k]->kind) + ", not a string");
    const std::string& name = kv[k]->s;
    if (kv[k + 1]->kind != Kind::Tensor)
      throw InputError(source + ": state dict entry '" + printable(name, 120) + "' is a " +
                       kind_name(kv[k + 1]->kind) + ", not a tensor");
    TensorRef r = *kv[k + 1]->tensor;
    r.name = name;
    auto [it, fresh] = where.emplace(name, out.size());
    if (fresh) out.push_back(std::move(r));
    else out[it->second] = std::move(r);
  }
  return out;
}

std::vector<uint8_t> write_state_dict(const std::vector<WriteItem>& items) {
  Out o;
  o.op(0x80);
  o.op(2);
  o.global("collections", "OrderedDict");
  o.op(')');
  o.op('R');
  if (!items.empty()) o.op('(');
  for (size_t i = 0; i < items.size(); i++) {
    const WriteItem& it = items[i];
    int64_t numel = 1;
    for (int64_t d : it.shape) numel *= d;
    std::vector<int64_t> strides(it.shape.size());
    int64_t s = 1;
    for (size_t d = it.shape.size(); d-- > 0;) {
      strides[d] = s;
      s *= it.shape[d];
    }
    o.str(it.name);
    o.global("torch._utils", "_rebuild_tensor_v2");
    o.op('(');
    o.op('(');
    o.str("storage");
    o.global("torch", storage_class(it.dtype));
    o.str(std::to_string(i));
    o.str("cpu");
    o.integer(numel);
    o.op('t');
    o.op('Q');  // BINPERSID
    o.integer(0);
    o.int_tuple(it.shape);
    o.int_tuple(strides);
    o.op(0x89);  // requires_grad = False
    o.global("collections", "OrderedDict");
    o.op(')');
    o.op('R');
    o.op('t');
    o.op('R');
  }
  if (!items.empty()) o.op('u');
  o.op('.');
  return std::move(o.b);
}

}  // namespace eggroll::pickle
