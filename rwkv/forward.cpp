#include "rwkv/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "core/error.h"
#include "es/ops_ref.h"

namespace eggroll {

BatchState::BatchState(const ModelConfig& cfg, int n)
    : members(n), n_layer(cfg.n_layer), n_embd(cfg.n_embd), n_head(cfg.n_head) {
  att_x.assign(size_t(n) * n_layer * n_embd, 0.f);
  ffn_x.assign(size_t(n) * n_layer * n_embd, 0.f);
  wkv.assign(size_t(n) * n_layer * n_head * 4096, 0.f);
}

void BatchState::reset(int m) {
  std::fill_n(att_x_of(m, 0), size_t(n_layer) * n_embd, 0.f);
  std::fill_n(ffn_x_of(m, 0), size_t(n_layer) * n_embd, 0.f);
  std::fill_n(wkv_of(m, 0), size_t(n_layer) * n_head * 4096, 0.f);
}

void BatchState::reset_all() {
  std::fill(att_x.begin(), att_x.end(), 0.f);
  std::fill(ffn_x.begin(), ffn_x.end(), 0.f);
  std::fill(wkv.begin(), wkv.end(), 0.f);
}

size_t BatchState::bytes_per_member() const {
  return sizeof(float) * size_t(n_layer) * (2 * size_t(n_embd) + size_t(n_head) * 4096);
}

void BatchState::copy_member(int from, int to) {
  if (from == to) return;
  std::copy_n(att_x_of(from, 0), size_t(n_layer) * n_embd, att_x_of(to, 0));
  std::copy_n(ffn_x_of(from, 0), size_t(n_layer) * n_embd, ffn_x_of(to, 0));
  std::copy_n(wkv_of(from, 0), size_t(n_layer) * n_head * 4096, wkv_of(to, 0));
}

void layer_norm_row(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  double mean = 0;
  for (int64_t i = 0; i < n; i++) mean += x[i];
  mean /= double(n);
  double var = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = x[i] - mean;
    var += d * d;
  }
  var /= double(n);
  const float mu = float(mean), inv = float(1.0 / std::sqrt(var + eps));
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mu) * inv * w[i] + b[i];
}

void wkv7_head(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
               const float* a, float* y) {
  float b[64];
  for (int j = 0; j < 64; j++) b[j] = kk[j] * a[j];
  for (int i = 0; i < 64; i++) {
    float* Si = S + i * 64;
    float sa = 0.f;
    for (int j = 0; j < 64; j++) sa -= Si[j] * kk[j];
    const float vi = v[i];
    float acc = 0.f;
    for (int j = 0; j < 64; j++) {
      float s = Si[j] * decay[j] + sa * b[j] + vi * k[j];
      Si[j] = s;
      acc += s * r[j];
    }
    y[i] = acc;
  }
}

namespace {

inline float sigmoidf(float x) { return 1.f / (1.f + std::exp(-x)); }

void resize(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

Forward::Forward(const Model& model, bool pack) : m_(model) {
  if (!pack) return;
  packed_.resize(m_.params.size());
  auto add = [&](int pid) {
    const Param& p = m_.params[size_t(pid)];
    packed_[size_t(pid)] = pack_weights(p.data.data(), p.cols, p.rows);
  };
  for (const LayerParams& L : m_.layers)
    for (int pid : {L.Wr, L.Wk, L.Wv, L.Wo, L.ffn_key, L.ffn_value}) add(pid);
  add(m_.head);
}

void Forward::step(std::span<const int32_t> tokens, std::span<const int> slots, BatchState& st, float* logits,
                   std::span<const uint8_t> need_logits, Perturbation* pert, std::span<const int> members) {
  if (members.empty()) members = slots;
  const ModelConfig& c = m_.cfg;
  const int64_t B = int64_t(tokens.size());
  if (B == 0) return;
  const int64_t C = c.n_embd, H = c.n_head, F = c.ffn, V = c.vocab;
  const size_t BC = size_t(B * C);
  for (auto* buf : {&x_, &xa_, &xx_, &r_, &k_, &v_, &w_, &a_, &g_, &kk_, &vfirst_, &y_})
    resize(*buf, BC);
  for (auto& buf : mix_) resize(buf, BC);
  const int64_t lora_max = std::max({int64_t(c.dw), int64_t(c.da), int64_t(c.dv), int64_t(c.dg)});
  resize(tmp_, size_t(B * lora_max));
  resize(tmp2_, BC);
  resize(ffh_, size_t(B * F));

  // Effective vector parameter for row i: shared, or per member when perturbed.
  vecbuf_.resize(m_.params.size());
  auto vec = [&](int pid) -> std::pair<const float*, int64_t> {  // (pointer, row stride)
    if (!pert || !pert->perturbs_vector(pid)) return {m_.p(pid), 0};
    const int64_t n = int64_t(m_.params[size_t(pid)].numel());
    auto& buf = vecbuf_[size_t(pid)];
    resize(buf, size_t(B * n));
    for (int64_t i = 0; i < B; i++) {
      std::copy_n(m_.p(pid), n, buf.data() + i * n);
      pert->add_vector(pid, members[size_t(i)], buf.data() + i * n, n);
    }
    return {buf.data(), n};
  };
  auto linear = [&](int pid, const float* X, float* Y, int64_t rows, bool x_times_p) {
    const Param& P = m_.params[size_t(pid)];
    const int64_t in = x_times_p ? P.rows : P.cols, out = x_times_p ? P.cols : P.rows;
    if (x_times_p) gemm_xp(X, P.data.data(), Y, rows, in, out);
    else if (!packed_.empty() && !packed_[size_t(pid)].empty()) gemm_packed(X, packed_[size_t(pid)], Y, rows);
    else gemm_xwt(X, P.data.data(), Y, rows, in, out);
    if (pert) pert->add_linear(pid, x_times_p, X, in, Y, out, members.first(size_t(rows)));
  };
  auto layer_norm = [&](const float* X, int wid, int bid, float* Y) {
    auto [w, ws] = vec(wid);
    auto [b, bs] = vec(bid);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B; i++) layer_norm_row(X + i * C, w + i * ws, b + i * bs, Y + i * C, C);
  };

  // embedding + ln0
  for (int64_t i = 0; i < B; i++) {
    const int32_t t = tokens[size_t(i)];
    if (t < 0 || t >= V) throw InputError(fmt::format("token id {} out of range [0, {})", t, V));
    std::copy_n(m_.p(m_.emb) + int64_t(t) * C, C, tmp2_.data() + i * C);
  }
  if (pert) pert->add_embedding(m_.emb, tokens, tmp2_.data(), C, members);
  layer_norm(tmp2_.data(), m_.ln0_w, m_.ln0_b, x_.data());

  for (int l = 0; l < c.n_layer; l++) {
    const LayerParams& L = m_.layers[size_t(l)];
    // ---- time mix ----
    layer_norm(x_.data(), L.ln1_w, L.ln1_b, xa_.data());
    {
      std::pair<const float*, int64_t> mu[6] = {vec(L.x_r), vec(L.x_w), vec(L.x_k),
                                                 vec(L.x_v), vec(L.x_a), vec(L.x_g)};
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < B; i++) {
        float* prev = st.att_x_of(slots[size_t(i)], l);
        const float* xa = xa_.data() + i * C;
        for (int64_t j = 0; j < C; j++) {
          const float d = prev[j] - xa[j];
          for (int q = 0; q < 6; q++) mix_[q][size_t(i * C + j)] = xa[j] + d * mu[q].first[i * mu[q].second + j];
          prev[j] = xa[j];
        }
      }
    }
    float *xr = mix_[0].data(), *xw = mix_[1].data(), *xk = mix_[2].data(), *xv = mix_[3].data(),
          *xA = mix_[4].data(), *xg = mix_[5].data();
    linear(L.Wr, xr, r_.data(), B, false);
    linear(L.Wk, xk, k_.data(), B, false);
    linear(L.Wv, xv, v_.data(), B, false);
    // decay: w = w0 + tanh(xw @ w1) @ w2 ; decay = exp(-exp(-0.5) * sigmoid(w))
    linear(L.w1, xw, tmp_.data(), B, true);
    for (int64_t i = 0; i < B * c.dw; i++) tmp_[size_t(i)] = std::tanh(tmp_[size_t(i)]);
    linear(L.w2, tmp_.data(), w_.data(), B, true);
    {
      auto [w0, s] = vec(L.w0);
      const float e = std::exp(-0.5f);
      for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < C; j++) {
          float& d = w_[size_t(i * C + j)];
          d = std::exp(-e * sigmoidf(w0[i * s + j] + d));
        }
    }
    // a = sigmoid(a0 + (xa @ a1) @ a2)
    linear(L.a1, xA, tmp_.data(), B, true);
    linear(L.a2, tmp_.data(), a_.data(), B, true);
    {
      auto [a0, s] = vec(L.a0);
      for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < C; j++) a_[size_t(i * C + j)] = sigmoidf(a0[i * s + j] + a_[size_t(i * C + j)]);
    }
    // g = sigmoid(xg @ g1) @ g2
    linear(L.g1, xg, tmp_.data(), B, true);
    for (int64_t i = 0; i < B * c.dg; i++) tmp_[size_t(i)] = sigmoidf(tmp_[size_t(i)]);
    linear(L.g2, tmp_.data(), g_.data(), B, true);
    // value residual: v = v + (v_first - v) * sigmoid(v0 + (xv @ v1) @ v2)
    if (l == 0) {
      std::copy_n(v_.data(), BC, vfirst_.data());
    } else {
      linear(L.v1, xv, tmp_.data(), B, true);
      linear(L.v2, tmp_.data(), tmp2_.data(), B, true);
      auto [v0, s] = vec(L.v0);
      for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < C; j++) {
          const size_t q = size_t(i * C + j);
          v_[q] += (vfirst_[q] - v_[q]) * sigmoidf(v0[i * s + j] + tmp2_[q]);
        }
    }
    // per head: kk and the k adjustment, the WKV update, group norm with bonus and gate
    // (the reference ops of es/ops_ref.h, which the CUDA kernels are tested against)
    {
      auto [k_k, sk] = vec(L.k_k);
      auto [k_a, sa] = vec(L.k_a);
      auto [r_k, sr] = vec(L.r_k);
      auto [lw, slw] = vec(L.lnx_w);
      auto [lb, slb] = vec(L.lnx_b);
      const int64_t layer_state = H * 4096;
      ref::kk_prepare(k_.data(), a_.data(), k_k, sk, k_a, sa, kk_.data(), B, H);
      ref::wkv7_rows(st.wkv.data(), slots.data(), int64_t(c.n_layer) * layer_state, int64_t(l) * layer_state,
                     r_.data(), w_.data(), k_.data(), v_.data(), kk_.data(), a_.data(), y_.data(), B, H);
      ref::group_norm_bonus_gate(y_.data(), r_.data(), k_.data(), v_.data(), g_.data(), r_k, sr, lw, slw, lb, slb, B,
                                 H, 64e-5f);
    }
    linear(L.Wo, y_.data(), tmp2_.data(), B, false);
    for (size_t q = 0; q < BC; q++) x_[q] += tmp2_[q];

    // ---- channel mix ----
    layer_norm(x_.data(), L.ln2_w, L.ln2_b, xa_.data());
    {
      auto [mu, s] = vec(L.ffn_x_k);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < B; i++) {
        float* prev = st.ffn_x_of(slots[size_t(i)], l);
        const float* xf = xa_.data() + i * C;
        float* kx = xx_.data() + i * C;
        for (int64_t j = 0; j < C; j++) {
          kx[j] = xf[j] + (prev[j] - xf[j]) * mu[i * s + j];
          prev[j] = xf[j];
        }
      }
    }
    linear(L.ffn_key, xx_.data(), ffh_.data(), B, false);
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < B * F; q++) {
      const float t = std::max(ffh_[size_t(q)], 0.f);
      ffh_[size_t(q)] = t * t;
    }
    linear(L.ffn_value, ffh_.data(), tmp2_.data(), B, false);
    for (size_t q = 0; q < BC; q++) x_[q] += tmp2_[q];
  }

  if (!logits) return;
  // rows that want logits, packed
  int64_t n = 0;
  std::vector<int> rows_members;
  for (int64_t i = 0; i < B; i++) {
    if (!need_logits.empty() && !need_logits[size_t(i)]) continue;
    if (n != i) std::copy_n(x_.data() + i * C, C, x_.data() + n * C);
    rows_members.push_back(members[size_t(i)]);
    n++;
  }
  if (n == 0) return;
  // ln_out on the packed rows (a perturbed ln_out is indexed by the row's place in the full batch)
  auto [w, ws] = vec(m_.lnout_w);
  auto [b, bs] = vec(m_.lnout_b);
  for (int64_t i = 0, pr = 0; i < B; i++) {
    if (!need_logits.empty() && !need_logits[size_t(i)]) continue;
    layer_norm_row(x_.data() + pr * C, w + i * ws, b + i * bs, xa_.data() + pr * C, C);
    pr++;
  }
  const Param& Hd = m_.params[size_t(m_.head)];
  if (!packed_.empty()) gemm_packed(xa_.data(), packed_[size_t(m_.head)], logits, n);
  else gemm_xwt(xa_.data(), Hd.data.data(), logits, n, C, V);
  if (pert) pert->add_linear(m_.head, false, xa_.data(), C, logits, V, rows_members);
}

}  // namespace eggroll
