#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "rwkv/tokenizer.h"

namespace fs = std::filesystem;
using eggroll::InputError;
using eggroll::Tokenizer;

namespace {

const std::string kFixtures = EGGROLL_SOURCE_DIR "/../shared/fixtures/tokenizer/";
const std::string kVocab = kFixtures + "rwkv_vocab_v20230424.txt";

const Tokenizer& world() {
  static const std::unique_ptr<Tokenizer> tok = eggroll::load_world_tokenizer(kVocab);
  return *tok;
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> load_cases() {
  std::ifstream in(kFixtures + "cases.json");
  REQUIRE(in);
  const auto j = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : j)
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

// Straightforward greedy longest match (the reference algorithm), built from token_bytes().
class NaiveEncoder {
 public:
  explicit NaiveEncoder(const Tokenizer& tok) {
    for (int32_t id = 1; id < tok.vocab_size(); ++id) {
      std::string b;
      try {
        b = tok.token_bytes(id);
      } catch (const InputError&) {
        continue;  // unused id
      }
      max_len_ = std::max(max_len_, b.size());
      map_.emplace(std::move(b), id);
    }
  }
  std::vector<int32_t> encode(const std::string& s) const {
    std::vector<int32_t> out;
    size_t i = 0;
    while (i < s.size()) {
      size_t n = std::min(max_len_, s.size() - i);
      for (; n > 0; --n) {
        auto it = map_.find(s.substr(i, n));
        if (it != map_.end()) {
          out.push_back(it->second);
          break;
        }
      }
      REQUIRE(n > 0);
      i += n;
    }
    return out;
  }

 private:
  std::unordered_map<std::string, int32_t> map_;
  size_t max_len_ = 0;
};

// A fresh temporary directory, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("eggroll_tok_" + std::to_string(rd()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = (path / name).string();
    std::ofstream out(p, std::ios::binary);
    out << content;
    return p;
  }
};

// Vocab lines for all 256 single bytes, ids 1..256, as b'\xNN' literals.
std::vector<std::string> byte_lines() {
  std::vector<std::string> lines;
  for (int b = 0; b < 256; ++b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%d b'\\x%02x' 1", b + 1, b);
    lines.emplace_back(buf);
  }
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

std::string random_bytes(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(byte(rng));
  return s;
}

}  // namespace

TEST_CASE("world tokenizer matches the reference ids", "[tokenizer]") {
  const auto& tok = world();
  CHECK(tok.vocab_size() == 65530);
  const auto cases = load_cases();
  REQUIRE(!cases.empty());
  for (const auto& c : cases) {
    INFO("text: " << c.text);
    CHECK(tok.encode(c.text) == c.ids);
    CHECK(tok.decode(c.ids) == c.text);
  }
}

TEST_CASE("world tokenizer token bytes", "[tokenizer]") {
  const auto& tok = world();
  CHECK(tok.token_bytes(0).empty());  // end of document
  CHECK(tok.token_bytes(1) == std::string(1, '\0'));
  CHECK(tok.token_bytes(128) == "\x7f");
  CHECK(tok.token_bytes(129) == "\x80");  // b'\x80': one raw byte
  CHECK(tok.token_bytes(256) == "\xff");
  CHECK(tok.token_bytes(257) == "\t\t");
  CHECK(tok.token_bytes(65529) == std::string(128, ' '));
  for (int b = 0; b < 256; ++b)
    CHECK(tok.token_bytes(b + 1) == std::string(1, static_cast<char>(b)));
  CHECK(tok.encode("").empty());
  const std::vector<int32_t> eod{0, 0};
  CHECK(tok.decode(eod).empty());

  for (const int32_t bad : {-1, 65530, 1 << 30}) {
    const std::vector<int32_t> ids{34, bad};
    CHECK_THROWS_AS(tok.decode(ids), InputError);
    CHECK_THROWS_AS(tok.token_bytes(bad), InputError);
  }
}

TEST_CASE("world tokenizer agrees with naive greedy matching and round trips", "[tokenizer]") {
  const auto& tok = world();
  const NaiveEncoder naive(tok);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> any_id(1, tok.vocab_size() - 1);

  std::vector<std::string> inputs;
  for (const auto& c : load_cases()) inputs.push_back(c.text);
  for (int k = 0; k < 200; ++k)
    inputs.push_back(random_bytes(rng, static_cast<size_t>(rng() % 300)));
  for (int k = 0; k < 200; ++k) {  // concatenated tokens: long matches and near misses
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int t = 0; t < n; ++t) {
      std::string b = tok.token_bytes(any_id(rng));
      if (rng() % 4 == 0 && b.size() > 1) b.pop_back();                         // truncate
      if (rng() % 8 == 0) b[rng() % b.size()] = static_cast<char>(rng() & 0xFF);  // corrupt
      s += b;
    }
    inputs.push_back(s);
  }
  // invalid UTF-8 of various kinds
  inputs.push_back("\xc3");
  inputs.push_back("\xe4\xb8");
  inputs.push_back("abc\xff\xfe\x80\x80 def");
  inputs.push_back("\xed\xa0\x80");  // encoded surrogate
  inputs.push_back(std::string("a\0b\0\0c", 6));

  for (const auto& s : inputs) {
    const auto ids = tok.encode(s);
    INFO("input bytes: " << s.size());
    CHECK(ids == naive.encode(s));
    CHECK(tok.decode(ids) == s);
    for (const int32_t id : ids) CHECK((id >= 1 && id < tok.vocab_size()));
  }
}

TEST_CASE("byte tokenizer round trips", "[tokenizer]") {
  const auto tok = eggroll::make_byte_tokenizer();
  CHECK(tok->vocab_size() == 256);
  std::mt19937 rng(99);
  for (int k = 0; k < 50; ++k) {
    const std::string s = random_bytes(rng, static_cast<size_t>(rng() % 500));
    const auto ids = tok->encode(s);
    REQUIRE(ids.size() == s.size());
    for (size_t i = 0; i < s.size(); ++i) CHECK(ids[i] == static_cast<unsigned char>(s[i]));
    CHECK(tok->decode(ids) == s);
  }
  CHECK(tok->token_bytes(0) == std::string(1, '\0'));
  CHECK(tok->token_bytes(255) == "\xff");
  CHECK(tok->encode("A") == std::vector<int32_t>{65});
  CHECK_THROWS_AS(tok->token_bytes(256), InputError);
  CHECK_THROWS_AS(tok->token_bytes(-1), InputError);
  const std::vector<int32_t> bad{1, 256};
  CHECK_THROWS_AS(tok->decode(bad), InputError);
}

TEST_CASE("vocab literals: python escapes and prefixes", "[tokenizer]") {
  TempDir dir;
  auto lines = byte_lines();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"('\u00e9t\u00e9' 5)", "\xc3\xa9t\xc3\xa9"},
      {R"('\U0001F600' 4)", "\xf0\x9f\x98\x80"},
      {R"('\x80\xff' 4)", "\xc2\x80\xc3\xbf"},  // str: code points, UTF-8 encoded
      {R"(b'\x80\xff' 2)", "\x80\xff"},         // bytes: raw
      {R"('\101\0\7' 3)", std::string("A\0\a", 3)},
      {R"('\a\b\f\n\r\t\v' 7)", "\a\b\f\n\r\t\v"},
      {R"('\\ \' \"' 5)", "\\ ' \""},
      {R"("it's" 4)", "it's"},
      {R"('say "hi"' 8)", "say \"hi\""},
      {R"('a  b ' 5)", "a  b "},  // spaces inside the literal
      {R"('\q\[' 4)", "\\q\\["},  // unknown escapes keep their backslash
      {"'caf\xc3\xa9 \xe4\xb8\xad' 9", "caf\xc3\xa9 \xe4\xb8\xad"},  // raw UTF-8
      {R"(b'\u00e9\N' 8)", "\\u00e9\\N"},                           // no \u or \N in bytes
      {R"(r'\n\'' 4)", "\\n\\'"},
      {R"(B"xy" 2)", "xy"},
      {R"(u'\u4e2d' 3)", "\xe4\xb8\xad"},
      {R"(rb'\x' 2)", "\\x"},
      {R"('\777' 2)", "\xc7\xbf"},  // octal up to 0o777 in str
  };
  int32_t id = 1000;
  for (const auto& [literal, bytes] : cases) lines.push_back(std::to_string(id++) + " " + literal);
  const auto path = dir.write("vocab.txt", join_lines(lines));
  const auto tok = eggroll::load_world_tokenizer(path);
  CHECK(tok->vocab_size() == id);
  id = 1000;
  for (const auto& [literal, bytes] : cases) {
    INFO("literal: " << literal);
    CHECK(tok->token_bytes(id++) == bytes);
  }
  // ids between 257 and 999 are unused
  CHECK_THROWS_AS(tok->token_bytes(500), InputError);
  const std::vector<int32_t> gap{500};
  CHECK_THROWS_AS(tok->decode(gap), InputError);
  // greedy longest match on the small vocab
  CHECK(tok->encode("it's\xc3\xa9t\xc3\xa9!") == std::vector<int32_t>{1007, 1000, '!' + 1});
}

TEST_CASE("vocab loading accepts CRLF and a missing final newline", "[tokenizer]") {
  TempDir dir;
  auto lines = byte_lines();
  lines.push_back("300 'ab' 2");
  std::string crlf;
  for (const auto& l : lines) crlf += l + "\r\n";
  CHECK(eggroll::load_world_tokenizer(dir.write("crlf.txt", crlf))->encode("ab") ==
        std::vector<int32_t>{300});
  std::string no_final = join_lines(lines);
  no_final.pop_back();
  CHECK(eggroll::load_world_tokenizer(dir.write("nofinal.txt", no_final))->vocab_size() == 301);
}

TEST_CASE("malformed vocab files give InputError with the line number", "[tokenizer]") {
  TempDir dir;
  // each bad line is inserted as line 3 of an otherwise valid vocab
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"bad id", "x300 'a' 1"},
      {"negative id", "-3 'a' 1"},
      {"id zero", "0 'zz' 2"},
      {"huge id", "99999999999 'zz' 2"},
      {"bad literal (unterminated)", "300 'abc 3"},
      {"bad literal (no quotes)", "300 abc 3"},
      {"bad literal (text after quote)", "300 'ab'c 3"},
      {"bad literal (truncated \\x)", R"(300 '\x4' 1)"},
      {"bad literal (truncated \\u)", R"(300 '\u12' 1)"},
      {"bad literal (surrogate)", R"(300 '\ud800' 3)"},
      {"bad literal (\\U out of range)", R"(300 '\U00110000' 4)"},
      {"bad literal (non-ASCII in bytes)", "300 b'\xc3\xa9' 2"},
      {"bad literal (invalid UTF-8)", "300 '\xc3(' 2"},
      {"bad literal (bad prefix)", "300 x'ab' 2"},
      {"bad literal (trailing backslash)", R"(300 'ab\' 3)"},
      {"bad literal (octal > 0o377 in bytes)", R"(300 b'\400' 1)"},
      {"length mismatch", "300 'abc' 2"},
      {"length mismatch (UTF-8)", "300 '\\u00e9' 1"},
      {"bad length", "300 'abc' 3x"},
      {"empty token", "300 '' 0"},
      {"duplicate id", "2 'zz' 2"},
      {"duplicate bytes", "300 b'\\x01' 1"},  // same as line 2
      {"truncated line (no length)", "300 'abc'"},
      {"truncated line (id only)", "300"},
      {"truncated line (cut in literal)", "300 'ab"},
      {"empty line", ""},
  };
  for (const auto& [what, line] : bad) {
    INFO(what << ": " << line);
    auto lines = byte_lines();
    lines.insert(lines.begin() + 2, line);
    const auto path = dir.write("bad.txt", join_lines(lines));
    try {
      eggroll::load_world_tokenizer(path);
      FAIL("no InputError");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      INFO("message: " << msg);
      CHECK(msg.rfind(path + ":3: ", 0) == 0);
    }
  }
}

TEST_CASE("a vocab without some single byte is rejected", "[tokenizer]") {
  TempDir dir;
  {
    auto lines = byte_lines();
    lines.erase(lines.begin() + 0x41);  // no token for 'A'
    const auto path = dir.write("nobyte.txt", join_lines(lines));
    try {
      eggroll::load_world_tokenizer(path);
      FAIL("no InputError");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find("0x41") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(eggroll::load_world_tokenizer(dir.write("empty.txt", "")), InputError);
}

TEST_CASE("nonexistent vocab path gives InputError naming it", "[tokenizer]") {
  const std::string path = "/nonexistent/dir/vocab_that_is_not_there.txt";
  try {
    eggroll::load_world_tokenizer(path);
    FAIL("no InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  TempDir dir;  // a directory is not a vocab file either
  CHECK_THROWS_AS(eggroll::load_world_tokenizer(dir.path.string()), InputError);
}

// Hidden benchmark: ./test_tokenizer "[bench]"  (EGGROLL_TOK_BENCH_FILE=<text file> to choose
// the text; default: the fixture cases repeated to ~1 MB).
TEST_CASE("world tokenizer encode speed", "[.][bench]") {
  const auto& tok = world();
  std::string text;
  if (const char* f = std::getenv("EGGROLL_TOK_BENCH_FILE"); f != nullptr && *f != '\0') {
    std::ifstream in(f, std::ios::binary);
    REQUIRE(in);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    const auto cases = load_cases();
    while (text.size() < (1u << 20))
      for (const auto& c : cases) text += c.text + "\n";
  }
  REQUIRE(!text.empty());
  size_t n_ids = 0;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    n_ids = tok.encode(text).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  WARN("encoded " << mb << " MB into " << n_ids << " tokens in " << best * 1e3 << " ms: "
                  << mb / best << " MB/s");
}
