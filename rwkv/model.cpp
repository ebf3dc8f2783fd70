#include "rwkv/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/ops/init.h"
#include "core/parallel.h"
#include "rwkv/model_layout.h"

namespace eggroll {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
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
// only on (seed, parameter index, element): core/ops/init.h, ranges from init_range().
void random_values(const std::string& name, const std::vector<int64_t>& shape, uint64_t seed, size_t pid,
                   std::vector<float>& out) {
  const size_t n = size_t(shape_numel(shape));
  out.resize(n);
  const uint64_t base = init_param_base(seed, pid);
  float lo, hi;
  init_range(name, shape, lo, hi);
  parallel_for_chunks(int64_t(n), int64_t(1) << 14, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; j++) out[size_t(j)] = init_value(base, uint64_t(j), lo, hi);
  });
}

}  // namespace

uint64_t ModelConfig::param_count() const {
  uint64_t n = 0;
  for (const auto& e : model_tensor_entries(*this)) n += uint64_t(shape_numel(e.shape));
  return n;
}

std::vector<TensorSpec> ModelConfig::tensor_specs(DType dtype) const {
  std::vector<TensorSpec> out;
  for (auto& e : model_tensor_entries(*this)) out.push_back({e.name, dtype, e.shape});
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
  for (const auto& e : model_tensor_entries(c)) {
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

void Model::bind() { bind_param_ids(*this); }

Model Model::from_state_dict(const StateDict& sd, const std::string& source) {
  Model m;
  m.cfg = ModelConfig::infer(sd, source);
  m.source_dtype = sd.tensors.empty() ? DType::F32 : sd.tensors.front().dtype;
  for (const auto& e : model_tensor_entries(m.cfg)) {
    const Tensor& t = sd.at(e.name, source);
    Param p = param_skeleton(e.name, t.shape);
    p.data = t.to_f32();
    m.params.push_back(std::move(p));
  }
  m.bind();
  return m;
}

Model Model::load(const std::string& path, MatrixBits matrices, const LoadProgress& progress) {
  Model m;
  std::unordered_map<std::string, size_t> index;  // tensor name -> parameter id
  uint64_t done = 0, total = 0;
  load_checkpoint_streaming(
      path,
      [&](const StateDict& header) {
        m.cfg = ModelConfig::infer(header, path);  // every tensor expected, none extra, shapes checked
        m.source_dtype = header.tensors.empty() ? DType::F32 : header.tensors.front().dtype;
        for (const auto& e : model_tensor_entries(m.cfg)) {
          index.emplace(e.name, m.params.size());
          m.params.push_back(param_skeleton(e.name, header.at(e.name, path).shape));
        }
        for (const Tensor& t : header.tensors) total += t.nbytes();
      },
      [&](size_t, Tensor&& t) {
        done += t.data.size();
        Param& p = m.params[index.at(t.name)];
        if (matrices == MatrixBits::Keep && p.is_matrix && t.dtype != DType::F32) {
          p.bits = std::move(t.data);
          p.bits_dtype = t.dtype;
        } else {
          p.data = t.to_f32();
        }
        if (progress) progress(done, total);
      });
  m.bind();
  return m;
}

Model Model::random(const ModelConfig& cfg, uint64_t seed) {
  Model m;
  m.cfg = cfg;
  size_t pid = 0;
  for (const auto& e : model_tensor_entries(cfg)) {
    Param p = param_skeleton(e.name, e.shape);
    random_values(e.name, e.shape, seed, pid++, p.data);
    m.params.push_back(std::move(p));
  }
  m.bind();
  return m;
}

const float* Param::f32_values(std::vector<float>& tmp) const {
  if (bits.empty()) return data.data();
  tmp.resize(size_t(rows * cols));
  convert_to_f32(bits_dtype, bits.data(), tmp.data(), tmp.size());
  return tmp.data();
}

namespace {

// A parameter's values in dtype at out (numel * dtype_size bytes): from its fp32 data, or from its
// kept 16-bit bits (copied as they are when dtype is theirs; widening is exact).
void param_bytes(const Param& p, DType dtype, uint8_t* out, std::vector<float>& tmp) {
  const size_t n = size_t(p.rows * p.cols);
  if (!p.bits.empty() && p.bits_dtype == dtype) return void(std::memcpy(out, p.bits.data(), n * dtype_size(dtype)));
  convert_from_f32(dtype, p.f32_values(tmp), out, n);
}

}  // namespace

StateDict Model::to_state_dict(DType dtype) const {
  StateDict sd;
  std::vector<float> tmp;
  for (const auto& p : params) {
    Tensor t;
    t.name = p.name, t.dtype = dtype, t.shape = p.shape;
    t.data.resize(t.nbytes());
    param_bytes(p, dtype, t.data.data(), tmp);
    sd.tensors.push_back(std::move(t));
  }
  return sd;
}

void Model::save(const std::string& path, DType dtype) const {
  std::vector<TensorSpec> specs;
  for (const auto& p : params) specs.push_back({p.name, dtype, p.shape});
  std::vector<float> tmp;
  save_checkpoint_streaming(path, format_from_path(path), specs,
                            [&](size_t i, std::vector<uint8_t>& out) { param_bytes(params[i], dtype, out.data(), tmp); });
}

void write_random_checkpoint(const std::string& path, const ModelConfig& cfg, uint64_t seed, DType dtype) {
  auto specs = cfg.tensor_specs(dtype);
  std::vector<float> buf;
  save_checkpoint_streaming(path, format_from_path(path), specs, [&](size_t i, std::vector<uint8_t>& out) {
    random_values(specs[i].name, specs[i].shape, seed, i, buf);
    convert_from_f32(dtype, buf.data(), out.data(), buf.size());
  });
}

}  // namespace eggroll
