#pragma once
// RWKV-7 (x070) model configuration (inferred from the tensors) and weights on the host (fp32, or
// a 16-bit checkpoint's matrices kept as their bits).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/tensor.h"

namespace eggroll {

struct ModelConfig {
  int n_layer = 0, n_embd = 0, n_head = 0, head_size = 64;
  int vocab = 0, ffn = 0;
  int dw = 0, da = 0, dv = 0, dg = 0;  // LoRA widths of the decay, in-context rate, value, gate paths
  bool layer0_vlora = false;           // layer 0 carries (unused) v0/v1/v2

  // Exact number of scalars in the official tensors of this configuration.
  uint64_t param_count() const;
  // The official tensor names and shapes, in the released key order.
  std::vector<TensorSpec> tensor_specs(DType dtype) const;
  std::string describe() const;  // one line: "L=12 C=768 H=12 V=65536 ..."

  // Presets (docs/architecture.md, "Model presets"): tiny, 0.1b, 0.4b, 1.5b, 2.9b, 7.2b, 13.3b. InputError on an unknown name.
  static ModelConfig preset(const std::string& name, int vocab = 65536);
  static const std::vector<std::string>& preset_names();
  // Infers every dimension from the tensors and checks every shape; `source` names the file in errors.
  static ModelConfig infer(const StateDict& sd, const std::string& source);
};

// One parameter tensor, held as fp32. `shape` is the shape as stored in the checkpoint
// ([1,1,C] for the token-shift vectors); rows x cols is its matrix view (1 x n for vectors).
struct Param {
  std::string name;
  std::vector<int64_t> shape;
  int64_t rows = 0, cols = 0;
  bool is_matrix = false;  // two real dimensions (counting emb and head)
  std::vector<float> data;
  // A 16-bit matrix loaded with MatrixBits::Keep: its checkpoint bytes (bits_dtype, BF16 or F16),
  // `data` then empty. Widening is exact, so these bits are the values; BackendModel reads them.
  std::vector<uint8_t> bits;
  DType bits_dtype = DType::F32;
  size_t numel() const { return data.size(); }
  // The fp32 values: data, or the kept bits widened into tmp (exact).
  const float* f32_values(std::vector<float>& tmp) const;
};

struct LayerParams {
  // vectors
  int ln1_w, ln1_b, ln2_w, ln2_b, x_r, x_w, x_k, x_v, x_a, x_g, w0, a0, v0, k_k, k_a, r_k, lnx_w, lnx_b, ffn_x_k;
  // matrices
  int Wr, Wk, Wv, Wo, w1, w2, a1, a2, v1, v2, g1, g2, ffn_key, ffn_value;
};

struct Model {
  ModelConfig cfg;
  std::vector<Param> params;  // every tensor, in the official order; index = parameter id
  int emb = -1, head = -1, ln0_w = -1, ln0_b = -1, lnout_w = -1, lnout_b = -1;
  std::vector<LayerParams> layers;
  DType source_dtype = DType::F32;

  const float* p(int id) const { return params[size_t(id)].data.data(); }
  int find(const std::string& name) const;  // -1 when absent

  static Model from_state_dict(const StateDict& sd, const std::string& source);
  // Reads the file one tensor at a time (core/checkpoint.h, load_checkpoint_streaming), each
  // converted as it comes: the peak holds the model plus one tensor. Widen: every parameter as
  // fp32. Keep: 16-bit matrices (Param::is_matrix) stay as their bits (half the memory), for
  // a BackendModel in bf16 or to be saved; the fp32 Forward needs Widen.
  // progress (optional): called after each tensor with the tensor bytes read so far and in all.
  enum class MatrixBits { Widen, Keep };
  using LoadProgress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;
  static Model load(const std::string& path, MatrixBits matrices = MatrixBits::Widen,
                    const LoadProgress& progress = {});
  // Random weights with the real shapes and value ranges, deterministic in seed.
  static Model random(const ModelConfig& cfg, uint64_t seed);
  StateDict to_state_dict(DType dtype) const;
  // The file to_state_dict(dtype) would make (format from the extension), written one tensor at
  // a time: no second copy of the model in memory.
  void save(const std::string& path, DType dtype) const;

 private:
  void bind();  // fills the index fields from names
};

// Writes a random checkpoint tensor by tensor (never holding more than one tensor in memory),
// so presets larger than RAM can be written. Values equal Model::random(cfg, seed).
void write_random_checkpoint(const std::string& path, const ModelConfig& cfg, uint64_t seed, DType dtype);

}  // namespace eggroll
