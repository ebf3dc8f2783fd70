#include "tasks/math.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numbers>

#include "core/error.h"
#include "tasks/jsonl.h"

namespace eggroll::math {

namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// s with every `from` replaced by `to` (one left-to-right pass).
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.substr(i, from.size()) == from) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Replaces the LaTeX command `cmd` (e.g. "\\left") by `to` where it is not the prefix of a
// longer command ("\\left" but not "\\leftarrow").
std::string replace_command(std::string_view s, std::string_view cmd, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.substr(i, cmd.size()) == cmd && (i + cmd.size() >= s.size() || !is_letter(s[i + cmd.size()]))) {
      out += to;
      i += cmd.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Index of the '}' closing the '{' at s[open], or npos.
size_t closing_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); i++) {
    if (s[i] == '{') depth++;
    else if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

// \cmd{X} -> X for every well-formed occurrence.
std::string unwrap_command(std::string s, std::string_view cmd) {
  const std::string open = std::string(cmd) + "{";
  size_t from = 0;
  for (;;) {
    const size_t p = s.find(open, from);
    if (p == std::string::npos) return s;
    const size_t b = p + cmd.size();
    const size_t e = closing_brace(s, b);
    if (e == std::string::npos) return s;
    s = s.substr(0, p) + s.substr(b + 1, e - b - 1) + s.substr(e + 1);
    from = p;
  }
}

std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

// ---- N7: trailing unit words ----

bool is_unit_word(std::string_view w) {
  static const char* const kUnits[] = {
      "unit", "units", "degree", "degrees", "cm", "centimeter", "centimeters", "centimetre", "centimetres",
      "meter", "meters", "metre", "metres", "km", "kilometer", "kilometers", "mm", "millimeter", "millimeters",
      "inch", "inches", "foot", "feet", "ft", "yard", "yards", "mile", "miles", "second", "seconds", "sec",
      "minute", "minutes", "min", "hour", "hours", "hr", "hrs", "day", "days", "week", "weeks", "month",
      "months", "year", "years", "dollar", "dollars", "cent", "cents", "square", "sq", "cubic", "mph",
      "kg", "kilogram", "kilograms", "gram", "grams", "pound", "pounds", "lb", "lbs", "ounce", "ounces",
      "liter", "liters", "litre", "litres", "percent", "radians", "radian"};
  const std::string lw = lower_ascii(std::string(w));
  for (const char* u : kUnits)
    if (lw == u) return true;
  return false;
}

std::string strip_units(std::string s) {
  auto rtrim = [](std::string& t) {
    while (!t.empty() && is_space(t.back())) t.pop_back();
  };
  rtrim(s);
  size_t end = s.size();  // s[run_start, end) is a run of unit words (with spaces, exponents)
  size_t run_start = end;
  for (;;) {
    size_t e = run_start;
    while (e > 0 && is_space(s[e - 1])) e--;
    // an optional exponent after the word: ^2 ^3 ^{2} ^{3}
    size_t w_end = e;
    for (std::string_view ex : {"^{2}", "^{3}", "^2", "^3"})
      if (w_end >= ex.size() && std::string_view(s).substr(w_end - ex.size(), ex.size()) == ex) {
        w_end -= ex.size();
        break;
      }
    size_t w = w_end;
    while (w > 0 && is_letter(s[w - 1])) w--;
    if (w == w_end || (w > 0 && s[w - 1] == '\\') || !is_unit_word(std::string_view(s).substr(w, w_end - w))) break;
    run_start = w;
  }
  if (run_start == end) return s;
  size_t before = run_start;
  while (before > 0 && is_space(s[before - 1])) before--;
  if (before == 0) return s;
  const char c = s[before - 1];
  if (!is_digit(c) && c != ')' && c != '}' && c != '.') return s;
  s.resize(before);
  return s;
}

// ---- N11: brace one-character arguments of \frac and \sqrt ----

// Braces the argument starting at s[i] when it is one character; returns the index after it.
size_t brace_argument(std::string& s, size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '{') {
    const size_t e = closing_brace(s, i);
    return e == std::string::npos ? s.size() : e + 1;
  }
  if (is_digit(s[i]) || is_letter(s[i])) {
    std::string braced(1, '{');
    braced += s[i];
    braced += '}';
    s.replace(i, 1, braced);
    return i + 3;
  }
  return i;
}

std::string brace_arguments(std::string s) {
  for (size_t i = 0; i < s.size(); i++) {
    if (s.compare(i, 5, "\\frac") == 0 && (i + 5 >= s.size() || !is_letter(s[i + 5]))) {
      size_t j = brace_argument(s, i + 5);
      brace_argument(s, j);
    } else if (s.compare(i, 5, "\\sqrt") == 0 && (i + 5 >= s.size() || !is_letter(s[i + 5]))) {
      size_t j = i + 5;
      if (j < s.size() && s[j] == '[') {
        const size_t e = s.find(']', j);
        if (e == std::string::npos) continue;
        j = e + 1;
      }
      brace_argument(s, j);
    }
  }
  return s;
}

// ---- N12: a single variable assignment ----

bool is_variable(std::string_view v) {
  if (v.size() == 1) return is_letter(v[0]);
  if (v.size() >= 3 && is_letter(v[0]) && v[1] == '_') {
    std::string_view sub = v.substr(2);
    if (sub.size() >= 2 && sub.front() == '{' && sub.back() == '}') sub = sub.substr(1, sub.size() - 2);
    return !sub.empty() && std::all_of(sub.begin(), sub.end(), [](char c) { return is_digit(c) || is_letter(c); });
  }
  if (v.size() >= 2 && v[0] == '\\')
    return std::all_of(v.begin() + 1, v.end(), [](char c) { return is_letter(c); });
  return false;
}

// ---- N15: thousands separators ----

bool is_thousands_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') i++;
  size_t lead = 0;
  while (i < s.size() && is_digit(s[i])) i++, lead++;
  if (lead < 1 || lead > 3) return false;
  size_t groups = 0;
  while (i < s.size() && s[i] == ',') {
    if (i + 4 > s.size() || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3])) return false;
    i += 4;
    groups++;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    i++;
    if (i >= s.size()) return false;
    while (i < s.size() && is_digit(s[i])) i++;
  }
  return i == s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// ---- the evaluator ----

class Evaluator {
 public:
  explicit Evaluator(std::string_view s) : s_(s) {}

  std::optional<double> run() {
    if (s_.empty()) return std::nullopt;
    double v = 0;
    if (!expr(v) || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  struct Depth {
    explicit Depth(int& d) : d_(d) { ++d_; }
    ~Depth() { --d_; }
    int& d_;
  };

  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  bool command(std::string_view name) const {  // "\\frac" at pos_, not followed by a letter
    return s_.substr(pos_, name.size()) == name &&
           (pos_ + name.size() >= s_.size() || !is_letter(s_[pos_ + name.size()]));
  }
  bool eat(char c) {
    if (!at(c)) return false;
    pos_++;
    return true;
  }
  static bool finite(double v) { return std::isfinite(v); }

  // Can a primary start at pos_ (an implicit product)?
  bool primary_starts() const {
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    return is_digit(c) || c == '.' || c == '(' || c == '{' || command("\\frac") || command("\\sqrt") ||
           command("\\pi") || command("pi");
  }

  bool expr(double& v) {
    if (!term(v)) return false;
    while (at('+') || at('-')) {
      const char op = s_[pos_++];
      double r = 0;
      if (!term(r)) return false;
      v = op == '+' ? v + r : v - r;
      if (!finite(v)) return false;
    }
    return true;
  }

  static bool all_digits(std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return is_digit(c); });
  }
  // "\frac{digits}{digits}"
  static bool simple_fraction(std::string_view t) {
    if (t.substr(0, 6) != "\\frac{") return false;
    t.remove_prefix(6);
    const size_t a = t.find('}');
    if (a == std::string_view::npos || !all_digits(t.substr(0, a))) return false;
    t.remove_prefix(a + 1);
    if (t.size() < 3 || t.front() != '{' || t.back() != '}') return false;
    return all_digits(t.substr(1, t.size() - 2));
  }

  bool term(double& v) {
    size_t left_start = pos_;
    bool first = true;  // only the term's first factor can be a mixed number's integer part
    if (!unary(v)) return false;
    for (;;) {
      double r = 0;
      if (at('*') || at('/')) {
        const char op = s_[pos_++];
        first = false;
        if (!unary(r)) return false;
        if (op == '/') {
          if (r == 0) return false;
          v /= r;
        } else {
          v *= r;
        }
      } else if (primary_starts()) {
        const std::string_view left = s_.substr(left_start, pos_ - left_start);
        const size_t right_start = pos_;
        if (!power(r)) return false;
        const std::string_view right = s_.substr(right_start, pos_ - right_start);
        const bool negative = !left.empty() && left[0] == '-';
        if (first && all_digits(negative ? left.substr(1) : left) && simple_fraction(right))
          v = negative ? v - r : v + r;  // mixed number: 3\frac{1}{2} = 3.5
        else
          v *= r;
        first = false;
      } else {
        return true;
      }
      if (!finite(v)) return false;
    }
  }

  bool unary(double& v) {
    Depth d(depth_);
    if (depth_ > kMaxDepth) return false;
    if (at('-') || at('+')) {
      const char op = s_[pos_++];
      if (!unary(v)) return false;
      if (op == '-') v = -v;
      return true;
    }
    return power(v);
  }

  bool power(double& v) {
    Depth d(depth_);
    if (depth_ > kMaxDepth) return false;
    if (!primary(v)) return false;
    if (!eat('^')) return true;
    bool negative = false;
    if (at('-') || at('+')) negative = s_[pos_++] == '-';
    double e = 0;
    if (!power(e)) return false;
    if (negative) e = -e;
    if (std::fabs(e) > kMaxExponent) return false;
    if (v == 0 && e < 0) return false;
    v = std::pow(v, e);
    return finite(v);
  }

  bool braced(double& v) {  // '{' expr '}'
    if (!eat('{')) return false;
    if (!expr(v)) return false;
    return eat('}');
  }

  bool number(double& v) {
    const size_t start = pos_;
    size_t digits = 0;
    while (pos_ < s_.size() && is_digit(s_[pos_])) pos_++, digits++;
    if (at('.')) {
      pos_++;
      size_t frac = 0;
      while (pos_ < s_.size() && is_digit(s_[pos_])) pos_++, frac++;
      if (frac == 0) return false;
      digits += frac;
    }
    if (digits == 0 || digits > kMaxDigits) return false;
    v = std::strtod(std::string(s_.substr(start, pos_ - start)).c_str(), nullptr);
    return finite(v);
  }

  bool primary(double& v) {
    Depth d(depth_);
    if (depth_ > kMaxDepth || pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (is_digit(c) || c == '.') return number(v);
    if (c == '(') {
      pos_++;
      return expr(v) && eat(')');
    }
    if (c == '{') return braced(v);
    if (command("\\frac")) {
      pos_ += 5;
      double num = 0, den = 0;
      if (!braced(num) || !braced(den) || den == 0) return false;
      v = num / den;
      return finite(v);
    }
    if (command("\\sqrt")) {
      pos_ += 5;
      double index = 2;
      if (eat('[')) {
        if (!expr(index) || !eat(']')) return false;
        if (index != std::floor(index) || index < 1 || index > kMaxExponent) return false;
      }
      double x = 0;
      if (!braced(x)) return false;
      const bool odd = std::fmod(index, 2.0) == 1.0;
      if (x < 0 && !odd) return false;
      v = x < 0 ? -std::pow(-x, 1.0 / index) : std::pow(x, 1.0 / index);
      return finite(v);
    }
    if (command("\\pi")) {
      pos_ += 3;
      v = std::numbers::pi;
      return true;
    }
    if (command("pi")) {
      pos_ += 2;
      v = std::numbers::pi;
      return true;
    }
    return false;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// ---- structure: scalars, tuples/intervals, sets, lists ----

enum class Kind { Scalar, Tuple, Set, List };
struct Shape {
  Kind kind = Kind::Scalar;
  char open = 0, close = 0;
  std::vector<std::string_view> items;
};

// Splits s at commas outside any bracket; empty vector when a bracket is unbalanced.
std::vector<std::string_view> split_top(std::string_view s) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (c == '(' || c == '[' || c == '{') depth++;
    else if (c == ')' || c == ']' || c == '}') {
      if (--depth < 0) return {};
    } else if (c == ',' && depth == 0) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) return {};
  out.push_back(s.substr(start));
  return out;
}

// Does the bracket opened at s[0] close at the last character?
bool outer_brackets(std::string_view s) {
  if (s.size() < 2) return false;
  int depth = 0;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (c == '(' || c == '[' || c == '{') depth++;
    else if (c == ')' || c == ']' || c == '}') {
      if (--depth == 0) return i + 1 == s.size();
      if (depth < 0) return false;
    }
  }
  return false;
}

Shape shape_of(std::string_view s) {
  Shape sh;
  if (s.size() >= 4 && s.substr(0, 2) == "\\{" && s.substr(s.size() - 2) == "\\}") {
    const std::string_view inner = s.substr(2, s.size() - 4);
    sh.kind = Kind::Set;
    sh.items = split_top(inner);
    if (!sh.items.empty()) return sh;
    sh = Shape{};
  }
  if ((s.front() == '(' || s.front() == '[') && (s.back() == ')' || s.back() == ']') && outer_brackets(s)) {
    auto items = split_top(s.substr(1, s.size() - 2));
    if (items.size() >= 2) {
      sh.kind = Kind::Tuple;
      sh.open = s.front();
      sh.close = s.back();
      sh.items = std::move(items);
      return sh;
    }
  }
  auto items = split_top(s);
  if (items.size() >= 2) {
    sh.kind = Kind::List;
    sh.items = std::move(items);
    return sh;
  }
  sh.items = {s};
  return sh;
}

bool close_numbers(double a, double b) {
  const double d = std::fabs(a - b);
  return d <= 1e-9 || d <= 1e-6 * std::max(std::fabs(a), std::fabs(b));
}

bool scalar_equivalent(std::string_view a, std::string_view b) {
  if (a == b) return true;
  const auto va = evaluate(a);
  if (!va) return false;
  const auto vb = evaluate(b);
  return vb && close_numbers(*va, *vb);
}

bool multiset_equivalent(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b) {
  if (a.size() != b.size()) return false;
  std::vector<bool> used(b.size(), false);
  for (const auto& x : a) {
    bool found = false;
    for (size_t j = 0; j < b.size() && !found; j++)
      if (!used[j] && scalar_equivalent(x, b[j])) used[j] = found = true;
    if (!found) return false;
  }
  return true;
}

}  // namespace

// ---- extraction -------------------------------------------------------------------------

std::optional<std::string> last_boxed(std::string_view text) {
  // matching '}' of every '{' (one pass), so that each candidate costs O(1)
  std::vector<size_t> match(text.size(), std::string_view::npos);
  std::vector<size_t> stack;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] == '{') stack.push_back(i);
    else if (text[i] == '}' && !stack.empty()) {
      match[stack.back()] = i;
      stack.pop_back();
    }
  }
  std::vector<std::pair<size_t, size_t>> found;  // (position, command length)
  for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    for (size_t p = text.find(cmd); p != std::string_view::npos; p = text.find(cmd, p + 1))
      found.push_back({p, cmd.size()});
  }
  std::sort(found.begin(), found.end());
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    const size_t q = it->first + it->second;
    if (q < text.size() && text[q] == '{') {
      if (match[q] == std::string_view::npos) continue;
      const std::string_view content = trim(text.substr(q + 1, match[q] - q - 1));
      if (!content.empty()) return std::string(content);
    } else if (q < text.size() && text[q] == ' ') {
      std::string_view rest = text.substr(q + 1);
      const size_t e = rest.find_first_of("$\n");
      const std::string_view content = trim(rest.substr(0, e));
      if (!content.empty()) return std::string(content);
    }
  }
  return std::nullopt;
}

std::optional<std::string> last_tag(std::string_view text, std::string_view tag) {
  if (tag.empty()) return std::nullopt;
  std::string open(1, '<'), close("</");
  open.append(tag);
  open += '>';
  close.append(tag);
  close += '>';
  std::optional<std::string_view> last;
  size_t pos = 0;
  for (;;) {
    const size_t a = text.find(open, pos);
    if (a == std::string_view::npos) break;
    const size_t b = text.find(close, a + open.size());
    if (b == std::string_view::npos) break;
    last = text.substr(a + open.size(), b - a - open.size());
    pos = b + close.size();
  }
  if (!last) return std::nullopt;
  return std::string(trim(*last));
}

std::optional<std::string> extract_answer(std::string_view completion, const RewardOptions& o) {
  std::string_view region = completion;
  if (o.require_think) {
    static constexpr std::string_view kThink = "</think>";
    const size_t p = completion.find(kThink);
    if (p == std::string_view::npos) return std::nullopt;
    region = completion.substr(p + kThink.size());
  }
  if (auto b = last_boxed(region)) return b;
  if (auto t = last_tag(region, o.answer_tag)) {
    if (auto b = last_boxed(*t)) return b;
    if (!t->empty()) return t;
  }
  return std::nullopt;
}

std::string gold_from_solution(std::string_view solution) {
  if (auto b = last_boxed(solution)) return *b;
  return std::string(trim(solution));
}

// ---- normalisation ----------------------------------------------------------------------

std::string normalize(std::string_view answer) {
  std::string s(trim(answer));
  if (s.size() > kMaxAnswerBytes) return s;
  // N1 surrounding math delimiters
  for (bool again = true; again;) {
    again = false;
    for (auto [a, b] : {std::pair<std::string_view, std::string_view>{"$$", "$$"}, {"$", "$"}, {"\\(", "\\)"},
                        {"\\[", "\\]"}}) {
      if (s.size() >= a.size() + b.size() && s.compare(0, a.size(), a) == 0 &&
          s.compare(s.size() - b.size(), b.size(), b) == 0) {
        s = std::string(trim(std::string_view(s).substr(a.size(), s.size() - a.size() - b.size())));
        again = true;
        break;
      }
    }
  }
  // N2 spacing
  for (std::string_view sp : {"\\!", "\\,", "\\;", "\\:", "\\ ", "~"}) s = replace_all(s, sp, " ");
  // N3
  s = replace_command(s, "\\left", "");
  s = replace_command(s, "\\right", "");
  s = replace_command(s, "\\dfrac", "\\frac");
  s = replace_command(s, "\\tfrac", "\\frac");
  s = replace_command(s, "\\displaystyle", "");
  // N4 text wrappers
  for (std::string_view cmd : {"\\textbf", "\\textit", "\\textrm", "\\text", "\\mathrm", "\\mathbf", "\\mbox"})
    s = unwrap_command(std::move(s), cmd);
  // N5 degrees
  for (std::string_view d : {"^{\\circ}", "^\\circ", "\\circ", "\\degree", "\xC2\xB0"}) s = replace_all(s, d, "");
  // N6 percent and dollar signs
  for (std::string_view d : {"\\%", "%", "\\$", "$"}) s = replace_all(s, d, "");
  // N7 unit words
  s = strip_units(std::move(s));
  // N8 whitespace and case
  s.erase(std::remove_if(s.begin(), s.end(), is_space), s.end());
  s = lower_ascii(std::move(s));
  // N9 trailing full stops
  while (!s.empty() && s.back() == '.') s.pop_back();
  // N10 operators
  s = replace_command(s, "\\cdot", "*");
  s = replace_command(s, "\\times", "*");
  s = replace_command(s, "\\div", "/");
  // N11 one-character arguments
  s = brace_arguments(std::move(s));
  // N12 a single variable assignment
  if (std::count(s.begin(), s.end(), '=') == 1 && s.find_first_of("<>") == std::string::npos) {
    const size_t eq = s.find('=');
    if (is_variable(std::string_view(s).substr(0, eq)) && eq + 1 < s.size()) s = s.substr(eq + 1);
  }
  // N13 braces around the whole answer
  while (s.size() >= 2 && s.front() == '{' && closing_brace(s, 0) == s.size() - 1) s = s.substr(1, s.size() - 2);
  // N14 leading zero of a decimal
  for (size_t i = 0; i < s.size(); i++)
    if (s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]) && (i == 0 || !is_digit(s[i - 1]))) {
      s.insert(i, "0");
      i++;
    }
  // N15 thousands separators
  {
    std::string t = replace_all(s, "{,}", ",");
    if (is_thousands_number(t)) {
      t.erase(std::remove(t.begin(), t.end(), ','), t.end());
      s = std::move(t);
    }
  }
  return s;
}

std::optional<double> evaluate(std::string_view normalized) {
  if (normalized.size() > kMaxAnswerBytes) return std::nullopt;
  return Evaluator(normalized).run();
}

bool equivalent(std::string_view gold, std::string_view predicted) {
  if (trim(gold).size() > kMaxAnswerBytes || trim(predicted).size() > kMaxAnswerBytes)
    return trim(gold) == trim(predicted);
  const std::string g = normalize(gold), p = normalize(predicted);
  if (g.empty() || p.empty()) return false;
  if (g == p) return true;
  const Shape sg = shape_of(g), sp = shape_of(p);
  if (sg.kind != sp.kind) return false;
  switch (sg.kind) {
    case Kind::Scalar: return scalar_equivalent(g, p);
    case Kind::Tuple:
      if (sg.open != sp.open || sg.close != sp.close || sg.items.size() != sp.items.size()) return false;
      for (size_t i = 0; i < sg.items.size(); i++)
        if (!scalar_equivalent(sg.items[i], sp.items[i])) return false;
      return true;
    case Kind::Set:
    case Kind::List: return multiset_equivalent(sg.items, sp.items);
  }
  return false;
}

double reward(std::string_view completion, std::string_view gold, const RewardOptions& o) {
  const auto a = extract_answer(completion, o);
  if (!a) return 0.0;
  return equivalent(gold, *a) ? 1.0 : o.format_reward;
}

// ---- data -------------------------------------------------------------------------------

Item item_from_json(const nlohmann::json& j, const std::string& where) {
  Item it;
  auto q = j.find("problem");
  if (q == j.end()) q = j.find("question");
  require(q != j.end() && q->is_string(), where, "missing string field \"problem\" (or \"question\")");
  it.problem = q->get<std::string>();
  const auto a = j.find("answer");
  if (a != j.end() && !a->is_null()) {
    if (a->is_string()) {
      const std::string s = a->get<std::string>();
      it.gold = s.find("\\boxed") != std::string::npos || s.find("\\fbox") != std::string::npos
                    ? gold_from_solution(s)
                    : std::string(trim(s));
    } else if (a->is_number_integer() || a->is_number_unsigned()) {
      it.gold = a->dump();
    } else if (a->is_number_float()) {
      require(std::isfinite(a->get<double>()), where, "\"answer\" is not a finite number");
      it.gold = a->dump();
    } else {
      throw InputError(where + ": \"answer\" must be a string or a number, got " + a->type_name());
    }
  } else {
    const auto s = j.find("solution");
    require(s != j.end() && s->is_string(), where, "missing field \"answer\" (or a string \"solution\")");
    it.gold = gold_from_solution(s->get<std::string>());
  }
  require(!it.gold.empty(), where, "empty gold answer");
  return it;
}

std::vector<Item> load_jsonl(const std::string& path) {
  std::vector<Item> out;
  read_jsonl(path, [&](const nlohmann::json& j, const std::string& where) { out.push_back(item_from_json(j, where)); });
  require(!out.empty(), path, "no math problems in file");
  return out;
}

}  // namespace eggroll::math
