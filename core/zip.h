#pragma once
// The small part of the ZIP format that torch.save archives use: stored (uncompressed)
// entries, optional zip64 records, data aligned within the file. The reader works on bytes
// already in memory (an mmap'd file) and hands out pointers into them; the writer streams
// entries to a FILE*. Internal to the checkpoint code (and its tests).
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace eggroll::zip {

// CRC-32 (ISO-HDLC, the one ZIP uses). Pass the previous result to continue a running CRC.
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

struct Entry {
  std::string name;
  uint64_t data_offset = 0;  // where the entry's bytes start in the archive
  uint64_t size = 0;         // stored size (== uncompressed size: only stored entries are read)
  uint32_t crc = 0;          // from the central directory
  uint16_t method = 0;       // 0 = stored
  uint16_t flags = 0;
};

class Reader {
 public:
  // Parses the central directory and every local header; throws InputError("<source>: ...")
  // on anything malformed. `data` must outlive the reader.
  Reader(const uint8_t* data, size_t size, std::string source);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const;
  // The entry's bytes; throws InputError if the entry is compressed or encrypted.
  const uint8_t* bytes(const Entry& e) const;
  // Throws InputError when the entry's CRC-32 does not match the central directory.
  void verify_crc(const Entry& e) const;
  const std::string& source() const { return source_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string source_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// Streams stored entries to `f` (which the caller opens and closes). Each entry's data starts
// at a multiple of `alignment` bytes in the file (padding goes into an extra field, as
// torch does). zip64 records are written when needed (or always, with force_zip64).
class Writer {
 public:
  Writer(std::FILE* f, std::string path, uint32_t alignment = 64, bool force_zip64 = false);
  void add(const std::string& name, const void* data, size_t n);
  // Writes the central directory. No entries may be added afterwards.
  void finish();

 private:
  struct Record {
    std::string name;
    uint64_t header_offset;
    uint64_t size;
    uint32_t crc;
  };
  void put(const void* p, size_t n);
  std::FILE* f_;
  std::string path_;
  uint32_t alignment_;
  bool force_zip64_;
  bool finished_ = false;
  uint64_t offset_ = 0;
  std::vector<Record> records_;
};

}  // namespace eggroll::zip
