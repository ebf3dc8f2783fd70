#pragma once
// Tokenizers: text bytes <-> token ids.
//
// World tokenizer (RWKV World, rwkv_vocab_v20230424.txt): each vocab line is
//   <id> <python literal: 'str' / "str" / b'bytes'> <byte length>
// and a str literal stands for its UTF-8 bytes. Encoding is greedy longest match over the
// input bytes; since every single byte has a token, encoding never fails. Id 0 is the end of
// document marker: it has no vocab line and decodes to "".
//
// Byte tokenizer (V = 256 byte-level models): token id = byte value, so id 0 is byte 0
// (which those models also use as end of document) and decodes to a single NUL byte.
//
// decode() returns raw bytes: concatenating tokens can split a UTF-8 sequence, so the result
// may be invalid UTF-8 mid-stream. It throws InputError on an id outside the vocabulary.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eggroll {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view utf8_bytes) const = 0;
  // Raw bytes of the concatenated tokens; throws InputError on an id out of range.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // Bytes of one token; throws InputError on an id out of range.
  virtual std::string token_bytes(int32_t id) const = 0;
  // One past the largest id (World: 65530).
  virtual int32_t vocab_size() const = 0;
};

// Loads an RWKV World vocab file. Throws InputError naming the path (and line number, for a
// malformed line) when the file is missing or malformed.
std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& path);

// Byte-level tokenizer for V = 256 models: token = byte value.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace eggroll
