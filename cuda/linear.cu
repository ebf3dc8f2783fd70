// cuBLAS wrappers for the shared products and the update GEMM (CPU reference: core/ops/linear.h
// ref::linear_f32 / ref::linear_bf16 / ref::update_gemm, over core/gemm.h).
//
// Row-major Y[B, out] is column-major Y^T (out x B, ld out), so:
//   y = W x  (W [out, in] row-major = column-major W^T, ld in):  Y^T = op_T(W) X^T
//   y = x P  (P [in, out] row-major = column-major P^T, ld out): Y^T = op_N(P) X^T
// Both are cublasGemmEx with m = out, n = B, k = in, fp32 output and CUBLAS_COMPUTE_32F:
// fp32 operands (no TF32: the default math mode never uses it with CUBLAS_COMPUTE_32F), or bf16
// operands (the weights stored bf16, the activations rounded to bf16 by a small kernel) with
// fp32 accumulation on the tensor cores.
//
// Unlike core/gemm.h the result of one row may depend on the batch size (cuBLAS picks kernels
// and split-K by shape); it is deterministic for a given shape on a given GPU.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(s));
}

cublasHandle_t H(void* h) { return static_cast<cublasHandle_t>(h); }

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > 0x7fffffffLL) throw std::invalid_argument(std::string(what) + ": dimension exceeds int32");
  return int(v);
}

void gemm(void* handle, const void* W, cudaDataType wtype, bool x_times_p, const void* X, cudaDataType xtype,
          float* Y, int64_t B, int64_t in, int64_t out, const char* what) {
  const float alpha = 1.f, beta = 0.f;
  const int m = as_int(out, what), n = as_int(B, what), k = as_int(in, what);
  const cublasOperation_t opA = x_times_p ? CUBLAS_OP_N : CUBLAS_OP_T;
  const int lda = x_times_p ? m : k;
  cublas_check(cublasGemmEx(H(handle), opA, CUBLAS_OP_N, m, n, k, &alpha, W, wtype, lda, X, xtype, k, &beta, Y,
                            CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

}  // namespace

Blas::Blas(void* stream) : stream_(stream) {
  cublasHandle_t h = nullptr;
  cublas_check(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  cublas_check(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  cublas_check(cublasSetStream(h, detail::as_stream(stream)), "cublasSetStream");
}

Blas::~Blas() {
  if (scratch_) cudaFree(scratch_);
  if (handle_) cublasDestroy(H(handle_));
}

void Blas::set_stream(void* stream) {
  stream_ = stream;
  cublas_check(cublasSetStream(H(handle_), detail::as_stream(stream)), "cublasSetStream");
}

void Blas::linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  if (B <= 0 || out <= 0) return;
  gemm(handle_, W, CUDA_R_32F, x_times_p, X, CUDA_R_32F, Y, B, in, out, "linear_f32");
}

void Blas::linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in,
                       int64_t out) {
  if (B <= 0 || out <= 0) return;
  const size_t need = size_t(B) * size_t(in);
  if (need > scratch_elems_) {
    if (scratch_) {
      detail::check(cudaStreamSynchronize(detail::as_stream(stream_)), "linear_bf16 scratch");
      cudaFree(scratch_);
      scratch_ = nullptr;
      scratch_elems_ = 0;
    }
    void* p = nullptr;
    detail::check(cudaMalloc(&p, need * sizeof(uint16_t)), "linear_bf16 scratch cudaMalloc");
    scratch_ = static_cast<uint16_t*>(p);
    scratch_elems_ = need;
  }
  f32_to_bf16(X, scratch_, int64_t(need), stream_);
  gemm(handle_, W, CUDA_R_16BF, x_times_p, scratch_, CUDA_R_16BF, Y, B, in, out, "linear_bf16");
}

void Blas::update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  // G[m, n] = A_all[m, K] B_all[n, K]^T: the y = W x form with W = B_all, X = A_all.
  linear_f32(B_all, false, A_all, G, m, K, n);
}

}  // namespace eggroll::cuda
