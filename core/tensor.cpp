#include "core/tensor.h"

#include "core/error.h"

namespace eggroll {

size_t Tensor::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

std::vector<float> Tensor::to_f32() const {
  std::vector<float> out(numel());
  convert_to_f32(dtype, data.data(), out.data(), out.size());
  return out;
}

Tensor Tensor::from_f32(std::string name, std::vector<int64_t> shape, const float* src, DType dtype) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.resize(t.nbytes());
  convert_from_f32(dtype, src, t.data.data(), t.numel());
  return t;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const Tensor* StateDict::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}
Tensor* StateDict::find(const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}
const Tensor& StateDict::at(const std::string& name, const std::string& source) const {
  const Tensor* t = find(name);
  if (!t) throw InputError(source + ": missing tensor '" + name + "'");
  return *t;
}
void StateDict::add(Tensor t) {
  if (Tensor* old = find(t.name)) *old = std::move(t);
  else tensors.push_back(std::move(t));
}

}  // namespace eggroll
