#include "core/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace eggroll {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

std::string read_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a directory, not a " + what);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open " + what + " (" + errno_text() + ")");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError(path + ": cannot read " + what);
  return ss.str();
}

void write_all(std::FILE* f, const std::string& path, const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f) != n) throw InputError(path + ": write failed: " + errno_text());
}

void write_file_atomic(const std::string& path, const FileFiller& fill) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw InputError(tmp + ": cannot create: " + errno_text());
  try {
    fill(f, tmp);
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) throw InputError(tmp + ": write failed: " + errno_text());
    std::FILE* g = f;
    f = nullptr;
    if (std::fclose(g) != 0) throw InputError(tmp + ": write failed: " + errno_text());
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw InputError(path + ": cannot rename " + tmp + " into place: " + errno_text());
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](std::FILE* f, const std::string& tmp) { write_all(f, tmp, bytes.data(), bytes.size()); });
}

}  // namespace eggroll
