#pragma once
// Whole-file reads and atomic writes (temp file + fsync + rename), for every file the code
// writes that a reader must see whole or not at all: checkpoints, run state, configs, logs.
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace eggroll {

// Every byte of a file. `what` names it in errors: InputError "<path>: is a directory, not a
// <what>", "<path>: cannot open <what> (<reason>)" or "<path>: cannot read <what>".
std::string read_file(const std::string& path, const std::string& what = "file");

// Writes `path` atomically: `fill` writes the contents to `f`, the file "<path>.tmp" (named
// `tmp` for its errors), which is then flushed, fsynced, closed and renamed over `path`. A
// reader sees the old file or the whole new one; on any error the temp file is removed.
// InputError "<tmp>: cannot create: <reason>", "<tmp>: write failed: <reason>" or
// "<path>: cannot rename <tmp> into place: <reason>"; what `fill` throws passes through.
using FileFiller = std::function<void(std::FILE* f, const std::string& tmp)>;
void write_file_atomic(const std::string& path, const FileFiller& fill);
void write_file_atomic(const std::string& path, std::string_view bytes);

// fwrite of all n bytes; InputError "<path>: write failed: <reason>" when it falls short.
void write_all(std::FILE* f, const std::string& path, const void* data, size_t n);

}  // namespace eggroll
