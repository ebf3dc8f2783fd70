#include "rwkv/step.h"

#include <algorithm>
#include <stdexcept>

namespace eggroll {

// ---- weights --------------------------------------------------------------------------------------

ModelWeights weights_layout(const Model& m) {
  ModelWeights w;
  w.cfg = m.cfg;
  w.emb = m.emb, w.head = m.head, w.ln0_w = m.ln0_w, w.ln0_b = m.ln0_b, w.lnout_w = m.lnout_w,
  w.lnout_b = m.lnout_b;
  w.layers = m.layers;
  return w;
}

ModelWeights host_step_weights(const Model& m) {
  ModelWeights w = weights_layout(m);
  for (const Param& p : m.params) {
    if (!p.bits.empty() || p.data.size() != size_t(p.rows * p.cols))
      throw std::invalid_argument("host_step_weights: parameter " + p.name +
                                  " has no fp32 values (kept as 16-bit bits or released; load with MatrixBits::Widen)");
    w.params.push_back({p.data.data(), DType::F32, p.rows, p.cols});
  }
  return w;
}


// ---- the step ------------------------------------------------------------------------------------


ModelStep::ModelStep(Backend& be, const ModelWeights& w, int64_t max_rows)
    : be_(be), w_(w), max_rows_(max_rows), buffers_(be) {
  if (max_rows <= 0) throw std::invalid_argument("ModelStep: max_rows must be > 0");
  const ModelConfig& c = w_.cfg;
  const int64_t C = c.n_embd, BC = max_rows * C;
  const int64_t lora_sum = int64_t(c.dw) + c.da + c.dv + c.dg + 1;  // the four LoRA paths side by side
  auto get = [&](int64_t floats) { return buffers_.array(floats); };
  x_ = get(BC), xa_ = get(BC), mix_ = get(6 * BC), r_ = get(BC), k_ = get(BC), v_ = get(BC), w_dec_ = get(BC);
  a_ = get(BC), g_ = get(BC), kk_ = get(BC), vfirst_ = get(BC), y_ = get(BC);
  tmp_ = get(max_rows * lora_sum), tmp2_ = get(BC), ffh_ = get(max_rows * int64_t(c.ffn));
  idx_ = buffers_.array<int32_t>(max_rows);
  vecbuf_ = nullptr;
}

VecArg ModelStep::vec(int pid, int64_t B) {
  const WeightView& p = w_.params[size_t(pid)];
  if (!pert_ || !pert_->full[size_t(pid)]) return {p.f32(), 0};
  const int64_t n = p.rows * p.cols;
  if (!vecbuf_) {
    vec_cap_ = kVecSlotsPerLayer_ * max_rows_ * std::max<int64_t>(w_.cfg.n_embd, 64);
    vecbuf_ = buffers_.array(vec_cap_);
  }
  if (vec_used_ + B * n > vec_cap_) throw std::logic_error("ModelStep: vector perturbation scratch exhausted");
  float* out = vecbuf_ + vec_used_;
  vec_used_ += B * n;
  be_.vector_noise(pert_->noise, uint32_t(pid), p.f32(), n, members_, B, pert_->cache_of(pid), out);
  return {out, n};
}

void ModelStep::linear(int pid, bool x_times_p, const float* X, float* Y, int64_t B) {
  linear_group({{pid, x_times_p, X, Y}}, B);
}

void ModelStep::linear_group(std::initializer_list<Product> products, int64_t B, const int32_t* members) {
  LinearItem items[8];
  LowRankArg lr[8];
  int n = 0;
  for (const Product& p : products) {
    if (n == 8) throw std::logic_error("ModelStep::linear_group: more than 8 products");
    items[n] = {&w_.params[size_t(p.pid)], p.x_times_p, p.X, p.Y};
    if (pert_ && pert_->lowrank[size_t(p.pid)]) {  // the product's low-rank correction goes with it
      lr[n] = {&pert_->noise, uint32_t(p.pid), members ? members : members_, pert_->cache_of(p.pid)};
      items[n].lowrank = &lr[n];
    }
    n++;
  }
  be_.linear_group(items, n, B);
}

void ModelStep::step(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B, StateView st,
                         float* logits, const int32_t* logit_rows, int64_t n_logit_rows, const PerturbationView* pert) {
  if (B <= 0) return;
  if (B > max_rows_) throw std::invalid_argument("ModelStep::step: more rows than max_rows");
  if (pert && (pert->lowrank.size() != w_.params.size() || pert->full.size() != w_.params.size()))
    throw std::invalid_argument("ModelStep::step: perturbation selection does not match the model");
  pert_ = pert;
  members_ = members ? members : slots;
  const ModelConfig& c = w_.cfg;
  const int64_t C = c.n_embd, H = c.n_head, L = c.n_layer, BC = B * C;
  const StateLayout lay{L, C, H};
  const float eps = 1e-5f;

  // embedding + ln0
  be_.embed(w_.params[size_t(w_.emb)], tokens, B, tmp2_);
  if (pert_ && pert_->lowrank[size_t(w_.emb)]) {
    const WeightView& E = w_.params[size_t(w_.emb)];
    be_.embedding_lowrank_add(pert_->noise, uint32_t(w_.emb), E.rows, E.cols, tokens, tmp2_, members_, B,
                              pert_->cache_of(w_.emb));
  }
  vec_used_ = 0;
  be_.layer_norm(tmp2_, vec(w_.ln0_w, B), vec(w_.ln0_b, B), x_, B, C, eps);

  for (int64_t l = 0; l < L; l++) {
    const LayerParams& P = w_.layers[size_t(l)];
    vec_used_ = 0;
    // ---- time mix ----
    be_.layer_norm(x_, vec(P.ln1_w, B), vec(P.ln1_b, B), xa_, B, C, eps);
    const VecArg mu[6] = {vec(P.x_r, B), vec(P.x_w, B), vec(P.x_k, B), vec(P.x_v, B), vec(P.x_a, B), vec(P.x_g, B)};
    be_.time_shift6(xa_, st.att_x, slots, lay.shift_slot_stride(), l * C, mu, mix_, B, C);
    float *xr = mix_, *xw = mix_ + BC, *xk = mix_ + 2 * BC, *xv = mix_ + 3 * BC, *xA = mix_ + 4 * BC,
          *xg = mix_ + 5 * BC;
    // the independent products go in groups (one pass over the threads each): receptance, key,
    // value; the LoRA paths' down-projections (decay, in-context rate, gate, value residual), then
    // their up-projections
    linear_group({{P.Wr, false, xr, r_}, {P.Wk, false, xk, k_}, {P.Wv, false, xv, v_}}, B);
    float *tw = tmp_, *ta = tw + B * c.dw, *tg = ta + B * c.da, *tv = tg + B * c.dg;
    if (l == 0)
      linear_group({{P.w1, true, xw, tw}, {P.a1, true, xA, ta}, {P.g1, true, xg, tg}}, B);
    else
      linear_group({{P.w1, true, xw, tw}, {P.a1, true, xA, ta}, {P.g1, true, xg, tg}, {P.v1, true, xv, tv}}, B);
    be_.tanh_(tw, B * c.dw);
    be_.sigmoid_(tg, B * c.dg);
    if (l == 0)
      linear_group({{P.w2, true, tw, w_dec_}, {P.a2, true, ta, a_}, {P.g2, true, tg, g_}}, B);
    else
      linear_group({{P.w2, true, tw, w_dec_}, {P.a2, true, ta, a_}, {P.g2, true, tg, g_}, {P.v2, true, tv, tmp2_}},
                   B);
    be_.decay(w_dec_, vec(P.w0, B), B, C);             // decay
    be_.sigmoid_bias(a_, vec(P.a0, B), B, C);          // in-context learning rate
    if (l == 0) {                                      // value residual
      be_.copy(vfirst_, v_, size_t(BC) * sizeof(float));
    } else {
      be_.value_residual(v_, vfirst_, tmp2_, vec(P.v0, B), B, C);
    }
    // heads
    be_.kk_prepare(k_, a_, vec(P.k_k, B), vec(P.k_a, B), kk_, B, H);
    be_.wkv7(st.wkv, slots, lay.wkv_slot_stride(), l * H * kWkvHeadState, r_, w_dec_, k_, v_, kk_, a_, y_, B, H);
    be_.group_norm_bonus_gate(y_, r_, k_, v_, g_, vec(P.r_k, B), vec(P.lnx_w, B), vec(P.lnx_b, B), B, H, 64e-5f);
    linear(P.Wo, false, y_, tmp2_, B);
    be_.add(x_, tmp2_, BC);

    // ---- channel mix ----
    be_.layer_norm(x_, vec(P.ln2_w, B), vec(P.ln2_b, B), xa_, B, C, eps);
    be_.channel_shift(xa_, st.ffn_x, slots, lay.shift_slot_stride(), l * C, vec(P.ffn_x_k, B), mix_, B, C);
    linear(P.ffn_key, false, mix_, ffh_, B);
    be_.relu_sq(ffh_, B * int64_t(c.ffn));
    linear(P.ffn_value, false, ffh_, tmp2_, B);
    be_.add(x_, tmp2_, BC);
  }

  if (!logits) {
    pert_ = nullptr;
    return;
  }
  // ln_out and the head on the rows that want logits (a perturbed ln_out is indexed by the
  // row's place in the full batch; the head's correction by the row's member)
  vec_used_ = 0;
  VecArg lw = vec(w_.lnout_w, B), lb = vec(w_.lnout_b, B);
  int64_t n = B;
  const float* xin = x_;
  const int32_t* head_members = members_;
  if (logit_rows) {
    n = n_logit_rows;
    if (n <= 0) {
      pert_ = nullptr;
      return;
    }
    be_.gather_rows(x_, logit_rows, n, C, tmp2_);
    xin = tmp2_;
    if (lw.stride) {
      be_.gather_rows(lw.p, logit_rows, n, C, mix_);
      lw.p = mix_;
    }
    if (lb.stride) {
      be_.gather_rows(lb.p, logit_rows, n, C, mix_ + BC);
      lb.p = mix_ + BC;
    }
    if (pert_) {
      be_.gather_i32(members_, logit_rows, n, idx_);
      head_members = idx_;
    }
  }
  be_.layer_norm(xin, lw, lb, xa_, n, C, eps);
  linear_group({{w_.head, false, xa_, logits}}, n, head_members);
  pert_ = nullptr;
}

}  // namespace eggroll
