#include "rwkv/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>
#include <utility>

#include "core/error.h"

namespace eggroll {
namespace {

// ---- python literal parsing ---------------------------------------------------------------

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence starting at s[i] (no overlongs, no surrogates,
// at most U+10FFFF), or 0 when it is not well formed.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses one python string or bytes literal that must span all of `lit`:
// optional prefix (b, r, u, br, rb in any case), then '...' or "...". A str literal yields
// its UTF-8 encoding. Supported escapes: \\ \' \" \a \b \f \n \r \t \v, \ooo (1-3 octal
// digits), \xhh, and in str literals \uhhhh and \Uhhhhhhhh; like python, an unrecognised
// escape keeps its backslash. Returns false and sets err on malformed input.
bool parse_python_literal(std::string_view lit, std::string& out, std::string& err) {
  out.clear();
  size_t i = 0;
  bool is_bytes = false, is_raw = false, is_unicode = false;
  for (; i < lit.size() && lit[i] != '\'' && lit[i] != '"'; ++i) {
    const char c = lit[i];
    bool* flag = (c == 'b' || c == 'B') ? &is_bytes
                 : (c == 'r' || c == 'R') ? &is_raw
                 : (c == 'u' || c == 'U') ? &is_unicode
                                          : nullptr;
    if (flag == nullptr || *flag || i >= 2) {
      err = "expected a python string literal ('...', \"...\" or b'...')";
      return false;
    }
    *flag = true;
  }
  if (is_unicode && (is_bytes || is_raw)) {
    err = "invalid string prefix";
    return false;
  }
  if (i >= lit.size()) {
    err = "expected a python string literal ('...', \"...\" or b'...')";
    return false;
  }
  const char quote = lit[i++];
  bool closed = false;
  while (i < lit.size()) {
    const char c = lit[i];
    const auto uc = static_cast<unsigned char>(c);
    if (c == quote) {
      closed = true;
      ++i;
      break;
    }
    if (c == '\0' || c == '\r' || c == '\n') {
      err = "string literal contains a raw NUL, CR or LF character";
      return false;
    }
    if (c != '\\') {
      if (uc < 0x80) {
        out += c;
        ++i;
        continue;
      }
      if (is_bytes) {
        err = "bytes literal contains a non-ASCII character";
        return false;
      }
      const size_t n = utf8_sequence_length(lit, i);
      if (n == 0) {
        err = "string literal is not valid UTF-8";
        return false;
      }
      out.append(lit.substr(i, n));
      i += n;
      continue;
    }
    // backslash
    if (i + 1 >= lit.size()) {
      err = "string literal ends in a backslash";
      return false;
    }
    const char e = lit[i + 1];
    if (is_raw) {  // raw: backslash stays, and it stops the next character ending the string
      out += '\\';
      ++i;
      if (e == quote || e == '\\') {
        out += e;
        ++i;
      }
      continue;
    }
    i += 2;
    switch (e) {
      case '\\': out += '\\'; continue;
      case '\'': out += '\''; continue;
      case '"': out += '"'; continue;
      case 'a': out += '\a'; continue;
      case 'b': out += '\b'; continue;
      case 'f': out += '\f'; continue;
      case 'n': out += '\n'; continue;
      case 'r': out += '\r'; continue;
      case 't': out += '\t'; continue;
      case 'v': out += '\v'; continue;
      default: break;
    }
    if (e >= '0' && e <= '7') {
      uint32_t v = static_cast<uint32_t>(e - '0');
      for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k, ++i)
        v = v * 8 + static_cast<uint32_t>(lit[i] - '0');
      if (is_bytes) {
        if (v > 0xFF) {
          err = "octal escape out of range in bytes literal";
          return false;
        }
        out += static_cast<char>(v);
      } else {
        append_utf8(out, v);
      }
      continue;
    }
    int digits = 0;
    if (e == 'x') digits = 2;
    if (!is_bytes && e == 'u') digits = 4;
    if (!is_bytes && e == 'U') digits = 8;
    if (digits > 0) {
      uint32_t v = 0;
      for (int k = 0; k < digits; ++k, ++i) {
        const int h = i < lit.size() ? hex_value(lit[i]) : -1;
        if (h < 0) {
          err = std::string("truncated \\") + e + " escape";
          return false;
        }
        v = v * 16 + static_cast<uint32_t>(h);
      }
      if (is_bytes) {
        out += static_cast<char>(v);
      } else if (e == 'x') {
        append_utf8(out, v);
      } else if (v > 0x10FFFF) {
        err = "\\U escape out of range";
        return false;
      } else if (v >= 0xD800 && v <= 0xDFFF) {
        err = "surrogate code point has no UTF-8 encoding";
        return false;
      } else {
        append_utf8(out, v);
      }
      continue;
    }
    if (!is_bytes && e == 'N') {
      err = "\\N{...} escapes are not supported";
      return false;
    }
    // Unrecognised escape: python keeps the backslash; the character after it is read as an
    // ordinary character on the next iteration.
    out += '\\';
    --i;
  }
  if (!closed) {
    err = "unterminated string literal";
    return false;
  }
  if (i != lit.size()) {
    err = "unexpected text after the string literal";
    return false;
  }
  return true;
}

// Parses a plain decimal number (digits only) no larger than limit.
bool parse_uint(std::string_view s, uint64_t limit, uint64_t& value) {
  if (s.empty() || s.size() > 19) return false;
  value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value <= limit;
}

// ---- World tokenizer ------------------------------------------------------------------------

constexpr uint32_t kMaxId = (1u << 22) - 1;  // bounds the id -> bytes table
constexpr size_t kLinearScan = 8;            // children lists up to this size are scanned

class WorldTokenizer final : public Tokenizer {
 public:
  // tokens[id] = bytes, empty when id is unused (id 0 is always unused).
  explicit WorldTokenizer(std::vector<std::string> tokens);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string token_bytes(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(offsets_.size()) - 1; }

  // Byte value without a single-byte token, or -1 when every byte has one.
  int missing_byte() const {
    for (int b = 0; b < 256; ++b)
      if (root_[b] == 0 || nodes_[root_[b]].token == 0) return b;
    return -1;
  }

 private:
  // Byte trie. Node 0 is the root; the children of a node are the contiguous nodes
  // [first_child, first_child + num_children), sorted by label. Nodes with many children
  // also get a dense 256-entry table (dense >= 0), as does the root (root_).
  struct Node {
    uint32_t first_child = 0;
    uint32_t num_children = 0;
    int32_t token = 0;  // 0: no token ends here
    int32_t dense = -1;
  };

  uint32_t child(uint32_t node, unsigned char byte) const {
    const Node& n = nodes_[node];
    if (n.num_children <= kLinearScan) {
      const unsigned char* l = labels_.data() + n.first_child;
      for (uint32_t k = 0; k < n.num_children; ++k)
        if (l[k] == byte) return n.first_child + k;
      return 0;
    }
    return dense_[static_cast<size_t>(n.dense) * 256 + byte];
  }

  void check_id(int32_t id) const;

  std::vector<Node> nodes_;
  std::vector<unsigned char> labels_;
  std::vector<uint32_t> dense_;  // child node index per byte, 0 = none
  std::array<uint32_t, 256> root_{};
  std::string blob_;               // all token bytes, by id
  std::vector<uint32_t> offsets_;  // token id's bytes are blob_[offsets_[id], offsets_[id+1])
};

WorldTokenizer::WorldTokenizer(std::vector<std::string> tokens) {
  // id -> bytes table
  offsets_.assign(tokens.size() + 1, 0);
  size_t total = 0;
  for (const auto& t : tokens) total += t.size();
  blob_.reserve(total);
  for (size_t id = 0; id < tokens.size(); ++id) {
    offsets_[id] = static_cast<uint32_t>(blob_.size());
    blob_ += tokens[id];
  }
  offsets_[tokens.size()] = static_cast<uint32_t>(blob_.size());

  // Build a pointer-style trie first, then lay it out breadth first so that each node's
  // children are contiguous and sorted.
  struct Tmp {
    std::vector<std::pair<unsigned char, uint32_t>> kids;  // sorted by byte
    int32_t token = 0;
  };
  std::vector<Tmp> tmp(1);
  for (size_t id = 1; id < tokens.size(); ++id) {
    uint32_t cur = 0;
    for (const char ch : tokens[id]) {
      const auto b = static_cast<unsigned char>(ch);
      auto& kids = tmp[cur].kids;
      auto it = std::lower_bound(kids.begin(), kids.end(), b,
                                 [](const auto& kv, unsigned char x) { return kv.first < x; });
      if (it == kids.end() || it->first != b) {
        const auto next = static_cast<uint32_t>(tmp.size());
        kids.insert(it, {b, next});
        tmp.emplace_back();  // invalidates `kids`; not used again below
        cur = next;
      } else {
        cur = it->second;
      }
    }
    if (!tokens[id].empty()) tmp[cur].token = static_cast<int32_t>(id);
  }

  nodes_.resize(tmp.size());
  labels_.resize(tmp.size());
  std::vector<uint32_t> order{0};  // tmp indices in breadth-first order
  order.reserve(tmp.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const Tmp& t = tmp[order[k]];
    Node& n = nodes_[k];
    n.token = t.token;
    n.first_child = static_cast<uint32_t>(order.size());
    n.num_children = static_cast<uint32_t>(t.kids.size());
    for (const auto& [b, idx] : t.kids) {
      labels_[order.size()] = b;
      order.push_back(idx);
    }
  }
  for (size_t k = 0; k < nodes_.size(); ++k) {
    Node& n = nodes_[k];
    if (k == 0 || n.num_children > kLinearScan) {
      std::array<uint32_t, 256> table{};
      for (uint32_t c = 0; c < n.num_children; ++c)
        table[labels_[n.first_child + c]] = n.first_child + c;
      if (k == 0) {
        root_ = table;
      } else {
        n.dense = static_cast<int32_t>(dense_.size() / 256);
        dense_.insert(dense_.end(), table.begin(), table.end());
      }
    }
  }
}

std::vector<int32_t> WorldTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    uint32_t node = root_[s[i]];  // every byte has a token (checked at load)
    int32_t best = nodes_[node].token;
    size_t best_end = i + 1;
    for (size_t j = i + 1; j < n; ++j) {
      node = child(node, s[j]);
      if (node == 0) break;
      if (const int32_t t = nodes_[node].token) {
        best = t;
        best_end = j + 1;
      }
    }
    out.push_back(best);
    i = best_end;
  }
  return out;
}

void WorldTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError("token id " + std::to_string(id) + " out of range (vocab size " +
                     std::to_string(vocab_size()) + ")");
  if (id != 0 && offsets_[static_cast<size_t>(id)] == offsets_[static_cast<size_t>(id) + 1])
    throw InputError("token id " + std::to_string(id) + " is not in the vocabulary");
}

std::string WorldTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) {
    check_id(id);
    const auto k = static_cast<size_t>(id);
    out.append(blob_, offsets_[k], offsets_[k + 1] - offsets_[k]);
  }
  return out;
}

std::string WorldTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  const auto k = static_cast<size_t>(id);
  return blob_.substr(offsets_[k], offsets_[k + 1] - offsets_[k]);
}

// ---- byte tokenizer ---------------------------------------------------------------------------

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out(text.size());
    for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
    return out;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string out(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i]);
      out[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
    }
    return out;
  }
  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return std::string(1, static_cast<char>(static_cast<unsigned char>(id)));
  }
  int32_t vocab_size() const override { return 256; }

 private:
  static void check_id(int32_t id) {
    if (id < 0 || id > 255)
      throw InputError("token id " + std::to_string(id) + " out of range (vocab size 256)");
  }
};

}  // namespace

std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(path + ": vocab file not found (or not a regular file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open vocab file");
  const std::string content{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw InputError(path + ": cannot read vocab file");
  if (content.empty()) throw InputError(path + ": vocab file is empty");

  std::vector<std::string> tokens(1);  // index = id; id 0 (end of document) stays empty
  // bytes -> (id, line): duplicate byte strings would make encode and decode disagree
  std::unordered_map<std::string, std::pair<uint64_t, size_t>> seen;
  std::string bytes, err;
  size_t line_no = 0, pos = 0;
  while (pos < content.size()) {
    ++line_no;
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string_view line(content.data() + pos, end - pos);
    pos = end + 1;
    const auto fail = [&](const std::string& what) {
      throw InputError(path + ":" + std::to_string(line_no) + ": " + what);
    };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) fail("empty line");

    const size_t first = line.find(' ');
    const size_t last = line.rfind(' ');
    if (first == std::string_view::npos || first == last)
      fail("expected '<id> <python literal> <byte length>'");
    uint64_t id = 0, length = 0;
    if (!parse_uint(line.substr(0, first), ~uint64_t{0} >> 1, id))
      fail("bad token id '" + std::string(line.substr(0, first)) + "'");
    if (id == 0 || id > kMaxId)
      fail("token id " + std::to_string(id) + " out of range (1.." + std::to_string(kMaxId) + ")");
    if (!parse_uint(line.substr(last + 1), ~uint64_t{0} >> 1, length))
      fail("bad byte length '" + std::string(line.substr(last + 1)) + "'");
    if (!parse_python_literal(line.substr(first + 1, last - first - 1), bytes, err)) fail(err);
    if (bytes.empty()) fail("empty token");
    if (bytes.size() != length)
      fail("byte length field says " + std::to_string(length) + " but the literal has " +
           std::to_string(bytes.size()) + " bytes");
    if (id >= tokens.size()) tokens.resize(id + 1);
    if (!tokens[id].empty()) fail("duplicate token id " + std::to_string(id));
    if (const auto [it, fresh] = seen.try_emplace(bytes, id, line_no); !fresh)
      fail("token " + std::to_string(id) + " has the same bytes as token " +
           std::to_string(it->second.first) + " (line " + std::to_string(it->second.second) + ")");
    tokens[id] = bytes;
  }

  auto tok = std::make_unique<WorldTokenizer>(std::move(tokens));
  if (const int b = tok->missing_byte(); b >= 0) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", b);
    throw InputError(path + ": no token for the single byte " + std::string(hex) +
                     " (every byte needs one)");
  }
  return tok;
}

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace eggroll
