#include "core/zip.h"

#include <array>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace eggroll::zip {

// ---- CRC-32, slicing by 16 ---------------------------------------------------------------

namespace {

constexpr uint32_t kCrcPoly = 0xEDB88320u;  // reflected 0x04C11DB7

struct CrcTables {
  std::array<std::array<uint32_t, 256>, 16> t{};
  constexpr CrcTables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kCrcPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
      for (size_t s = 1; s < 16; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};
constexpr CrcTables kCrc{};

inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const auto& t = kCrc.t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 16) {
    uint32_t a = load32(p) ^ c, b = load32(p + 4), d = load32(p + 8), e = load32(p + 12);
    c = t[15][a & 0xff] ^ t[14][(a >> 8) & 0xff] ^ t[13][(a >> 16) & 0xff] ^ t[12][a >> 24] ^
        t[11][b & 0xff] ^ t[10][(b >> 8) & 0xff] ^ t[9][(b >> 16) & 0xff] ^ t[8][b >> 24] ^
        t[7][d & 0xff] ^ t[6][(d >> 8) & 0xff] ^ t[5][(d >> 16) & 0xff] ^ t[4][d >> 24] ^
        t[3][e & 0xff] ^ t[2][(e >> 8) & 0xff] ^ t[1][(e >> 16) & 0xff] ^ t[0][e >> 24];
    p += 16;
    n -= 16;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return ~c;
}

// ---- reader ---------------------------------------------------------------------------------

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kEnd64Size = 56,
                 kLocator64Size = 20;

inline uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t rd32(const uint8_t* p) { return load32(p); }
inline uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

// True when [off, off + len) lies inside [0, size).
inline bool in_range(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}


}  // namespace

Reader::Reader(const uint8_t* data, size_t size, std::string source)
    : data_(data), size_(size), source_(std::move(source)) {
  auto fail = [&](const std::string& what) { throw InputError(source_ + ": " + what); };
  if (size_ < kEndSize) fail("not a zip archive (file too short: " + std::to_string(size_) + " bytes)");

  // End of central directory: the last signature whose comment fits in the file.
  size_t end = SIZE_MAX;
  size_t lowest = size_ - kEndSize > 0xffff ? size_ - kEndSize - 0xffff : 0;
  for (size_t pos = size_ - kEndSize + 1; pos-- > lowest;) {
    if (rd32(data_ + pos) == kEndSig && pos + kEndSize + rd16(data_ + pos + 20) <= size_) {
      end = pos;
      break;
    }
  }
  if (end == SIZE_MAX) fail("not a zip archive or truncated (no end-of-central-directory record)");

  const uint8_t* e = data_ + end;
  uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
  uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_offset = rd32(e + 16);
  if (end >= kLocator64Size && rd32(data_ + end - kLocator64Size) == kLocator64Sig) {
    const uint8_t* loc = data_ + end - kLocator64Size;
    uint64_t off64 = rd64(loc + 8);
    if (!in_range(off64, kEnd64Size, end - kLocator64Size) || rd32(data_ + off64) != kEnd64Sig)
      fail("bad zip64 end-of-central-directory record");
    const uint8_t* z = data_ + off64;
    disk = rd32(z + 16);
    cd_disk = rd32(z + 20);
    count = rd64(z + 32);
    cd_size = rd64(z + 40);
    cd_offset = rd64(z + 48);
  } else if (count == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
    fail("zip64 archive without a zip64 end-of-central-directory locator");
  }
  if (disk != 0 || cd_disk != 0) fail("multi-disk zip archives are not supported");
  if (!in_range(cd_offset, cd_size, size_)) fail("central directory lies outside the file (truncated?)");
  if (count > cd_size / kCentralSize) fail("central directory too small for " + std::to_string(count) + " entries");

  entries_.reserve(size_t(count));
  index_.reserve(size_t(count));
  const uint8_t* p = data_ + cd_offset;
  const uint8_t* cd_end = p + cd_size;
  for (uint64_t i = 0; i < count; i++) {
    if (size_t(cd_end - p) < kCentralSize || rd32(p) != kCentralSig)
      fail("bad central directory entry " + std::to_string(i));
    Entry en;
    en.flags = rd16(p + 8);
    en.method = rd16(p + 10);
    en.crc = rd32(p + 16);
    uint64_t csize = rd32(p + 20), usize = rd32(p + 24);
    size_t nlen = rd16(p + 28), elen = rd16(p + 30), clen = rd16(p + 32);
    uint64_t edisk = rd16(p + 34), lho = rd32(p + 42);
    if (size_t(cd_end - p) - kCentralSize < nlen + elen + clen)
      fail("central directory entry " + std::to_string(i) + " overruns the directory");
    en.name.assign(reinterpret_cast<const char*>(p + kCentralSize), nlen);
    // zip64 extended information: only the fields whose 32/16-bit value is saturated, in order.
    const uint8_t* x = p + kCentralSize + nlen;
    const uint8_t* xend = x + elen;
    while (xend - x >= 4) {
      uint16_t id = rd16(x), len = rd16(x + 2);
      if (xend - x - 4 < len) fail("bad extra field in entry '" + printable(en.name) + "'");
      if (id == 0x0001) {
        const uint8_t* f = x + 4;
        const uint8_t* fend = f + len;
        auto take = [&](uint64_t& v) {
          if (fend - f < 8) fail("bad zip64 extra field in entry '" + printable(en.name) + "'");
          v = rd64(f);
          f += 8;
        };
        if (usize == 0xffffffffu) take(usize);
        if (csize == 0xffffffffu) take(csize);
        if (lho == 0xffffffffu) take(lho);
        if (edisk == 0xffff) {
          if (fend - f < 4) fail("bad zip64 extra field in entry '" + printable(en.name) + "'");
          edisk = rd32(f);
        }
      }
      x += 4 + len;
    }
    if (edisk != 0) fail("multi-disk zip archives are not supported");
    if (en.method == 0 && csize != usize)
      fail("stored entry '" + printable(en.name) + "' has different compressed and uncompressed sizes");
    en.size = csize;

    // Local header: its own name and extra lengths decide where the data starts.
    if (!in_range(lho, kLocalSize, size_) || rd32(data_ + lho) != kLocalSig)
      fail("bad local header for entry '" + printable(en.name) + "' (truncated?)");
    const uint8_t* lh = data_ + lho;
    uint64_t lnlen = rd16(lh + 26), lelen = rd16(lh + 28);
    if (lnlen != nlen || !in_range(lho + kLocalSize, lnlen + lelen, size_) ||
        std::memcmp(lh + kLocalSize, en.name.data(), nlen) != 0)
      fail("local header of entry '" + printable(en.name) + "' does not match the central directory");
    en.data_offset = lho + kLocalSize + lnlen + lelen;
    if (!in_range(en.data_offset, en.size, size_))
      fail("entry '" + printable(en.name) + "' extends past the end of the file (truncated?)");

    if (!index_.emplace(en.name, entries_.size()).second)
      fail("duplicate zip entry '" + printable(en.name) + "'");
    entries_.push_back(std::move(en));
    p += kCentralSize + nlen + elen + clen;
  }
}

const Entry* Reader::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const uint8_t* Reader::bytes(const Entry& e) const {
  if (e.flags & 1) throw InputError(source_ + ": zip entry '" + printable(e.name) + "' is encrypted");
  if (e.method != 0)
    throw InputError(source_ + ": zip entry '" + printable(e.name) + "' is compressed (method " +
                     std::to_string(e.method) + "); only stored entries are supported");
  return data_ + e.data_offset;
}

void Reader::verify_crc(const Entry& e) const {
  uint32_t c = crc32(bytes(e), size_t(e.size));
  if (c != e.crc)
    throw InputError(source_ + ": CRC-32 mismatch in zip entry '" + printable(e.name) +
                     "' (file corrupted)");
}

// ---- writer ---------------------------------------------------------------------------------

namespace {

struct Buf {
  std::vector<uint8_t> b;
  void u16(uint32_t v) {
    b.push_back(uint8_t(v));
    b.push_back(uint8_t(v >> 8));
  }
  void u32(uint32_t v) {
    u16(v & 0xffff);
    u16(v >> 16);
  }
  void u64(uint64_t v) {
    u32(uint32_t(v));
    u32(uint32_t(v >> 32));
  }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
};

constexpr uint32_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01
constexpr uint64_t kMax32 = 0xffffffffu;

}  // namespace

Writer::Writer(std::FILE* f, std::string path, uint32_t alignment, bool force_zip64)
    : f_(f), path_(std::move(path)), alignment_(alignment ? alignment : 1), force_zip64_(force_zip64) {}

void Writer::put(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n)
    throw InputError(path_ + ": write failed: " + std::strerror(errno));
  offset_ += n;
}

void Writer::add(const std::string& name, const void* data, size_t n) {
  if (finished_) throw std::logic_error("zip::Writer::add after finish");
  if (name.size() > 0xffff) throw InputError(path_ + ": zip entry name too long");
  bool z64 = force_zip64_ || n >= kMax32;
  uint32_t crc = crc32(data, n);
  uint64_t base = offset_ + kLocalSize + name.size() + (z64 ? 20 : 0);
  size_t pad = 0;
  bool pad_field = base % alignment_ != 0;
  if (pad_field) pad = (alignment_ - (base + 4) % alignment_) % alignment_;

  Buf h;
  h.u32(kLocalSig);
  h.u16(z64 ? 45 : 20);  // version needed
  h.u16(0);              // flags
  h.u16(0);              // stored
  h.u16(0);              // time
  h.u16(kDosDate);
  h.u32(crc);
  h.u32(z64 ? uint32_t(kMax32) : uint32_t(n));
  h.u32(z64 ? uint32_t(kMax32) : uint32_t(n));
  h.u16(uint32_t(name.size()));
  h.u16(uint32_t((z64 ? 20 : 0) + (pad_field ? 4 + pad : 0)));
  h.str(name);
  if (z64) {
    h.u16(0x0001);
    h.u16(16);
    h.u64(n);
    h.u64(n);
  }
  if (pad_field) {
    h.u16(0x4246);  // "FB", torch's padding field
    h.u16(uint32_t(pad));
    h.b.insert(h.b.end(), pad, 'Z');
  }
  records_.push_back({name, offset_, n, crc});
  put(h.b.data(), h.b.size());
  put(data, n);
}

void Writer::finish() {
  if (finished_) return;
  finished_ = true;
  uint64_t cd_start = offset_;
  for (const Record& r : records_) {
    bool big = force_zip64_ || r.size >= kMax32;
    bool far = force_zip64_ || r.header_offset >= kMax32;
    Buf h;
    h.u32(kCentralSig);
    h.u16(45);  // made by: MS-DOS host, spec 4.5
    h.u16(big || far ? 45 : 20);
    h.u16(0);
    h.u16(0);
    h.u16(0);
    h.u16(kDosDate);
    h.u32(r.crc);
    h.u32(big ? uint32_t(kMax32) : uint32_t(r.size));
    h.u32(big ? uint32_t(kMax32) : uint32_t(r.size));
    h.u16(uint32_t(r.name.size()));
    uint32_t xlen = (big ? 16 : 0) + (far ? 8 : 0);
    h.u16(xlen ? 4 + xlen : 0);
    h.u16(0);  // comment
    h.u16(0);  // disk
    h.u16(0);  // internal attributes
    h.u32(0);  // external attributes
    h.u32(far ? uint32_t(kMax32) : uint32_t(r.header_offset));
    h.str(r.name);
    if (xlen) {
      h.u16(0x0001);
      h.u16(xlen);
      if (big) {
        h.u64(r.size);
        h.u64(r.size);
      }
      if (far) h.u64(r.header_offset);
    }
    put(h.b.data(), h.b.size());
  }
  uint64_t cd_size = offset_ - cd_start;
  uint64_t count = records_.size();
  bool z64 = force_zip64_ || count >= 0xffff || cd_size >= kMax32 || cd_start >= kMax32;
  Buf h;
  if (z64) {
    uint64_t end64 = offset_;
    h.u32(kEnd64Sig);
    h.u64(kEnd64Size - 12);
    h.u16(45);
    h.u16(45);
    h.u32(0);
    h.u32(0);
    h.u64(count);
    h.u64(count);
    h.u64(cd_size);
    h.u64(cd_start);
    h.u32(kLocator64Sig);
    h.u32(0);
    h.u64(end64);
    h.u32(1);
  }
  h.u32(kEndSig);
  h.u16(0);
  h.u16(0);
  h.u16(z64 ? 0xffff : uint32_t(count));
  h.u16(z64 ? 0xffff : uint32_t(count));
  h.u32(z64 ? uint32_t(kMax32) : uint32_t(cd_size));
  h.u32(z64 ? uint32_t(kMax32) : uint32_t(cd_start));
  h.u16(0);
  put(h.b.data(), h.b.size());
}

}  // namespace eggroll::zip
