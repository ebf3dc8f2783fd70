#pragma once
// A whole file mapped read-only. InputError ("<path>: ...") when it cannot be opened or mapped.
#include <cstddef>
#include <cstdint>
#include <string>

namespace eggroll {

class MappedFile {
 public:
  // Sequential: the whole file will be read (read-ahead). Random: only a few pages (headers).
  enum class Access { Sequential, Random };
  explicit MappedFile(const std::string& path, Access access = Access::Sequential);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Drops the whole pages inside [p, p + n) (a range of this mapping) from the resident set; a
  // later read faults them in from the file again.
  void release(const uint8_t* p, size_t n) const;
  size_t size() const { return size_; }

 private:
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace eggroll
