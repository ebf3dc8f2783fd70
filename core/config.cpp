#include "core/config.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "core/file_io.h"

namespace eggroll::config {

namespace {

// ---- small text helpers ------------------------------------------------------------------

std::string hex2(unsigned char c) {
  static const char* digits = "0123456789abcdef";
  return std::string{digits[c >> 4], digits[c & 15]};
}

// A user-supplied snippet made safe for a one-line message: control characters escaped,
// long text cut.
std::string snippet(std::string_view s, size_t max_len = 60) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) out += "\\x" + hex2(c);
    else out += static_cast<char>(c);
  }
  return out;
}

std::string squote(std::string_view s) { return "'" + snippet(s) + "'"; }

// Shortest text that reads back as the same double.
std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string format_double(double v) {
  std::string s = shortest(v);
  if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
  return s;
}

bool is_null_word(std::string_view s) {
  return s == "null" || s == "Null" || s == "NULL" || s == "~";
}

// Plain (unquoted) YAML is safe for enum words like "gaussian", "0.1b", "chat_think".
bool plain_safe(std::string_view s) {
  if (s.empty() || is_null_word(s)) return false;
  if (!std::isalnum(static_cast<unsigned char>(s[0])) && s[0] != '_') return false;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-' && c != '+') return false;
  }
  return true;
}

bool valid_component(std::string_view c) {
  if (c.empty()) return false;
  for (char ch : c) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (!std::isalnum(u) && u != '_') return false;
  }
  return true;
}

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string last_component(std::string_view s) {
  size_t dot = s.rfind('.');
  return std::string(dot == std::string_view::npos ? s : s.substr(dot + 1));
}

std::string parent_of(std::string_view s) {
  size_t dot = s.rfind('.');
  return dot == std::string_view::npos ? std::string() : std::string(s.substr(0, dot));
}

const char* type_name(Type t) {
  switch (t) {
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::UInt64: return "uint64";
    case Type::Double: return "double";
    case Type::String: return "string";
    case Type::Enum: return "enum";
    case Type::StringList: return "list";
  }
  return "?";
}

bool value_matches_type(Type t, const Value& v) {
  switch (t) {
    case Type::Bool: return std::holds_alternative<bool>(v);
    case Type::Int: return std::holds_alternative<int64_t>(v);
    case Type::UInt64: return std::holds_alternative<uint64_t>(v);
    case Type::Double: return std::holds_alternative<double>(v);
    case Type::String:
    case Type::Enum: return std::holds_alternative<std::string>(v);
    case Type::StringList: return std::holds_alternative<std::vector<std::string>>(v);
  }
  return false;
}

std::string bound_text(const Entry& e, double v) {
  if (e.type != Type::Double && v == std::floor(v) && std::fabs(v) < 1e18) {
    return std::to_string(static_cast<long long>(v));
  }
  return shortest(v);
}

std::string range_text(const Entry& e) {
  if (e.min && e.max) {
    return std::string(" in ") + (e.min->exclusive ? "(" : "[") + bound_text(e, e.min->value) +
           ", " + bound_text(e, e.max->value) + (e.max->exclusive ? ")" : "]");
  }
  if (e.min) return std::string(e.min->exclusive ? " > " : " >= ") + bound_text(e, e.min->value);
  if (e.max) return std::string(e.max->exclusive ? " < " : " <= ") + bound_text(e, e.max->value);
  return "";
}

// ---- validation of one value ---------------------------------------------------------------

// Checks type and range of v against e; returns "" when fine, else the message (without the
// "key: " prefix).
std::string check_value(const Entry& e, const Value& v) {
  if (!value_matches_type(e.type, v)) {
    return std::string("internal: value of the wrong C++ type for a ") + type_name(e.type) + " key";
  }
  double x = 0;
  std::string text;
  switch (e.type) {
    case Type::Int: {
      int64_t i = std::get<int64_t>(v);
      if (i < INT_MIN || i > INT_MAX) {
        return std::to_string(i) + " is out of range for a 32-bit integer (expected " +
               e.expected() + ")";
      }
      x = static_cast<double>(i);
      text = std::to_string(i);
      break;
    }
    case Type::UInt64:
      x = static_cast<double>(std::get<uint64_t>(v));
      text = std::to_string(std::get<uint64_t>(v));
      break;
    case Type::Double: {
      x = std::get<double>(v);
      if (!std::isfinite(x)) return "expected a finite number, got " + shortest(x);
      text = shortest(x);
      break;
    }
    case Type::Enum: {
      const std::string& s = std::get<std::string>(v);
      if (std::find(e.choices.begin(), e.choices.end(), s) == e.choices.end()) {
        return "expected " + e.expected() + ", got " + squote(s);
      }
      return "";
    }
    default:
      return "";
  }
  bool ok = true;
  if (e.min) ok = ok && (e.min->exclusive ? x > e.min->value : x >= e.min->value);
  if (e.max) ok = ok && (e.max->exclusive ? x < e.max->value : x <= e.max->value);
  if (!ok) return text + " is out of range (expected " + e.expected() + ")";
  return "";
}

// ---- scalar parsing ----------------------------------------------------------------------

bool parse_int64(std::string_view s, int64_t& out, bool& overflow) {
  overflow = false;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  size_t digits_from = s[0] == '-' ? 1 : 0;
  if (digits_from == s.size()) return false;
  for (size_t i = digits_from; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (r.ec == std::errc::result_out_of_range) {
    overflow = true;
    return false;
  }
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_uint64(std::string_view s, uint64_t& out, bool& overflow) {
  overflow = false;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0 : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (r.ec == std::errc::result_out_of_range) {
    overflow = true;
    return false;
  }
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_double(std::string_view s, double& out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  // Only decimal notation: digits, sign, point, exponent (no "inf", "nan", hex).
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')) {
      return false;
    }
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, std::chars_format::general);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  return std::isfinite(out);
}

std::string got_text(const YAML::Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.IsNull()) return "an empty value";
  return squote(n.Scalar());
}

// Converts a YAML node to a value of e's type; on failure returns nullopt and sets err.
std::optional<Value> convert(const Entry& e, const YAML::Node& n, std::string& err) {
  auto fail = [&]() -> std::optional<Value> {
    err = "expected " + e.expected() + ", got " + got_text(n);
    return std::nullopt;
  };
  if (e.type == Type::StringList) {
    if (n.IsNull()) return Value{std::vector<std::string>{}};
    if (n.IsScalar()) return Value{std::vector<std::string>{n.Scalar()}};
    if (!n.IsSequence()) return fail();
    std::vector<std::string> items;
    size_t idx = 0;
    for (const auto& item : n) {
      ++idx;
      if (!item.IsScalar()) {
        err = "expected " + e.expected() + ", got " + got_text(item) + " as element " +
              std::to_string(idx);
        return std::nullopt;
      }
      items.push_back(item.Scalar());
    }
    return Value{std::move(items)};
  }
  if (e.type == Type::String || e.type == Type::Enum) {
    if (n.IsNull()) return Value{std::string()};
    if (!n.IsScalar()) return fail();
    return Value{n.Scalar()};
  }
  if (!n.IsScalar()) return fail();
  const std::string& s = n.Scalar();
  switch (e.type) {
    case Type::Bool:
      if (s == "true" || s == "True" || s == "TRUE") return Value{true};
      if (s == "false" || s == "False" || s == "FALSE") return Value{false};
      return fail();
    case Type::Int: {
      int64_t i = 0;
      bool overflow = false;
      if (parse_int64(s, i, overflow)) return Value{i};
      if (overflow) {
        err = squote(s) + " is out of range for a 32-bit integer (expected " + e.expected() + ")";
        return std::nullopt;
      }
      return fail();
    }
    case Type::UInt64: {
      uint64_t u = 0;
      bool overflow = false;
      if (parse_uint64(s, u, overflow)) return Value{u};
      if (overflow) {
        err = squote(s) + " is out of range for a 64-bit unsigned integer";
        return std::nullopt;
      }
      return fail();
    }
    case Type::Double: {
      double d = 0;
      if (parse_double(s, d)) return Value{d};
      return fail();
    }
    default:
      return fail();
  }
}

std::string mark_text(const std::string& source, const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return source;
  std::string pos = std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  return source.empty() ? pos : source + ":" + pos;
}

// Records where the first parse event of a document is.
struct FirstMark : YAML::EventHandler {
  YAML::Mark mark = YAML::Mark::null_mark();
  bool seen = false;
  void note(const YAML::Mark& m) {
    if (!seen) {
      mark = m;
      seen = true;
    }
  }
  void OnDocumentStart(const YAML::Mark& m) override { note(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { note(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { note(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override {
    note(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    note(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    note(m);
  }
  void OnMapEnd() override {}
};

// The single YAML document in `text` (a null node when there is none). Errors name
// "<source>:<line>:<col>" ("<line>:<col>" when source is ""). yaml-cpp 0.7 returns an empty
// document for some malformed text (a stray ',') and LoadAll then loops forever, allocating:
// documents are counted here, at most two, and a second one is an error.
YAML::Node parse_document(const std::string& text, const std::string& source) {
  auto at = [&](const YAML::Mark& m) {
    std::string s = mark_text(source, m);
    return s.empty() ? std::string() : s + ": ";
  };
  YAML::Node node;
  try {
    node = YAML::Load(text);
    std::istringstream in(text);
    YAML::Parser parser(in);
    FirstMark first;
    if (parser.HandleNextDocument(first)) {
      FirstMark second;
      if (parser.HandleNextDocument(second)) {
        throw InputError(at(second.mark) +
                         "expected one YAML document: found a second one ('---') or stray text "
                         "(such as a ',' outside [] or {})");
      }
    }
  } catch (const YAML::ParserException& e) {
    throw InputError(at(e.mark) + snippet(e.msg, 200));
  } catch (const YAML::Exception& e) {
    throw InputError(at(YAML::Mark::null_mark()) + snippet(e.msg, 200));
  }
  return node;
}

std::string section_example(const Schema& s, const std::string& section) {
  for (const auto& e : s.entries()) {
    if (e.key.rfind(section + ".", 0) == 0) return e.key;
  }
  return section + ".<key>";
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string unknown_key_message(const Schema& s, const std::string& key) {
  std::string msg = "unknown key " + squote(key);
  std::string sug = s.suggest(key);
  if (!sug.empty()) msg += " (did you mean '" + sug + "'?)";
  return msg;
}

std::string override_key(std::string_view ov) {
  std::string key(ov.substr(0, ov.find('=')));
  while (!key.empty() && key.back() == ' ') key.pop_back();
  while (!key.empty() && key.front() == ' ') key.erase(key.begin());
  return key;
}

std::string yaml_double_quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case 0: out += "\\0"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += "\\x" + hex2(c);
        else out += ch;
    }
  }
  out += '"';
  return out;
}

// ---- Entry / Schema ------------------------------------------------------------------------

std::string Entry::expected() const {
  switch (type) {
    case Type::Bool: return "true or false";
    case Type::Int: return "an integer" + range_text(*this);
    case Type::UInt64: return "a non-negative integer" + range_text(*this);
    case Type::Double: return "a number" + range_text(*this);
    case Type::String: return "a string";
    case Type::StringList: return "a list of strings";
    case Type::Enum: {
      std::string s = "one of ";
      for (size_t i = 0; i < choices.size(); ++i) {
        if (i) s += ", ";
        s += choices[i].empty() ? "\"\"" : choices[i];
      }
      return s;
    }
  }
  return "?";
}

Schema& Schema::add(Entry e) {
  auto bad = [&](const std::string& why) {
    throw std::logic_error("config schema: key '" + e.key + "': " + why);
  };
  auto parts = split_key(e.key);
  for (const auto& p : parts) {
    if (!valid_component(p)) bad("components must be non-empty [A-Za-z0-9_]+");
  }
  if (index_.count(e.key)) bad("declared twice");
  if (sections_.count(e.key)) bad("is already a section of other keys");
  std::string prefix;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix += (i ? "." : "") + parts[i];
    if (index_.count(prefix)) bad("its section '" + prefix + "' is already a key");
  }
  if (e.type == Type::Enum && e.choices.empty()) bad("enum without choices");
  if (e.type != Type::Enum && !e.choices.empty()) bad("choices on a non-enum key");
  bool numeric = e.type == Type::Int || e.type == Type::UInt64 || e.type == Type::Double;
  if (!numeric && (e.min || e.max)) bad("range on a non-numeric key");
  if (e.default_value) {
    std::string err = check_value(e, *e.default_value);
    if (!err.empty()) bad("invalid default: " + err);
  }
  if (e.doc.find('\n') != std::string::npos) bad("doc must be one line");

  size_t idx = entries_.size();
  prefix.clear();
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix += (i ? "." : "") + parts[i];
    sections_.emplace(prefix, idx);
  }
  index_.emplace(e.key, idx);
  entries_.push_back(std::move(e));
  return *this;
}

namespace {
// A schema entry from the builder arguments (choices, for an enum, are the caller's).
template <typename T>
Entry make_entry(const std::string& key, Type type, const std::optional<T>& def, const std::string& doc,
                 std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt) {
  Entry e;
  e.key = key;
  e.type = type;
  if (def) e.default_value = Value{*def};
  e.doc = doc;
  e.min = min;
  e.max = max;
  return e;
}
}  // namespace

Schema& Schema::boolean(const std::string& key, std::optional<bool> def, const std::string& doc) {
  return add(make_entry(key, Type::Bool, def, doc));
}

Schema& Schema::integer(const std::string& key, std::optional<int> def, const std::string& doc,
                        std::optional<Bound> min, std::optional<Bound> max) {
  const std::optional<int64_t> d = def ? std::optional<int64_t>(*def) : std::nullopt;
  return add(make_entry(key, Type::Int, d, doc, min, max));
}

Schema& Schema::uint64(const std::string& key, std::optional<uint64_t> def, const std::string& doc,
                       std::optional<Bound> min, std::optional<Bound> max) {
  return add(make_entry(key, Type::UInt64, def, doc, min, max));
}

Schema& Schema::real(const std::string& key, std::optional<double> def, const std::string& doc,
                     std::optional<Bound> min, std::optional<Bound> max) {
  return add(make_entry(key, Type::Double, def, doc, min, max));
}

Schema& Schema::string(const std::string& key, std::optional<std::string> def,
                       const std::string& doc) {
  return add(make_entry(key, Type::String, def, doc));
}

Schema& Schema::enumeration(const std::string& key, std::vector<std::string> choices,
                            std::optional<std::string> def, const std::string& doc) {
  Entry e = make_entry(key, Type::Enum, def, doc);
  e.choices = std::move(choices);
  return add(std::move(e));
}

Schema& Schema::string_list(const std::string& key, std::optional<std::vector<std::string>> def,
                            const std::string& doc) {
  return add(make_entry(key, Type::StringList, def, doc));
}

const Entry* Schema::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::optional<size_t> Schema::index_of(std::string_view key) const {
  auto it = index_.find(std::string(key));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

bool Schema::is_section(std::string_view path) const {
  return sections_.count(std::string(path)) != 0;
}

std::string Schema::suggest(std::string_view unknown) const {
  std::vector<std::string> candidates;
  for (const auto& e : entries_) candidates.push_back(e.key);
  std::vector<std::pair<size_t, std::string>> secs;
  for (const auto& [name, idx] : sections_) secs.emplace_back(idx, name);
  std::sort(secs.begin(), secs.end());
  for (auto& s : secs) candidates.push_back(s.second);

  // 1. close in full path
  size_t limit = std::clamp<size_t>(unknown.size() / 3, 1, 3);
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(unknown, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best_d <= limit) return best;

  // 2. same section, one last component a prefix of the other ("generation.temp")
  std::string parent = parent_of(unknown), last = last_component(unknown);
  if (last.size() >= 3) {
    for (const auto& e : entries_) {
      if (parent_of(e.key) != parent) continue;
      std::string el = last_component(e.key);
      if (el.rfind(last, 0) == 0 || last.rfind(el, 0) == 0) return e.key;
    }
  }

  // 3. the last component is (nearly) a key of another section ("optim.sigma" -> "es.sigma")
  size_t last_limit = std::clamp<size_t>(last.size() / 3, 1, 2);
  best.clear();
  best_d = SIZE_MAX;
  for (const auto& e : entries_) {
    size_t d = edit_distance(last, last_component(e.key));
    if (d < best_d) {
      best_d = d;
      best = e.key;
    }
  }
  if (best_d <= last_limit && best_d < last.size()) return best;
  return "";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance.
  size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// ---- Config --------------------------------------------------------------------------------

Config::Config(Schema schema) : schema_(std::move(schema)) {
  const auto& es = schema_.entries();
  values_.resize(es.size());
  origins_.resize(es.size());
  for (size_t i = 0; i < es.size(); ++i) {
    if (es[i].default_value) {
      values_[i] = es[i].default_value;
      origins_[i] = {Origin::Default, "default"};
    }
  }
}

size_t Config::slot(std::string_view key) const {
  auto i = schema_.index_of(key);
  if (!i) throw std::logic_error("config: no key '" + std::string(key) + "' in the schema");
  return *i;
}

const Value& Config::get(std::string_view key) const {
  size_t i = slot(key);
  if (!values_[i]) throw std::logic_error("config: key '" + std::string(key) + "' is not set");
  return *values_[i];
}

bool Config::has(std::string_view key) const { return values_[slot(key)].has_value(); }

const Origin& Config::origin(std::string_view key) const { return origins_[slot(key)]; }

template <typename T>
static const T& get_as(const Config& c, std::string_view key, const char* want) {
  const Value& v = c.get(key);
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw std::logic_error("config: key '" + std::string(key) + "' is not of type " + want);
}

bool Config::get_bool(std::string_view key) const { return get_as<bool>(*this, key, "bool"); }
int Config::get_int(std::string_view key) const {
  return static_cast<int>(get_as<int64_t>(*this, key, "int"));
}
uint64_t Config::get_uint64(std::string_view key) const {
  return get_as<uint64_t>(*this, key, "uint64");
}
double Config::get_double(std::string_view key) const {
  return get_as<double>(*this, key, "double");
}
const std::string& Config::get_string(std::string_view key) const {
  return get_as<std::string>(*this, key, "string");
}
const std::vector<std::string>& Config::get_list(std::string_view key) const {
  return get_as<std::vector<std::string>>(*this, key, "list");
}

void Config::set(std::string_view key, Value v, Origin origin) { set_value(slot(key), std::move(v), std::move(origin)); }

void Config::set_value(size_t i, Value v, Origin origin) {
  const Entry& e = schema_.entries()[i];
  if (!value_matches_type(e.type, v)) {
    throw std::logic_error("config: setting key '" + e.key + "' (" + type_name(e.type) +
                           ") with a value of another type");
  }
  std::string err = check_value(e, v);
  if (!err.empty()) {
    std::string where = origin.kind == Origin::Code || origin.where.empty() ? "" : origin.where + ": ";
    throw InputError(where + e.key + ": " + err);
  }
  values_[i] = std::move(v);
  origins_[i] = std::move(origin);
}

void Config::set_bool(std::string_view key, bool v) { set_value(slot(key), Value{v}, {Origin::Code, ""}); }
void Config::set_int(std::string_view key, int64_t v) { set_value(slot(key), Value{v}, {Origin::Code, ""}); }
void Config::set_uint64(std::string_view key, uint64_t v) {
  set_value(slot(key), Value{v}, {Origin::Code, ""});
}
void Config::set_double(std::string_view key, double v) {
  set_value(slot(key), Value{v}, {Origin::Code, ""});
}
void Config::set_string(std::string_view key, const std::string& v) {
  set_value(slot(key), Value{v}, {Origin::Code, ""});
}
void Config::set_list(std::string_view key, const std::vector<std::string>& v) {
  set_value(slot(key), Value{v}, {Origin::Code, ""});
}

void Config::require_complete() const {
  const auto& es = schema_.entries();
  for (size_t i = 0; i < es.size(); ++i) {
    if (!values_[i]) {
      throw InputError("missing required key '" + es[i].key + "': expected " + es[i].expected());
    }
  }
}

std::string format_value(const Entry& e, const Value& v) {
  switch (e.type) {
    case Type::Bool: return std::get<bool>(v) ? "true" : "false";
    case Type::Int: return std::to_string(std::get<int64_t>(v));
    case Type::UInt64: return std::to_string(std::get<uint64_t>(v));
    case Type::Double: return format_double(std::get<double>(v));
    case Type::String: return yaml_double_quoted(std::get<std::string>(v));
    case Type::Enum: {
      const auto& s = std::get<std::string>(v);
      return plain_safe(s) ? s : yaml_double_quoted(s);
    }
    case Type::StringList: {
      const auto& l = std::get<std::vector<std::string>>(v);
      std::string out = "[";
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += ", ";
        out += yaml_double_quoted(l[i]);
      }
      return out + "]";
    }
  }
  return "";
}

namespace {
struct TreeNode {
  std::string name;
  int entry = -1;
  std::vector<std::unique_ptr<TreeNode>> children;
  TreeNode* child(const std::string& n) {
    for (auto& c : children) {
      if (c->entry < 0 && c->name == n) return c.get();
    }
    children.push_back(std::make_unique<TreeNode>());
    children.back()->name = n;
    return children.back().get();
  }
};
}  // namespace

std::string Config::to_yaml(bool with_docs) const {
  require_complete();
  TreeNode root;
  const auto& es = schema_.entries();
  for (size_t i = 0; i < es.size(); ++i) {
    auto parts = split_key(es[i].key);
    TreeNode* n = &root;
    for (size_t p = 0; p + 1 < parts.size(); ++p) n = n->child(parts[p]);
    n->children.push_back(std::make_unique<TreeNode>());
    n->children.back()->name = parts.back();
    n->children.back()->entry = static_cast<int>(i);
  }
  std::ostringstream out;
  auto emit = [&](auto&& self, const TreeNode& node, int depth) -> void {
    for (const auto& c : node.children) {
      std::string indent(static_cast<size_t>(depth) * 2, ' ');
      if (c->entry < 0) {
        out << indent << c->name << ":\n";
        self(self, *c, depth + 1);
        continue;
      }
      const Entry& e = es[static_cast<size_t>(c->entry)];
      out << indent << c->name << ": " << format_value(e, *values_[static_cast<size_t>(c->entry)]);
      if (with_docs) {
        std::string doc = e.doc;
        if (e.type == Type::Enum) doc += (doc.empty() ? "" : " ") + std::string("(") + e.expected() + ")";
        if (!doc.empty()) out << "  # " << doc;
      }
      out << "\n";
    }
  };
  emit(emit, root, 0);
  return out.str();
}

uint64_t Config::fingerprint() const { return fnv1a64(to_yaml(false)); }

std::string Config::fingerprint_hex() const {
  uint64_t h = fingerprint();
  std::string s;
  for (int i = 7; i >= 0; --i) s += hex2(static_cast<unsigned char>(h >> (8 * i)));
  return s;
}

// ---- loading -------------------------------------------------------------------------------

namespace {

void assign_node(Config& c, size_t idx, const YAML::Node& n, Origin origin) {
  const Entry& e = c.schema().entries()[idx];
  std::string err;
  auto v = convert(e, n, err);
  if (!v) throw InputError(origin.where + ": " + e.key + ": " + err);
  c.set(e.key, std::move(*v), std::move(origin));
}

struct Loader {
  const Schema& schema;
  const std::string& source;
  std::vector<bool> seen;  // set by the file (duplicate detection)

  void walk(Config& c, const YAML::Node& map, const std::string& prefix) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;  // copies: the iterator yields a temporary pair
      const YAML::Node v = it->second;
      std::string at = mark_text(source, k.Mark());
      if (!k.IsScalar()) {
        throw InputError(at + ": config keys must be plain names" +
                         (prefix.empty() ? std::string() : " (in section '" + prefix + "')"));
      }
      std::string full = prefix.empty() ? k.Scalar() : prefix + "." + k.Scalar();
      if (auto idx = schema.index_of(full)) {
        if (seen[*idx]) throw InputError(at + ": duplicate key '" + full + "'");
        seen[*idx] = true;
        assign_node(c, *idx, v, {Origin::File, mark_text(source, v.Mark().is_null() ? k.Mark() : v.Mark())});
      } else if (schema.is_section(full)) {
        if (v.IsNull()) continue;  // "es:" with nothing under it
        if (!v.IsMap()) {
          throw InputError(at + ": '" + full + "' is a section: expected a mapping of its keys (e.g. '" +
                           section_example(schema, full) + "'), got " + got_text(v));
        }
        walk(c, v, full);
      } else {
        throw InputError(at + ": " + unknown_key_message(schema, full));
      }
    }
  }
};

}  // namespace

Config load_string(const Schema& schema, const std::string& yaml_text, const std::string& source,
                   const std::vector<std::string>& overrides) {
  Config c(schema);
  YAML::Node root = parse_document(yaml_text, source);
  if (!root.IsNull()) {
    if (!root.IsMap()) {
      throw InputError(mark_text(source, root.Mark()) +
                       ": expected a mapping of config keys at the top level, got " + got_text(root));
    }
    Loader l{schema, source, std::vector<bool>(schema.entries().size(), false)};
    l.walk(c, root, "");
  }

  for (const std::string& ov : overrides) {
    std::string where = "override " + squote(ov);
    size_t eq = ov.find('=');
    if (eq == std::string::npos) throw InputError(where + ": expected key.path=value");
    const std::string key = override_key(ov);
    std::string text = ov.substr(eq + 1);
    if (key.empty()) throw InputError(where + ": expected key.path=value (the key is empty)");
    auto idx = schema.index_of(key);
    if (!idx) {
      if (schema.is_section(key)) {
        throw InputError(where + ": '" + key + "' is a section, not a key; set one of its keys (e.g. '" +
                         section_example(schema, key) + "=...')");
      }
      throw InputError(where + ": " + unknown_key_message(schema, key));
    }
    YAML::Node node;  // null unless there is text
    if (text.find_first_not_of(" \t") != std::string::npos) {
      try {
        node = parse_document(text, "");
      } catch (const InputError& e) {
        throw InputError(where + ": " + key + ": not a valid YAML value (" + e.what() + ")");
      }
    }
    assign_node(c, *idx, node, {Origin::Override, where});
  }

  try {
    c.require_complete();
  } catch (const InputError& e) {
    throw InputError(source + ": " + e.what());
  }
  return c;
}


Config load(const Schema& schema, const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return load_string(schema, "", "<no config file>", overrides);
  return load_string(schema, read_file(path, "config file"), path, overrides);
}

// ---- comparison ----------------------------------------------------------------------------

namespace {
bool ignored(const std::string& key, const std::vector<std::string>& ignore) {
  for (const auto& pat : ignore) {
    if (pat == key) return true;
    if (pat.size() >= 2 && pat.compare(pat.size() - 2, 2, ".*") == 0 &&
        key.rfind(pat.substr(0, pat.size() - 1), 0) == 0) {
      return true;
    }
  }
  return false;
}

std::string text_of(const Config& c, const Entry& e) {
  return c.has(e.key) ? format_value(e, c.get(e.key)) : "<unset>";
}
}  // namespace

std::vector<KeyDiff> diff(const Config& a, const Config& b, const std::vector<std::string>& ignore) {
  std::vector<KeyDiff> out;
  for (const auto& e : a.schema().entries()) {
    if (ignored(e.key, ignore)) continue;
    const Entry* eb = b.schema().find(e.key);
    std::string ta = text_of(a, e);
    if (!eb) {
      out.push_back({e.key, ta, "<absent>"});
      continue;
    }
    std::string tb = text_of(b, *eb);
    if (ta != tb || e.type != eb->type) out.push_back({e.key, ta, tb});
  }
  for (const auto& e : b.schema().entries()) {
    if (ignored(e.key, ignore) || a.schema().find(e.key)) continue;
    out.push_back({e.key, "<absent>", text_of(b, e)});
  }
  return out;
}

void require_same(const Config& a, const std::string& what_a, const Config& b,
                  const std::string& what_b, const std::vector<std::string>& ignore) {
  auto d = diff(a, b, ignore);
  if (d.empty()) return;
  std::string msg = what_b + " differs from " + what_a + " at key '" + d[0].key + "': " +
                    snippet(d[0].b) + " vs " + snippet(d[0].a);
  if (d.size() > 1) {
    msg += " (" + std::to_string(d.size() - 1) + " more: ";
    for (size_t i = 1; i < d.size() && i <= 5; ++i) msg += (i > 1 ? ", " : "") + d[i].key;
    if (d.size() > 6) msg += ", ...";
    msg += ")";
  }
  throw InputError(msg);
}

}  // namespace eggroll::config
