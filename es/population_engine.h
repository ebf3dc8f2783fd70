#pragma once
// The ES step on a Backend (core/backend.h; the model step is rwkv/step.h): weights, states, noise, gradients and optimizer
// state live in the backend's memory (the GPU for the CUDA backend); the host keeps the tokens it
// must decode (stop strings, rewards) and the scalars it must log.
//
//   PopulationEngine  a training run's state on a backend: begin_step (noise), generate (perturbed
//                rollouts or plain greedy validation), score (teacher-forced log-likelihood),
//                update (gradient GEMMs, optional all-reduce, the optimizer step), the optimizer
//                state (moments, step count; saved and restored for checkpoints) and to_host
//                (the weights back into the host Model for checkpoints).
//
// tests/test_population_engine.cpp checks the update against the gradient sum and the SGD / Adam
// formulas written out in the test; the CUDA backend runs the same code, so only its ops need
// checking against their references (tests/test_backend_ops.cpp, tests/gpu_ops_main.cpp).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/tensor.h"
#include "es/optim.h"
#include "es/perturbation.h"
#include "rwkv/backend_model.h"
#include "rwkv/decoder.h"

namespace eggroll {

struct PopulationEngineOptions {
  DType matrix_dtype = DType::F32;  // bf16: matrices read as bf16, fp32 masters updated
  NoiseCache noise_cache = NoiseCache::Keep;
  int64_t max_rows = 1;  // the most generations one generate() call carries
};

class PopulationEngine {
 public:
  // Uploads m's parameters; the optimizer starts at step 0 with zero moments (restore a
  // checkpoint's with load_optimizer_state). nc: seed, rank, dist, reuse. On a backend that
  // shares host memory (the CPU) m's fp32 parameters are used in place, so update() changes m
  // directly; m must outlive the engine either way.
  PopulationEngine(Backend& be, Model& m, const ParamSelection& sel, const NoiseConfig& nc,
                   const OptimConfig& oc, const PopulationEngineOptions& o);
  ~PopulationEngine();
  PopulationEngine(const PopulationEngine&) = delete;
  PopulationEngine& operator=(const PopulationEngine&) = delete;

  void begin_step(uint64_t epoch, int directions, float sigma);
  // Perturbed (member = request.member) or plain rollouts of the current weights.
  std::vector<GenResult> generate(std::span<const GenRequest> reqs, const GenOptions& opt, bool perturbed,
                                  GenStats* stats = nullptr);
  // Teacher-forced log-likelihood of each request's target (score_targets), perturbed
  // (member = request.member) or with the current weights (task.name: sft).
  // chunk_tokens > 0: targets fed in sub-sequences of that many tokens, state carried (task.chunk_tokens).
  std::vector<ScoreResult> score(std::span<const ScoreRequest> reqs, bool perturbed, GenStats* stats = nullptr,
                                 int64_t chunk_tokens = 0);
  // g = (1/sqrt(N)) sum_i f_i E_i from the pairs [pair_lo, pair_hi) (fitness of all N members),
  // summed over ranks by `comm` when given (device buffers go to a "nccl" communicator directly,
  // otherwise through host memory), then one optimizer step on every updated parameter (ascent):
  // the step count t += 1; g scaled by min(1, clip / ||g||) when optim.clip_update_norm > 0;
  // SGD W += lr g; Adam m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
  // W += lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with L2 decay (g -= wd W) for Adam,
  // decoupled decay (W -= lr wd W) for AdamW. Norms are summed per parameter in double.
  StepReport update(std::span<const float> fitness, size_t pair_lo, size_t pair_hi, Communicator* comm, double lr);
  // Writes the updated parameters into m.
  void to_host(Model& m) const;

  // The optimizer state. steps: the optimizer steps taken. optimizer_state(): Adam/AdamW moments
  // as fp32 tensors "m.<param>" and "v.<param>" [numel], per updated parameter in parameter
  // order (the layout of a checkpoint's optimizer.safetensors; none for SGD).
  uint64_t optimizer_steps() const { return t_; }
  StateDict optimizer_state() const;
  // Restores what optimizer_state() and optimizer_steps() gave. InputError "<source>: ..." naming
  // a missing tensor, or one of the wrong size or type (SGD reads no tensors).
  void load_optimizer_state(const StateDict& sd, uint64_t steps, const std::string& source);
  size_t cache_bytes() const { return pert_->cache_bytes(); }
  size_t weight_bytes() const { return model_->bytes(); }  // held by the engine (not m's, used in place)
  Backend& backend() { return be_; }

 private:
  // The gradient of parameter pid into grad_ (+ the all-reduce).
  void gradient(int pid, const float* fitness_dev, int64_t N, int64_t p0, int64_t np, Communicator* comm);

  Backend& be_;
  const Model* host_model_;
  ParamSelection sel_;
  OptimConfig oc_;
  PopulationEngineOptions o_;
  ModelWeights w_;
  std::unique_ptr<BackendModel> model_;  // the weights in backend memory (masters, bf16 copies)
  std::vector<float*> m1_, m2_;   // Adam moments per pid
  uint64_t t_ = 0;
  BackendBuffers buffers_;  // everything below in backend memory, and the weights' copies
  std::unique_ptr<Perturbation> pert_;
  std::unique_ptr<Decoder> stepper_;
  float* grad_ = nullptr;      // the largest updated parameter
  float* A_all_ = nullptr;     // update GEMM operands (sized for the current population)
  float* B_all_ = nullptr;
  int64_t ab_cap_ = 0;         // floats in A_all_ + B_all_
  float* fitness_ = nullptr;
  int64_t fitness_cap_ = 0;
  double* red_ = nullptr;      // 2 reductions per updated parameter
  std::vector<float> host_stage_;
};

}  // namespace eggroll
