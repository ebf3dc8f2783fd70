#include "rwkv/backend_model.h"

#include <cstring>
#include <stdexcept>

#include "core/dtype.h"
#include "core/ops/init.h"
#include "rwkv/model_layout.h"

namespace eggroll {

void BackendModel::place_layout(const Model& layout) {
  w_ = weights_layout(layout);
  bf16_.assign(layout.params.size(), nullptr);
}

namespace {

// The bf16 rounding of a parameter's values into out: f32_to_bf16 of each (for kept bf16 bits,
// the bits themselves, a NaN quieted as f32_to_bf16 does; widened one element at a time).
void bf16_values(const Param& p, std::vector<uint16_t>& out, std::vector<float>& tmp) {
  const size_t n = size_t(p.rows * p.cols);
  out.resize(n);
  if (p.bits_dtype == DType::BF16 && !p.bits.empty()) {
    std::memcpy(out.data(), p.bits.data(), n * 2);
    for (uint16_t& b : out) b = f32_to_bf16(bf16_to_f32(b));
    return;
  }
  const float* f = p.f32_values(tmp);
  for (size_t j = 0; j < n; j++) out[j] = f32_to_bf16(f[j]);
}

}  // namespace

BackendModel::BackendModel(Backend& be, const Model& m, DType matrix_dtype, const std::vector<uint8_t>* masters,
                           bool in_place)
    : be_(be), buffers_(be), dtype_(matrix_dtype) {
  place(m, nullptr, masters, in_place);
}

BackendModel::BackendModel(Backend& be, Model&& m, DType matrix_dtype)
    : be_(be), buffers_(be), dtype_(matrix_dtype) {
  place(m, &m, nullptr, false);
}

void BackendModel::place(const Model& m, Model* release, const std::vector<uint8_t>* masters, bool in_place) {
  if (masters && masters->size() != m.params.size())
    throw std::invalid_argument("BackendModel: the master selection does not match the model");
  place_layout(m);
  master_.assign(m.params.size(), nullptr);
  std::vector<uint16_t> bits;
  std::vector<float> tmp;
  for (size_t pid = 0; pid < m.params.size(); pid++) {
    const Param& p = m.params[pid];
    const int64_t n = p.rows * p.cols;
    const bool updated = masters && (*masters)[pid];
    WeightView v;
    v.rows = p.rows, v.cols = p.cols;
    if (p.is_matrix && dtype_ == DType::BF16) {
      bf16_values(p, bits, tmp);
      uint16_t* b = buffers_.array<uint16_t>(n);
      be_.upload(b, bits.data(), size_t(n) * 2);
      bytes_ += size_t(n) * 2;
      bf16_[pid] = b;
      v.data = b, v.dtype = DType::BF16;
      if (updated && in_place && be_.shares_host_memory() && p.bits.empty()) {
        master_[pid] = const_cast<float*>(p.data.data());  // m's own array, as for fp32 parameters
      } else if (updated) {
        master_[pid] = buffers_.array(n);
        be_.upload(master_[pid], p.f32_values(tmp), size_t(n) * 4);
        bytes_ += size_t(n) * 4;
      }
    } else {
      const float* src = p.f32_values(tmp);
      float* f = const_cast<float*>(src);  // used in place on a host-memory backend
      if (!(in_place && be_.shares_host_memory() && p.bits.empty())) {
        f = buffers_.array(n);
        be_.upload(f, src, size_t(n) * 4);
        bytes_ += size_t(n) * 4;
      }
      v.data = f, v.dtype = DType::F32;
      if (updated) master_[pid] = f;
    }
    w_.params.push_back(v);
    if (release) {  // placed: the host copy goes
      Param& r = release->params[pid];
      std::vector<float>().swap(r.data);
      std::vector<uint8_t>().swap(r.bits);
    }
  }
}

BackendModel::BackendModel(Backend& be, const ModelConfig& cfg, uint64_t seed, DType matrix_dtype)
    : be_(be), buffers_(be), dtype_(matrix_dtype) {
  const Model lay = model_layout(cfg);
  place_layout(lay);
  for (size_t pid = 0; pid < lay.params.size(); pid++) {
    const Param& p = lay.params[pid];
    const int64_t n = p.rows * p.cols;
    const bool bf = p.is_matrix && matrix_dtype == DType::BF16;
    void* d = buffers_.bytes(size_t(n) * (bf ? 2 : 4));
    bytes_ += size_t(n) * (bf ? 2 : 4);
    float lo = 0, hi = 0;
    init_range(p.name, p.shape, lo, hi);
    be.init_uniform(d, bf ? DType::BF16 : DType::F32, n, init_param_base(seed, pid), lo, hi);
    WeightView v;
    v.rows = p.rows, v.cols = p.cols;
    v.data = d, v.dtype = bf ? DType::BF16 : DType::F32;
    if (bf) bf16_[pid] = static_cast<uint16_t*>(d);
    w_.params.push_back(v);
  }
  be.synchronize();
}

BackendModel::~BackendModel() {
  if (prepared_) release_products(be_, w_);
}

void BackendModel::prepare_products() {
  if (prepared_) return;
  prepared_ = true;
  for (ProductMatrix pm : product_matrices(w_)) {  // one at a time: the peak holds one extra matrix
    WeightView& v = w_.params[size_t(pm.pid)];
    v.prepared = be_.prepare_weight(v, pm.x_times_p);
    if (!v.prepared || v.dtype != DType::BF16 || !be_.prepared_replaces_data(v)) continue;
    buffers_.release(v.data);
    bytes_ -= size_t(v.rows * v.cols) * 2;
    v.data = nullptr;
    bf16_[size_t(pm.pid)] = nullptr;
  }
}

void BackendModel::refresh(int pid) {
  const WeightView& v = w_.params[size_t(pid)];
  if (!v.prepared) return;
  if (v.data) return be_.refresh_prepared(v.prepared, v);
  WeightView m = v;  // the plain array was released: repack from the fp32 master
  m.data = master(pid), m.dtype = DType::F32;
  if (!m.data) throw std::logic_error("BackendModel::refresh: a parameter without master or values");
  be_.refresh_prepared(v.prepared, m);
}

// ---- state -------------------------------------------------------------------------------------

BackendState::BackendState(Backend& be, const ModelConfig& cfg, int slots)
    : be_(be),
      buffers_(be),
      shift_(int64_t(cfg.n_layer) * cfg.n_embd),
      wkv_per_slot_(int64_t(cfg.n_layer) * cfg.n_head * kWkvHeadState),
      slots_(slots) {
  if (slots <= 0) throw std::invalid_argument("BackendState: slots must be > 0");
  att_x_ = buffers_.array(slots * shift_);
  ffn_x_ = buffers_.array(slots * shift_);
  wkv_ = buffers_.array(slots * wkv_per_slot_);
  reset_all();
}

void BackendState::reset_all() {
  be_.zero(att_x_, size_t(slots_ * shift_) * 4);
  be_.zero(ffn_x_, size_t(slots_ * shift_) * 4);
  be_.zero(wkv_, size_t(slots_ * wkv_per_slot_) * 4);
}

void BackendState::reset(int slot) {
  if (slot < 0 || slot >= slots_) throw std::out_of_range("BackendState::reset: slot out of range");
  be_.zero(att_x_ + slot * shift_, size_t(shift_) * 4);
  be_.zero(ffn_x_ + slot * shift_, size_t(shift_) * 4);
  be_.zero(wkv_ + slot * wkv_per_slot_, size_t(wkv_per_slot_) * 4);
}

namespace {
void check_shape(const BatchState& h, int slots, int64_t shift, int64_t wkv, const char* what) {
  if (h.members != slots || int64_t(h.att_x.size()) != slots * shift || int64_t(h.wkv.size()) != slots * wkv)
    throw std::invalid_argument(std::string("BackendState::") + what + ": shape mismatch");
}
}  // namespace

void BackendState::download(BatchState& h) const {
  check_shape(h, slots_, shift_, wkv_per_slot_, "download");
  be_.download(h.att_x.data(), att_x_, h.att_x.size() * 4);
  be_.download(h.ffn_x.data(), ffn_x_, h.ffn_x.size() * 4);
  be_.download(h.wkv.data(), wkv_, h.wkv.size() * 4);
}

void BackendState::upload(const BatchState& h) {
  check_shape(h, slots_, shift_, wkv_per_slot_, "upload");
  be_.upload(att_x_, h.att_x.data(), h.att_x.size() * 4);
  be_.upload(ffn_x_, h.ffn_x.data(), h.ffn_x.size() * 4);
  be_.upload(wkv_, h.wkv.data(), h.wkv.size() * 4);
}

}  // namespace eggroll
