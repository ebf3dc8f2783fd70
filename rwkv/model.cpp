#include "rwkv/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <set>

#include "core/hash.h"
#include "core/error.h"

namespace eggroll {

namespace {

enum class Kind { Vec, Mat };
struct Entry {
  std::string name;
  std::vector<int64_t> shape;
};

// The official tensors of one layer, in the released key order.
std::vector<Entry> layer_entries(const ModelConfig& c, int l) {
  const int64_t C = c.n_embd;
  const std::string b = "blocks." + std::to_string(l) + ".";
  std::vector<Entry> e;
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

std::vector<Entry> all_entries(const ModelConfig& c) {
  std::vector<Entry> e;
  e.push_back({"emb.weight", {c.vocab, c.n_embd}});
  for (int l = 0; l < c.n_layer; l++) {
    auto le = layer_entries(c, l);
    e.insert(e.end(), le.begin(), le.end());
  }
  e.push_back({"ln_out.weight", {c.n_embd}});
  e.push_back({"ln_out.bias", {c.n_embd}});
  e.push_back({"head.weight", {c.vocab, c.n_embd}});
  return e;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t numel_of(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// A vector stored as [1,1,C] may also appear as [C] (and vice versa): same numbers.
bool shape_compatible(const std::vector<int64_t>& want, const std::vector<int64_t>& got) {
  if (want == got) return true;
  auto squeeze = [](std::vector<int64_t> s) {
    s.erase(std::remove(s.begin(), s.end(), int64_t(1)), s.end());
    return s;
  };
  return want.size() != 2 && got.size() != 2 && squeeze(want) == squeeze(got);
}

const std::vector<int64_t>& dims_of(const StateDict& sd, const std::string& name, size_t rank,
                                    const std::string& source) {
  const Tensor& t = sd.at(name, source);
  if (t.shape.size() != rank)
    throw InputError(fmt::format("{}: tensor '{}' has shape {}, expected {} dimensions", source, name,
                                 t.shape_str(), rank));
  for (auto d : t.shape)
    if (d <= 0) throw InputError(fmt::format("{}: tensor '{}' has shape {}", source, name, t.shape_str()));
  return t.shape;
}

// Fills `out` with the random initial values of parameter `name` (index pid); each value depends
// only on (seed, parameter index, element).
void random_values(const ModelConfig& c, const std::string& name, const std::vector<int64_t>& shape,
                   uint64_t seed, size_t pid, std::vector<float>& out) {
  const size_t n = size_t(numel_of(shape));
  out.resize(n);
  const uint64_t base = splitmix64(seed ^ splitmix64(pid + 1));
  // value = lo + (hi - lo) * u, u uniform in [0,1)
  float lo = -1, hi = 1;
  auto ends = [&](const char* suffix) {
    return name.size() >= std::strlen(suffix) && name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0;
  };
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
  (void)c;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < int64_t(n); j++) {
    uint64_t h = splitmix64(base + uint64_t(j));
    float u = float(h >> 40) * (1.0f / 16777216.0f);
    out[size_t(j)] = lo + (hi - lo) * u;
  }
}

}  // namespace

uint64_t ModelConfig::param_count() const {
  uint64_t n = 0;
  for (const auto& e : all_entries(*this)) n += uint64_t(numel_of(e.shape));
  return n;
}

std::vector<TensorSpec> ModelConfig::tensor_specs(DType dtype) const {
  std::vector<TensorSpec> out;
  for (auto& e : all_entries(*this)) out.push_back({e.name, dtype, e.shape});
  return out;
}

std::string ModelConfig::describe() const {
  return fmt::format("L={} C={} heads={} head_size={} V={} ffn={} Dw={} Da={} Dv={} Dg={} layer0_vlora={}", n_layer,
                     n_embd, n_head, head_size, vocab, ffn, dw, da, dv, dg, layer0_vlora ? "yes" : "no");
}

const std::vector<std::string>& ModelConfig::preset_names() {
  static const std::vector<std::string> names = {"tiny", "0.1b", "0.4b", "1.5b", "2.9b", "7.2b", "13.3b"};
  return names;
}

ModelConfig ModelConfig::preset(const std::string& name, int vocab) {
  struct P { const char* n; int L, C, dw, da, dv, dg; };
  static const P table[] = {
      {"tiny", 2, 128, 16, 16, 16, 32},     {"0.1b", 12, 768, 64, 64, 32, 128},
      {"0.4b", 24, 1024, 64, 64, 32, 128},  {"1.5b", 24, 2048, 96, 96, 64, 256},
      {"2.9b", 32, 2560, 96, 96, 64, 320},  {"7.2b", 32, 4096, 128, 128, 96, 480},
      {"13.3b", 61, 4096, 192, 192, 128, 384},
  };
  for (const P& p : table) {
    if (name != p.n) continue;
    ModelConfig c;
    c.n_layer = p.L;
    c.n_embd = p.C;
    c.n_head = p.C / 64;
    c.vocab = vocab;
    c.ffn = 4 * p.C;
    c.dw = p.dw, c.da = p.da, c.dv = p.dv, c.dg = p.dg;
    return c;
  }
  std::string known;
  for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError(fmt::format("unknown model preset '{}' (known: {})", name, known));
}

ModelConfig ModelConfig::infer(const StateDict& sd, const std::string& source) {
  ModelConfig c;
  const auto& emb = dims_of(sd, "emb.weight", 2, source);
  c.vocab = int(emb[0]);
  c.n_embd = int(emb[1]);
  if (c.n_embd % 64 != 0)
    throw InputError(fmt::format("{}: n_embd {} (from emb.weight) is not a multiple of the head size 64", source,
                                 c.n_embd));
  c.head_size = 64;
  c.n_head = c.n_embd / 64;
  int max_layer = -1;
  for (const auto& t : sd.tensors) {
    if (t.name.rfind("blocks.", 0) != 0) continue;
    size_t dot = t.name.find('.', 7);
    std::string num = t.name.substr(7, dot == std::string::npos ? std::string::npos : dot - 7);
    if (num.empty() || num.size() > 6 || !std::all_of(num.begin(), num.end(), ::isdigit))
      throw InputError(fmt::format("{}: unexpected tensor name '{}'", source, t.name));
    max_layer = std::max(max_layer, std::stoi(num));
  }
  if (max_layer < 0) throw InputError(source + ": no 'blocks.N.*' tensors: not an RWKV-7 checkpoint");
  c.n_layer = max_layer + 1;
  c.dw = int(dims_of(sd, "blocks.0.att.w1", 2, source)[1]);
  c.da = int(dims_of(sd, "blocks.0.att.a1", 2, source)[1]);
  c.dg = int(dims_of(sd, "blocks.0.att.g1", 2, source)[1]);
  c.ffn = int(dims_of(sd, "blocks.0.ffn.key.weight", 2, source)[0]);
  c.layer0_vlora = sd.find("blocks.0.att.v1") != nullptr;
  if (c.n_layer > 1 || c.layer0_vlora)
    c.dv = int(dims_of(sd, c.n_layer > 1 ? "blocks.1.att.v1" : "blocks.0.att.v1", 2, source)[1]);
  // check every tensor: present, right shape; nothing unexpected
  std::set<std::string> expected;
  for (const auto& e : all_entries(c)) {
    expected.insert(e.name);
    const Tensor& t = sd.at(e.name, source);
    if (!shape_compatible(e.shape, t.shape))
      throw InputError(fmt::format("{}: tensor '{}' has shape {}, expected {}", source, e.name, t.shape_str(),
                                   shape_str(e.shape)));
  }
  for (const auto& t : sd.tensors)
    if (!expected.count(t.name)) throw InputError(fmt::format("{}: unexpected tensor '{}'", source, t.name));
  return c;
}

int Model::find(const std::string& name) const {
  for (size_t i = 0; i < params.size(); i++)
    if (params[i].name == name) return int(i);
  return -1;
}

void Model::bind() {
  auto id = [&](const std::string& n) {
    int i = find(n);
    if (i < 0) throw std::logic_error("model parameter missing after load: " + n);
    return i;
  };
  auto opt = [&](const std::string& n) { return find(n); };
  emb = id("emb.weight");
  head = id("head.weight");
  ln0_w = id("blocks.0.ln0.weight");
  ln0_b = id("blocks.0.ln0.bias");
  lnout_w = id("ln_out.weight");
  lnout_b = id("ln_out.bias");
  layers.assign(size_t(cfg.n_layer), LayerParams{});
  for (int l = 0; l < cfg.n_layer; l++) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    LayerParams& L = layers[size_t(l)];
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

static Param make_param(const std::string& name, const std::vector<int64_t>& shape) {
  Param p;
  p.name = name;
  p.shape = shape;
  p.is_matrix = shape.size() == 2 && name.find("att.r_k") == std::string::npos;
  p.rows = p.is_matrix ? shape[0] : 1;
  p.cols = p.is_matrix ? shape[1] : numel_of(shape);
  return p;
}

Model Model::from_state_dict(const StateDict& sd, const std::string& source) {
  Model m;
  m.cfg = ModelConfig::infer(sd, source);
  m.source_dtype = sd.tensors.empty() ? DType::F32 : sd.tensors.front().dtype;
  for (const auto& e : all_entries(m.cfg)) {
    const Tensor& t = sd.at(e.name, source);
    Param p = make_param(e.name, t.shape);
    p.data = t.to_f32();
    m.params.push_back(std::move(p));
  }
  m.bind();
  return m;
}

Model Model::load(const std::string& path) { return from_state_dict(load_checkpoint(path), path); }

Model Model::random(const ModelConfig& cfg, uint64_t seed) {
  Model m;
  m.cfg = cfg;
  size_t pid = 0;
  for (const auto& e : all_entries(cfg)) {
    Param p = make_param(e.name, e.shape);
    random_values(cfg, e.name, e.shape, seed, pid++, p.data);
    m.params.push_back(std::move(p));
  }
  m.bind();
  return m;
}

StateDict Model::to_state_dict(DType dtype) const {
  StateDict sd;
  for (const auto& p : params) sd.tensors.push_back(Tensor::from_f32(p.name, p.shape, p.data.data(), dtype));
  return sd;
}

void Model::save(const std::string& path, DType dtype) const { save_checkpoint(path, to_state_dict(dtype)); }

void write_random_checkpoint(const std::string& path, const ModelConfig& cfg, uint64_t seed, DType dtype) {
  auto specs = cfg.tensor_specs(dtype);
  std::vector<float> buf;
  save_checkpoint_streaming(path, format_from_path(path), specs, [&](size_t i, std::vector<uint8_t>& out) {
    random_values(cfg, specs[i].name, specs[i].shape, seed, i, buf);
    convert_from_f32(dtype, buf.data(), out.data(), buf.size());
  });
}

}  // namespace eggroll
