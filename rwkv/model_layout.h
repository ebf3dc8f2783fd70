#pragma once
// The tensor layout of an RWKV-7 model, header-inline: the official tensor names and shapes of a
// configuration, a Model "skeleton" (names, shapes, matrix views and the index fields, no data),
// and the value range of each parameter's random init. rwkv/model.cpp builds every Model from
// these; the CUDA library (which must not link eggroll_lib) uses them to make a model directly
// on the device (cuda/init.h).
//
// A skeleton's Param::data is empty, so Param::numel() is 0 there: use rows * cols.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "rwkv/model.h"

namespace eggroll {

struct TensorEntry {
  std::string name;
  std::vector<int64_t> shape;
};

inline int64_t shape_numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// The official tensors of layer l, in the released key order.
inline std::vector<TensorEntry> layer_tensor_entries(const ModelConfig& c, int l) {
  const int64_t C = c.n_embd;
  const std::string b = "blocks." + std::to_string(l) + ".";
  std::vector<TensorEntry> e;
  auto vec3 = [&](const std::string& n) { e.push_back({b + n, {1, 1, C}}); };
  if (l == 0) {
    e.push_back({b + "ln0.weight", {C}});
    e.push_back({b + "ln0.bias", {C}});
  }
  e.push_back({b + "ln1.weight", {C}});
  e.push_back({b + "ln1.bias", {C}});
  e.push_back({b + "ln2.weight", {C}});
  e.push_back({b + "ln2.bias", {C}});
  for (const char* n : {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g", "att.w0"}) vec3(n);
  e.push_back({b + "att.r_k", {c.n_head, c.head_size}});
  e.push_back({b + "att.w1", {C, c.dw}});
  e.push_back({b + "att.w2", {c.dw, C}});
  e.push_back({b + "att.a1", {C, c.da}});
  e.push_back({b + "att.a2", {c.da, C}});
  vec3("att.a0");
  e.push_back({b + "att.g1", {C, c.dg}});
  e.push_back({b + "att.g2", {c.dg, C}});
  if (l > 0 || c.layer0_vlora) {
    e.push_back({b + "att.v2", {c.dv, C}});
    e.push_back({b + "att.v1", {C, c.dv}});
    vec3("att.v0");
  }
  vec3("att.k_k");
  vec3("att.k_a");
  for (const char* n : {"att.receptance.weight", "att.key.weight", "att.value.weight", "att.output.weight"})
    e.push_back({b + n, {C, C}});
  e.push_back({b + "att.ln_x.weight", {C}});
  e.push_back({b + "att.ln_x.bias", {C}});
  vec3("ffn.x_k");
  e.push_back({b + "ffn.key.weight", {c.ffn, C}});
  e.push_back({b + "ffn.value.weight", {C, c.ffn}});
  return e;
}

// Every official tensor of the configuration, in the released key order (index = parameter id).
inline std::vector<TensorEntry> model_tensor_entries(const ModelConfig& c) {
  std::vector<TensorEntry> e;
  e.push_back({"emb.weight", {c.vocab, c.n_embd}});
  for (int l = 0; l < c.n_layer; l++) {
    auto le = layer_tensor_entries(c, l);
    e.insert(e.end(), le.begin(), le.end());
  }
  e.push_back({"ln_out.weight", {c.n_embd}});
  e.push_back({"ln_out.bias", {c.n_embd}});
  e.push_back({"head.weight", {c.vocab, c.n_embd}});
  return e;
}

// A parameter's name, shape and matrix view; no data.
inline Param param_skeleton(const std::string& name, const std::vector<int64_t>& shape) {
  Param p;
  p.name = name;
  p.shape = shape;
  p.is_matrix = shape.size() == 2 && name.find("att.r_k") == std::string::npos;
  p.rows = p.is_matrix ? shape[0] : 1;
  p.cols = p.is_matrix ? shape[1] : shape_numel(shape);
  return p;
}

// Fills the index fields of m (emb, head, ln0, ln_out, layers) from its parameter names;
// std::logic_error when a required tensor is missing (v0 / v1 / v2 are optional).
inline void bind_param_ids(Model& m) {
  std::unordered_map<std::string, int> ids;
  for (size_t i = 0; i < m.params.size(); i++) ids.emplace(m.params[i].name, int(i));
  auto opt = [&](const std::string& n) {
    auto it = ids.find(n);
    return it == ids.end() ? -1 : it->second;
  };
  auto id = [&](const std::string& n) {
    const int i = opt(n);
    if (i < 0) throw std::logic_error("model parameter missing after load: " + n);
    return i;
  };
  m.emb = id("emb.weight");
  m.head = id("head.weight");
  m.ln0_w = id("blocks.0.ln0.weight");
  m.ln0_b = id("blocks.0.ln0.bias");
  m.lnout_w = id("ln_out.weight");
  m.lnout_b = id("ln_out.bias");
  m.layers.assign(size_t(m.cfg.n_layer), LayerParams{});
  for (int l = 0; l < m.cfg.n_layer; l++) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    LayerParams& L = m.layers[size_t(l)];
    L.ln1_w = id(b + "ln1.weight"), L.ln1_b = id(b + "ln1.bias");
    L.ln2_w = id(b + "ln2.weight"), L.ln2_b = id(b + "ln2.bias");
    L.x_r = id(b + "att.x_r"), L.x_w = id(b + "att.x_w"), L.x_k = id(b + "att.x_k");
    L.x_v = id(b + "att.x_v"), L.x_a = id(b + "att.x_a"), L.x_g = id(b + "att.x_g");
    L.w0 = id(b + "att.w0"), L.a0 = id(b + "att.a0"), L.v0 = opt(b + "att.v0");
    L.k_k = id(b + "att.k_k"), L.k_a = id(b + "att.k_a"), L.r_k = id(b + "att.r_k");
    L.lnx_w = id(b + "att.ln_x.weight"), L.lnx_b = id(b + "att.ln_x.bias");
    L.ffn_x_k = id(b + "ffn.x_k");
    L.Wr = id(b + "att.receptance.weight"), L.Wk = id(b + "att.key.weight");
    L.Wv = id(b + "att.value.weight"), L.Wo = id(b + "att.output.weight");
    L.w1 = id(b + "att.w1"), L.w2 = id(b + "att.w2"), L.a1 = id(b + "att.a1"), L.a2 = id(b + "att.a2");
    L.v1 = opt(b + "att.v1"), L.v2 = opt(b + "att.v2");
    L.g1 = id(b + "att.g1"), L.g2 = id(b + "att.g2");
    L.ffn_key = id(b + "ffn.key.weight"), L.ffn_value = id(b + "ffn.value.weight");
  }
}

// The model of `cfg` without data: every Param's name, shape, rows x cols and is_matrix, and the
// index fields. Small (a few hundred KB for 13.3b): for planning, parameter selection and the
// device-side init, where the host never holds the weights.
inline Model model_layout(const ModelConfig& cfg) {
  Model m;
  m.cfg = cfg;
  for (const auto& e : model_tensor_entries(cfg)) m.params.push_back(param_skeleton(e.name, e.shape));
  bind_param_ids(m);
  return m;
}

// [lo, hi) of the uniform random init of a parameter (core/ops/init.h init_value), chosen so
// that the forward stays finite and the activations keep a sensible scale:
//   matrices    +-sqrt(3 / shape[1]) (variance 1 / shape[1]: unit-variance outputs for unit inputs
//               for the [out, in] matrices; the LoRA matrices w1/a1/v1/g1 [C, D] and w2/a2/v2/g2
//               [D, C], used as x @ P, scale by their second dimension as well), emb +-sqrt(3),
//               x 0.1 for w2, a2, v2, g2, x 0.5 for att.output / ffn.value
//   layer norm weights [0.8, 1.2), biases [-0.1, 0.1), w0 [-3, 1), k_k [0.5, 1.5), r_k [-0.5, 0.5),
//   a0 / v0 [-1, 1), token-shift mixes x_* and k_a [0, 1)
inline void init_range(const std::string& name, const std::vector<int64_t>& shape, float& lo, float& hi) {
  auto ends = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, std::string::npos, suffix) == 0;
  };
  lo = -1, hi = 1;
  const bool matrix = shape.size() == 2 && !ends("att.r_k");
  if (matrix) {
    double fan_in = double(name == "emb.weight" ? 1 : shape[1]);
    double s = std::sqrt(3.0 / fan_in);
    if (ends("w2") || ends("a2") || ends("v2") || ends("g2")) s *= 0.1;
    if (ends("output.weight") || ends("ffn.value.weight")) s *= 0.5;
    lo = float(-s), hi = float(s);
  } else if (ends("ln0.weight") || ends("ln1.weight") || ends("ln2.weight") || ends("ln_out.weight") ||
             ends("ln_x.weight")) {
    lo = 0.8f, hi = 1.2f;
  } else if (ends(".bias")) {
    lo = -0.1f, hi = 0.1f;
  } else if (ends("w0")) {
    lo = -3.f, hi = 1.f;
  } else if (ends("k_k")) {
    lo = 0.5f, hi = 1.5f;
  } else if (ends("r_k")) {
    lo = -0.5f, hi = 0.5f;
  } else if (ends("a0") || ends("v0")) {
    lo = -1.f, hi = 1.f;
  } else {  // token-shift mixes x_*, k_a
    lo = 0.f, hi = 1.f;
  }
}

}  // namespace eggroll
