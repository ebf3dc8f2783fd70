#pragma once
// Checkpoint I/O: official RWKV `.pth` files (torch.save zip + pickle) and safetensors.
// Every reader throws InputError("<source>: <what is wrong>") on bad input; never crashes.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace eggroll {

// --- .pth (torch.save zip) ---------------------------------------------------
// Accepts only the pickle opcodes and globals a state dict uses
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.{BFloat16,Half,Float}Storage).
StateDict load_pth(const std::string& path);
StateDict load_pth_bytes(const uint8_t* data, size_t size, const std::string& source);

// --- safetensors -------------------------------------------------------------
StateDict load_safetensors(const std::string& path);
StateDict load_safetensors_bytes(const uint8_t* data, size_t size, const std::string& source);

// --- by format ------------------------------------------------------------------
enum class CheckpointFormat { Pth, Safetensors };
// From the extension (.pth/.pt vs .safetensors); throws InputError for anything else.
CheckpointFormat format_from_path(const std::string& path);
// Detects the format from the file's first bytes (zip magic vs safetensors header).
StateDict load_checkpoint(const std::string& path);

// --- one tensor at a time ------------------------------------------------------------
// An opened checkpoint whose tensors are read one at a time, so that at most one tensor's bytes
// need be held. Opening makes every check of read_checkpoint_header (its errors); read(i) copies
// tensor i (its CRC checked as load_checkpoint does) and releases the file pages it came from.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;
  const StateDict& header() const;  // every tensor's name, dtype and shape, in file order; no data
  Tensor read(size_t i) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The same as callbacks, for loaders that convert each tensor as it comes: `header` first, then
// `take(i, tensor)` for each tensor in file order (its pages released once read). The errors are
// load_checkpoint's; one raised by `header` or `take` propagates.
void load_checkpoint_streaming(const std::string& path, const std::function<void(const StateDict&)>& header,
                               const std::function<void(size_t, Tensor&&)>& take);

// --- header only -----------------------------------------------------------------
// The tensors' names, dtypes and shapes (Tensor::data left empty) from the header alone: the
// pickle of a .pth and its zip records, the JSON header of a safetensors file; no tensor data
// is read. The same tensors in the same order as the loaders, and the same checks with the same
// errors, except the CRC-32 of the tensor data (a .pth whose tensor bytes are damaged reads
// here and fails to load).
StateDict read_pth_header_bytes(const uint8_t* data, size_t size, const std::string& source);
StateDict read_safetensors_header_bytes(const uint8_t* data, size_t size, const std::string& source);
// Format from the first bytes, as load_checkpoint.
StateDict read_checkpoint_header(const std::string& path);

// Streaming writer: tensors are described up front and produced one at a time, so a
// checkpoint larger than memory (7.2B/13.3B presets) can be written. The file is written
// to "<path>.tmp" and renamed into place when complete.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};
// produce(i, out) must fill `out` (already sized to specs[i].nbytes()) with tensor i's bytes.
using TensorProducer = std::function<void(size_t index, std::vector<uint8_t>& out)>;
void save_checkpoint_streaming(const std::string& path, CheckpointFormat fmt,
                               const std::vector<TensorSpec>& specs, const TensorProducer& produce);
void save_checkpoint(const std::string& path, const StateDict& sd);  // format from extension
void save_pth(const std::string& path, const StateDict& sd);
void save_safetensors(const std::string& path, const StateDict& sd);

namespace detail {
// Test hook: writes a .pth whose every zip record uses the zip64 fields that files over
// 4 GiB need, so that path can be tested with small files.
void save_pth_zip64(const std::string& path, const StateDict& sd);
}  // namespace detail

}  // namespace eggroll
