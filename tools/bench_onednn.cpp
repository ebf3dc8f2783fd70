// Our bf16 GEMM (core/gemm_bf16.h) against oneDNN's bf16 matmul at the decode shapes of a model
// preset, in the same run, interleaved; one JSON line per shape and batch. Built only when
// oneDNN is installed (Debian: libdnnl-dev); see README "Benchmarks".
//
// Both sides take fp32 activations and produce fp32 outputs: ours rounds X to bf16 inside
// gemm_bf16; for oneDNN the rounding (our own loop) is inside the timed call as well. oneDNN's
// weights are reordered once into its preferred blocked layout ("any"), as ours are packed once.
// Batch invariance: for each shape, row 0 computed alone and inside the batch must be the same
// bits; reported per library.
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/gemm_bf16.h"
#include "core/parallel.h"

using namespace eggroll;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double best_of(F&& fn, double seconds) {
  fn();
  double best = 1e300;
  const double t_end = now_s() + seconds;
  do {
    const double t0 = now_s();
    fn();
    best = std::min(best, now_s() - t0);
  } while (now_s() < t_end);
  return best;
}

struct OneDnnGemm {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory src, wei, dst;
  int64_t B, in, out;
  OneDnnGemm(const std::vector<uint16_t>& w_in_out, int64_t B_, int64_t in_, int64_t out_) : B(B_), in(in_), out(out_) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc sd({B, in}, dt::bf16, tag::ab), wd_any({in, out}, dt::bf16, tag::any),
        dd({B, out}, dt::f32, tag::ab), wd_plain({in, out}, dt::bf16, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(sd, wd_any, dd), eng);  // oneDNN 2.x API
    prim = dnnl::matmul(pd);
    src = dnnl::memory(pd.src_desc(), eng);
    dst = dnnl::memory(pd.dst_desc(), eng);
    wei = dnnl::memory(pd.weights_desc(), eng);
    dnnl::memory plain(wd_plain, eng, const_cast<uint16_t*>(w_in_out.data()));
    dnnl::reorder(plain, wei).execute(strm, plain, wei);
    strm.wait();
  }
  void run(const float* X, float* Y) {
    auto* s = static_cast<uint16_t*>(src.get_data_handle());
    for (int64_t i = 0; i < B * in; i++) s[i] = f32_to_bf16(X[i]);
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
    std::memcpy(Y, dst.get_data_handle(), size_t(B * out) * 4);
  }
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  std::string batches = "1,16,64,256";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (a == "--batch" && i + 1 < argc) batches = argv[++i];
    else {
      std::fprintf(stderr, "usage: eggroll-bench-onednn [--seconds S] [--batch 1,16,64,256]\n");
      return 2;
    }
  }
  std::vector<int64_t> bs;
  for (size_t p = 0; p < batches.size();) {
    size_t q = batches.find(',', p);
    bs.push_back(std::stoll(batches.substr(p, q - p)));
    p = q == std::string::npos ? batches.size() : q + 1;
  }
  // the 0.1b preset's products: attention (768 -> 768), FFN (768 -> 3072, 3072 -> 768), head (768 -> 65536)
  struct Shape {
    const char* name;
    int64_t in, out;
  };
  const Shape shapes[] = {{"att 768x768", 768, 768}, {"ffn_key 768x3072", 768, 3072},
                          {"ffn_value 3072x768", 3072, 768}, {"head 768x65536", 768, 65536}};
  std::mt19937 g(1);
  std::uniform_real_distribution<float> d(-0.05f, 0.05f);
  for (const Shape& s : shapes) {
    std::vector<float> w(size_t(s.in * s.out));  // P [in, out]
    for (auto& v : w) v = d(g);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); i++) wb[i] = f32_to_bf16(w[i]);
    const PackedBf16 packed = pack_bf16(wb.data(), s.in, s.out, true);
    for (int64_t B : bs) {
      std::vector<float> X(size_t(B * s.in)), Y(size_t(B * s.out)), Y1(size_t(s.out));
      for (auto& v : X) v = d(g) * 20;
      OneDnnGemm dn(wb, B, s.in, s.out), dn1(wb, 1, s.in, s.out);
      // batch invariance: row 0 alone vs in the batch
      gemm_bf16(X.data(), packed, Y.data(), B);
      gemm_bf16(X.data(), packed, Y1.data(), 1);
      const bool ours_inv = std::memcmp(Y.data(), Y1.data(), Y1.size() * 4) == 0;
      dn.run(X.data(), Y.data());
      dn1.run(X.data(), Y1.data());
      const bool dnnl_inv = std::memcmp(Y.data(), Y1.data(), Y1.size() * 4) == 0;
      double t_ours = 1e300, t_dnnl = 1e300;
      for (int rep = 0; rep < 3; rep++) {  // interleaved; best of each
        t_ours = std::min(t_ours, best_of([&] { gemm_bf16(X.data(), packed, Y.data(), B); }, seconds / 3));
        t_dnnl = std::min(t_dnnl, best_of([&] { dn.run(X.data(), Y.data()); }, seconds / 3));
      }
      const double flops = 2.0 * double(B * s.in * s.out), bytes = double(s.in * s.out) * 2;
      nlohmann::json j = {{"bench", "gemm_bf16_vs_onednn"},
                          {"shape", s.name},
                          {"batch", B},
                          {"threads", num_threads()},
                          {"onednn_threads", omp_get_max_threads()},
                          {"kernel", bf16_kernel_name(best_bf16_kernel())},
                          {"ours_us", t_ours * 1e6},
                          {"onednn_us", t_dnnl * 1e6},
                          {"ours_gflops", flops / t_ours / 1e9},
                          {"onednn_gflops", flops / t_dnnl / 1e9},
                          {"ours_weight_gbps", bytes / t_ours / 1e9},
                          {"onednn_weight_gbps", bytes / t_dnnl / 1e9},
                          {"ratio_ours_vs_onednn", t_dnnl / t_ours},
                          {"ours_batch_invariant", ours_inv},
                          {"onednn_batch_invariant", dnnl_inv},
                          {"onednn_version", std::to_string(dnnl_version()->major) + "." +
                                                 std::to_string(dnnl_version()->minor) + "." +
                                                 std::to_string(dnnl_version()->patch)}};
      std::cout << j.dump() << std::endl;
    }
  }
}
