#pragma once
// Strict, schema-driven configuration: YAML file + dotted `key.path=value` overrides.
//
// A Schema declares every key in code (dotted path, type, default, range, one-line doc). Loading
// parses the YAML file, applies overrides (each value parsed as a YAML scalar or flow sequence,
// so `es.exclude=[emb.weight,head.weight]` works), and validates strictly: unknown keys (with a
// "did you mean" suggestion), wrong types, out-of-range values and missing required keys are all
// InputErrors that name the full key path. The result, a Config, holds one value per schema key;
// it can be written back as YAML (every key, defaults included, in schema order) and loading
// that text again yields an identical Config.
//
//   config::Schema s;
//   s.integer("es.rank", 1, "rank r of the perturbation", config::at_least(1))
//    .real("es.sigma", 1e-3, "noise scale", config::greater_than(0));
//   config::Config c = config::load(s, "run.yaml", {"es.rank=4"});
//   int r = c.get_int("es.rank");
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace eggroll::config {

enum class Type {
  Bool,        // true | false
  Int,         // 32-bit signed integer (C++ int)
  UInt64,      // 0 .. 2^64-1, decimal or 0x-prefixed hex
  Double,      // finite floating point number
  String,      // any scalar, taken verbatim; null / empty value = ""
  Enum,        // one of a fixed list of strings
  StringList,  // list of scalars (a single scalar is a one-element list; null = [])
};

// bool (Bool), int64_t (Int), uint64_t (UInt64), double (Double), std::string (String, Enum),
// std::vector<std::string> (StringList).
using Value = std::variant<bool, int64_t, uint64_t, double, std::string, std::vector<std::string>>;

// One end of a numeric range. Bounds of UInt64 keys are compared as doubles.
struct Bound {
  double value = 0;
  bool exclusive = false;
};
inline Bound at_least(double v) { return {v, false}; }      // min, inclusive
inline Bound greater_than(double v) { return {v, true}; }   // min, exclusive
inline Bound at_most(double v) { return {v, false}; }       // max, inclusive
inline Bound less_than(double v) { return {v, true}; }      // max, exclusive

struct Entry {
  std::string key;  // dotted path, e.g. "es.sigma"; components are [A-Za-z0-9_]+
  Type type = Type::String;
  std::optional<Value> default_value;  // nullopt = required
  std::vector<std::string> choices;    // Enum only
  std::optional<Bound> min, max;       // Int, UInt64, Double only
  std::string doc;                     // one line

  bool required() const { return !default_value.has_value(); }
  // "an integer >= 1", "a number in (0, 1]", "one of gaussian, rademacher", ...
  std::string expected() const;
};

// The declared keys, in order. Builder methods throw std::logic_error on a malformed
// declaration (bad key, duplicate, a key that is also a section, invalid default).
class Schema {
 public:
  Schema& add(Entry e);
  Schema& boolean(const std::string& key, std::optional<bool> def, const std::string& doc);
  Schema& integer(const std::string& key, std::optional<int> def, const std::string& doc,
                  std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt);
  Schema& uint64(const std::string& key, std::optional<uint64_t> def, const std::string& doc,
                 std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt);
  Schema& real(const std::string& key, std::optional<double> def, const std::string& doc,
               std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt);
  Schema& string(const std::string& key, std::optional<std::string> def, const std::string& doc);
  Schema& enumeration(const std::string& key, std::vector<std::string> choices,
                      std::optional<std::string> def, const std::string& doc);
  Schema& string_list(const std::string& key, std::optional<std::vector<std::string>> def,
                      const std::string& doc);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view key) const;
  std::optional<size_t> index_of(std::string_view key) const;
  bool is_section(std::string_view path) const;  // "es" when "es.sigma" exists
  // The closest known key or section to an unknown path ("" when nothing is close).
  std::string suggest(std::string_view unknown) const;

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::unordered_map<std::string, size_t> sections_;  // prefix -> first entry using it
};

// Where a key's value came from.
struct Origin {
  enum Kind { Unset, Default, File, Override, Code } kind = Unset;
  std::string where;  // "cfg.yaml:3:10", "override 'es.rank=4'", ...
};

// One value per schema key. Getters throw std::logic_error for an unknown key or the wrong
// type (programming errors); setters validate like loading and throw InputError.
class Config {
 public:
  Config() = default;
  explicit Config(Schema schema);  // every key set to its default; required keys unset

  const Schema& schema() const { return schema_; }

  bool get_bool(std::string_view key) const;
  int get_int(std::string_view key) const;
  uint64_t get_uint64(std::string_view key) const;
  double get_double(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;  // String and Enum
  const std::vector<std::string>& get_list(std::string_view key) const;
  const Value& get(std::string_view key) const;
  bool has(std::string_view key) const;  // false only for an unset required key
  const Origin& origin(std::string_view key) const;

  void set_bool(std::string_view key, bool v);
  void set_int(std::string_view key, int64_t v);
  void set_uint64(std::string_view key, uint64_t v);
  void set_double(std::string_view key, double v);
  void set_string(std::string_view key, const std::string& v);  // String and Enum
  void set_list(std::string_view key, const std::vector<std::string>& v);
  // Generic setter: v must hold the key's C++ type (std::logic_error otherwise); a bad value
  // throws InputError "<origin.where>: <key>: <why>".
  void set(std::string_view key, Value v, Origin origin = {Origin::Code, ""});

  // Throws InputError "missing required key 'k': expected ..." for the first unset key.
  void require_complete() const;

  // Every key in schema order, nested by section (a section is written where its first key
  // is declared; declare sections contiguously). with_docs adds "# doc" comments (enum keys
  // list their choices). Strings are double-quoted and escaped, so each value is one line.
  std::string to_yaml(bool with_docs = true) const;
  // FNV-1a 64 of to_yaml(false): stable across runs and machines.
  uint64_t fingerprint() const;
  std::string fingerprint_hex() const;  // 16 lowercase hex digits

 private:
  size_t slot(std::string_view key) const;
  void set_value(size_t i, Value v, Origin origin);

  Schema schema_;
  std::vector<std::optional<Value>> values_;
  std::vector<Origin> origins_;
};

// Parse `path` (YAML; "" = no file), apply `overrides` ("key.path=value", later ones win),
// validate, and require every key to be set. All failures are InputError.
Config load(const Schema& schema, const std::string& path,
            const std::vector<std::string>& overrides = {});
// Same, from YAML text; `source` names it in messages ("cfg.yaml", "<string>").
Config load_string(const Schema& schema, const std::string& yaml_text, const std::string& source,
                   const std::vector<std::string>& overrides = {});

// A value as YAML text, as to_yaml writes it ("0.001", "\"runs\"", "[\"a\", \"b\"]").
std::string format_value(const Entry& e, const Value& v);

// "unknown key 'k'" plus " (did you mean 'x'?)" when the schema has a close key or section.
std::string unknown_key_message(const Schema& s, const std::string& key);
// The key of a "key.path=value" override, spaces around it removed (the whole text without '=').
std::string override_key(std::string_view override_text);

// A YAML double-quoted scalar that reads back as `s`, on one line: \ " escaped, newline, tab,
// CR and NUL as \n \t \r \0, other control characters as \xHH.
std::string yaml_double_quoted(std::string_view s);

struct KeyDiff {
  std::string key;
  std::string a, b;  // values as YAML text; "<absent>" when a key exists on one side only
};
// Keys whose values differ, in schema order (a's, then keys only b has). Keys in `ignore`
// (exact paths, or "section.*") are skipped.
std::vector<KeyDiff> diff(const Config& a, const Config& b,
                          const std::vector<std::string>& ignore = {});
// Throws InputError "<what_b> differs from <what_a> at key 'k': a vs b" (first difference,
// and a count of the rest) when diff() is not empty.
void require_same(const Config& a, const std::string& what_a, const Config& b,
                  const std::string& what_b, const std::vector<std::string>& ignore = {});

// Edit distance (Levenshtein, with adjacent transpositions counted as 1).
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace eggroll::config
