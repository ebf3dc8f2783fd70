#pragma once
// A deliberately tiny pickle machine for torch state dicts (internal to checkpoint I/O).
//
// The reader runs only the opcodes a torch.save'd state dict uses and resolves only the
// globals collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and
// torch.{BFloat16,Half,Float}Storage. It builds no Python objects: the result is the list of
// (name, tensor view of a storage record), and nothing in the pickle can run code.
// The writer emits the protocol-2 pickle torch.save would write for an OrderedDict of
// contiguous tensors, one storage record per tensor.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace eggroll::pickle {

struct TensorRef {
  std::string name;
  std::string storage_key;  // the record is "<archive>/data/<storage_key>"
  DType dtype = DType::F32;
  int64_t storage_offset = 0;  // in elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements, same length as sizes
};

// Runs the pickle; throws InputError("<source>: ...") for anything outside the allowed
// subset and for malformed input. Tensors come back in dict order; a repeated key keeps
// its first position and takes the last value (as a Python dict does).
std::vector<TensorRef> read_state_dict(const uint8_t* data, size_t size, const std::string& source);

struct WriteItem {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
// The pickle for an OrderedDict of contiguous tensors; tensor i lives in storage record "i".
std::vector<uint8_t> write_state_dict(const std::vector<WriteItem>& items);

}  // namespace eggroll::pickle
