#pragma once
// A model's parameters and recurrent states placed in a backend's memory (core/backend.h): the
// one way weights reach a backend, used by the population engine, the benchmarks and the tests.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "rwkv/forward.h"
#include "rwkv/model.h"
#include "rwkv/step.h"

namespace eggroll {

class BackendModel {
 public:
  // Uploads m's parameters: matrices (Param::is_matrix) in matrix_dtype (bf16: round to nearest
  // even of the fp32 values, or of kept 16-bit bits' values), vectors fp32. masters (per
  // parameter id, optional): parameters the optimizer updates; a bf16 matrix among them also
  // gets an fp32 master (the update is applied to it and the bf16 copy rewritten), an fp32
  // parameter is its own master.
  // in_place: on a backend that shares host memory, fp32 parameters and the fp32 masters of bf16
  // matrices are m's own arrays (no copy; whoever updates the masters then changes m); kept bits
  // are always copied.
  BackendModel(Backend& be, const Model& m, DType matrix_dtype, const std::vector<uint8_t>* masters = nullptr,
               bool in_place = false);
  // The same placement, consuming m: each parameter's host arrays (Param::data, Param::bits) are
  // freed once placed, so the host never holds the model twice; m keeps its config and names.
  // A matrix m kept as bf16 bits (Model::MatrixBits::Keep) is placed without being widened.
  BackendModel(Backend& be, Model&& m, DType matrix_dtype);
  // Random weights made by the backend (Backend::init_uniform): the values of
  // Model::random(cfg, seed), matrices in matrix_dtype (bf16: their RNE rounding), no masters.
  BackendModel(Backend& be, const ModelConfig& cfg, uint64_t seed, DType matrix_dtype);
  ~BackendModel();
  BackendModel(const BackendModel&) = delete;
  BackendModel& operator=(const BackendModel&) = delete;

  // Prepares every product matrix (Backend::prepare_weight, e.g. the CPU backend's GEMM panels).
  // Where the prepared form replaces the plain array (the CPU's bf16 panels), that array is
  // released: the matrix is then stored once. Released again by the destructor.
  void prepare_products();
  // After the optimizer changed parameter pid (its master): brings the step's copy up to date
  // (the prepared form; the bf16 copy itself is rewritten by the update ops).
  void refresh(int pid);

  const ModelWeights& weights() const { return w_; }
  DType matrix_dtype() const { return dtype_; }
  // The fp32 values the optimizer updates (nullptr: not updated) and the bf16 copy the step
  // reads (nullptr: the parameter is fp32), per parameter id.
  float* master(int pid) const { return master_.empty() ? nullptr : master_[size_t(pid)]; }
  uint16_t* bf16(int pid) const { return bf16_.empty() ? nullptr : bf16_[size_t(pid)]; }
  size_t bytes() const { return bytes_; }  // backend memory held (m's arrays used in place not counted)

 private:
  void place_layout(const Model& layout);
  void place(const Model& m, Model* release, const std::vector<uint8_t>* masters, bool in_place);
  Backend& be_;
  BackendBuffers buffers_;
  ModelWeights w_;
  bool prepared_ = false;
  DType dtype_;
  std::vector<float*> master_;
  std::vector<uint16_t*> bf16_;
  size_t bytes_ = 0;
};

// Recurrent states of `slots` members in a backend's memory (BatchState layout), zeroed.
class BackendState {
 public:
  BackendState(Backend& be, const ModelConfig& cfg, int slots);
  BackendState(const BackendState&) = delete;
  BackendState& operator=(const BackendState&) = delete;
  StateView view() const { return {att_x_, wkv_, ffn_x_}; }
  int slots() const { return slots_; }
  void reset_all();
  void reset(int slot);
  void download(BatchState& host) const;  // host must have the same shape
  void upload(const BatchState& host);

 private:
  Backend& be_;
  BackendBuffers buffers_;
  int64_t shift_ = 0, wkv_per_slot_ = 0;  // floats per slot
  int slots_;
  float *att_x_ = nullptr, *wkv_ = nullptr, *ffn_x_ = nullptr;
};

}  // namespace eggroll
