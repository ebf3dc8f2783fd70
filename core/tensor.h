#pragma once
// A named, typed, host tensor as stored in a checkpoint (raw little-endian bytes), and the
// ordered collection of them that a checkpoint holds.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace eggroll {

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // numel() * dtype_size(dtype) bytes, little-endian, row-major

  size_t numel() const;
  size_t nbytes() const { return numel() * dtype_size(dtype); }
  std::vector<float> to_f32() const;
  static Tensor from_f32(std::string name, std::vector<int64_t> shape, const float* src, DType dtype);
  std::string shape_str() const;  // "[768, 768]"
};

// Tensors in file order; names are unique.
struct StateDict {
  std::vector<Tensor> tensors;

  const Tensor* find(const std::string& name) const;
  Tensor* find(const std::string& name);
  // Throws InputError("<source>: missing tensor '<name>'") when absent.
  const Tensor& at(const std::string& name, const std::string& source) const;
  void add(Tensor t);  // replaces a tensor of the same name
};

}  // namespace eggroll
