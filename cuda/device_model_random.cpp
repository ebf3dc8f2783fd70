// cuda::DeviceModel(const ModelConfig&, seed, dtype): every parameter filled in place on the device
// by cuda::init_uniform with the layout and ranges of rwkv/model_layout.h (header-inline, so the
// CUDA library needs nothing from eggroll_lib), the same WeightView / StepWeights layout as the
// uploading constructor in cuda/device_forward.cpp.
#include "cuda/device_forward.h"
#include "cuda/device_random.h"
#include "rwkv/model_layout.h"

namespace eggroll::cuda {

DeviceModel::DeviceModel(const ModelConfig& cfg, uint64_t seed, WeightDType matrix_dtype) : dtype_(matrix_dtype) {
  const Model lay = model_layout(cfg);
  w_.cfg = cfg;
  w_.emb = lay.emb, w_.head = lay.head, w_.ln0_w = lay.ln0_w, w_.ln0_b = lay.ln0_b, w_.lnout_w = lay.lnout_w,
  w_.lnout_b = lay.lnout_b;
  w_.layers = lay.layers;
  try {
    for (size_t pid = 0; pid < lay.params.size(); pid++) {
      const Param& p = lay.params[pid];
      const int64_t n = p.rows * p.cols;
      const bool bf16 = p.is_matrix && matrix_dtype == WeightDType::BF16;
      const size_t bytes = size_t(n) * (bf16 ? 2 : 4);
      void* d = malloc_bytes(bytes);
      data_.push_back(d);
      bytes_ += bytes;
      float lo = 0, hi = 0;
      init_range(p.name, p.shape, lo, hi);
      init_uniform(d, bf16, n, init_param_base(seed, pid), lo, hi);
      WeightView v;
      v.rows = p.rows, v.cols = p.cols;
      v.data = d, v.dtype = bf16 ? WeightDType::BF16 : WeightDType::F32;
      w_.params.push_back(v);
    }
    synchronize();
  } catch (...) {
    for (void* d : data_) free_bytes(d);
    throw;
  }
}

}  // namespace eggroll::cuda
