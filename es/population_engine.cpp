#include "es/population_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace eggroll {

// ---- PopulationEngine ----------------------------------------------------------------------------------

PopulationEngine::PopulationEngine(Backend& be, Model& m, const ParamSelection& sel, const NoiseConfig& nc,
                                   const OptimConfig& oc, const PopulationEngineOptions& o)
    : be_(be), host_model_(&m), sel_(sel), oc_(oc), o_(o), buffers_(be) {
  if (sel.lowrank.size() != m.params.size() || sel.full.size() != m.params.size())
    throw std::invalid_argument("PopulationEngine: selection does not match the model");
  if (o.max_rows < 1) throw std::invalid_argument("PopulationEngine: max_rows must be >= 1");
  const size_t P = m.params.size();
  for (size_t pid = 0; pid < P; pid++)  // it reads and writes the fp32 host copies of those it updates
    if ((sel.lowrank[pid] || sel.full[pid]) && !m.params[pid].bits.empty())
      throw std::invalid_argument("PopulationEngine: parameter " + m.params[pid].name +
                                  " is updated but held as 16-bit bits (load with MatrixBits::Widen)");
  m1_.assign(P, nullptr), m2_.assign(P, nullptr);
  std::vector<uint8_t> updated(P, 0);
  for (size_t pid = 0; pid < P; pid++) updated[pid] = sel.lowrank[pid] || sel.full[pid];
  // fp32 parameters are m's own arrays on a host-memory backend: update() changes m directly
  model_ = std::make_unique<BackendModel>(be, m, o.matrix_dtype, &updated, /*in_place=*/true);
  model_->prepare_products();  // the CPU backend's GEMM panels (refreshed after each update)
  w_ = model_->weights();
  {
    int64_t grad_max = 0;
    for (size_t pid = 0; pid < P; pid++) {
      const Param& p = m.params[pid];
      const int64_t n = int64_t(p.numel());
      if (updated[pid]) {
        grad_max = std::max(grad_max, n);
        if (oc.kind != OptimKind::SGD) {
          m1_[pid] = buffers_.array(n), m2_[pid] = buffers_.array(n);
          be_.zero(m1_[pid], size_t(n) * sizeof(float));
          be_.zero(m2_[pid], size_t(n) * sizeof(float));
        }
      }
    }
    t_ = 0;
    grad_ = buffers_.array(grad_max);
    red_ = buffers_.array<double>(int64_t(2 * P) * be_.reduce_doubles());
  }
  pert_ = std::make_unique<Perturbation>(m, sel, nc, o.noise_cache, &be_);
  stepper_ = std::make_unique<Decoder>(be_, w_, o.max_rows);
}

PopulationEngine::~PopulationEngine() { stepper_.reset(); }

void PopulationEngine::begin_step(uint64_t epoch, int directions, float sigma) {
  pert_->set_sigma(sigma);
  pert_->begin_step(epoch, directions);
}

std::vector<GenResult> PopulationEngine::generate(std::span<const GenRequest> reqs, const GenOptions& opt, bool perturbed,
                                           GenStats* stats) {
  if (int64_t(reqs.size()) > o_.max_rows)
    throw std::invalid_argument(fmt::format("PopulationEngine::generate: {} requests, the engine was sized for {}",
                                            reqs.size(), o_.max_rows));
  stepper_->set_perturbation(perturbed ? &pert_->view() : nullptr);
  auto res = eggroll::generate(*stepper_, reqs, opt, stats);
  stepper_->set_perturbation(nullptr);
  return res;
}

std::vector<ScoreResult> PopulationEngine::score(std::span<const ScoreRequest> reqs, bool perturbed, GenStats* stats,
                                          int64_t chunk_tokens) {
  if (int64_t(reqs.size()) > o_.max_rows)
    throw std::invalid_argument(fmt::format("PopulationEngine::score: {} requests, the engine was sized for {}",
                                            reqs.size(), o_.max_rows));
  stepper_->set_perturbation(perturbed ? &pert_->view() : nullptr);
  auto res = score_targets(*stepper_, reqs, stats, chunk_tokens);
  stepper_->set_perturbation(nullptr);
  return res;
}

void PopulationEngine::gradient(int pid, const float* fitness_dev, int64_t N, int64_t p0, int64_t np, Communicator* comm) {
  const Param& p = host_model_->params[size_t(pid)];
  const NoiseSpec& ns = pert_->view().noise;  // this step's epoch bucket and sigma
  const float* cache = pert_->view().cache_of(pid);
  if (sel_.lowrank[size_t(pid)]) {
    const int64_t K = np * ns.rank;
    if (K == 0) {
      be_.zero(grad_, p.numel() * sizeof(float));
    } else {
      const int64_t need = (p.rows + p.cols) * K;
      if (need > ab_cap_) {
        buffers_.release(A_all_);
        A_all_ = nullptr;
        A_all_ = buffers_.array(need);
        ab_cap_ = need;
      }
      B_all_ = A_all_ + p.rows * K;
      be_.update_factors(ns, uint32_t(pid), p.rows, p.cols, fitness_dev, N, p0, np, cache, A_all_, B_all_);
      be_.update_gemm(A_all_, B_all_, grad_, p.rows, p.cols, K);
    }
  } else {
    be_.vector_gradient(ns, uint32_t(pid), int64_t(p.numel()), fitness_dev, N, p0, np, cache, grad_);
  }
  if (comm && comm->size() > 1) {
    if (comm->backend() == "nccl") {
      comm->all_reduce_sum(grad_, p.numel());  // device buffers
    } else {
      host_stage_.resize(p.numel());
      be_.download(host_stage_.data(), grad_, p.numel() * sizeof(float));
      comm->all_reduce_sum(host_stage_.data(), host_stage_.size());
      be_.upload(grad_, host_stage_.data(), p.numel() * sizeof(float));
    }
  }
}

StepReport PopulationEngine::update(std::span<const float> fitness, size_t pair_lo, size_t pair_hi, Communicator* comm,
                             double lr) {
  const int64_t N = int64_t(fitness.size());
  if (N < 2 || N % 2) throw std::invalid_argument("PopulationEngine::update: the population must be even and >= 2");
  const int64_t p0 = int64_t(std::min(pair_lo, size_t(N / 2)));
  const int64_t np = std::max<int64_t>(int64_t(std::min(pair_hi, size_t(N / 2))) - p0, 0);
  if (N > fitness_cap_) {
    buffers_.release(fitness_);
    fitness_ = nullptr;
    fitness_ = buffers_.array(N);
    fitness_cap_ = N;
  }
  be_.upload(fitness_, fitness.data(), size_t(N) * sizeof(float));
  const auto ids = sel_.ids();
  const int64_t R = be_.reduce_doubles();
  const size_t P = host_model_->params.size();
  std::vector<double> red(size_t(2 * P * size_t(R)));
  auto result = [&](size_t slot) { return red[slot * size_t(R)]; };
  StepReport rep;
  const bool clip = oc_.clip_update_norm > 0;
  // the gradient norm first (a clipped step needs it before any update: the gradients are
  // computed twice then, instead of holding all of them)
  if (clip) {
    for (size_t q = 0; q < ids.size(); q++) {
      gradient(ids[q], fitness_, N, p0, np, comm);
      be_.sum_squares(grad_, int64_t(host_model_->params[size_t(ids[q])].numel()), red_ + q * size_t(R));
    }
    be_.download(red.data(), red_, ids.size() * size_t(R) * sizeof(double));
    double sq = 0;
    for (size_t q = 0; q < ids.size(); q++) sq += result(q);
    rep.grad_norm = std::sqrt(sq);
  }
  const double scale = clip && rep.grad_norm > oc_.clip_update_norm ? oc_.clip_update_norm / rep.grad_norm : 1.0;
  t_++;
  const double bc1 = 1.0 - std::pow(oc_.beta1, double(t_)), bc2 = 1.0 - std::pow(oc_.beta2, double(t_));
  for (size_t q = 0; q < ids.size(); q++) {
    const int pid = ids[q];
    const int64_t n = int64_t(host_model_->params[size_t(pid)].numel());
    gradient(pid, fitness_, N, p0, np, comm);
    if (!clip) be_.sum_squares(grad_, n, red_ + q * size_t(R));
    double* out = red_ + (P + q) * size_t(R);
    if (oc_.kind == OptimKind::SGD)
      be_.sgd_update(model_->master(pid), grad_, n, lr, scale, out, model_->bf16(pid));
    else
      be_.adam_update(model_->master(pid), grad_, m1_[size_t(pid)], m2_[size_t(pid)], n, lr, oc_.beta1, oc_.beta2,
                      oc_.eps, oc_.weight_decay, oc_.kind == OptimKind::AdamW, bc1, bc2, scale, out,
                      model_->bf16(pid));
    model_->refresh(pid);
  }
  be_.download(red.data(), red_, red.size() * sizeof(double));
  double sq = 0, usq = 0;
  for (size_t q = 0; q < ids.size(); q++) {
    if (!clip) sq += result(q);
    usq += result(P + q);
  }
  if (!clip) rep.grad_norm = std::sqrt(sq);
  rep.update_norm = std::sqrt(usq);
  return rep;
}

void PopulationEngine::to_host(Model& m) const {
  for (int pid : sel_.ids()) {
    Param& p = m.params[size_t(pid)];
    if (p.data.data() != model_->master(pid))  // not the array the engine updates in place
      be_.download(p.data.data(), model_->master(pid), p.numel() * sizeof(float));
  }
}

StateDict PopulationEngine::optimizer_state() const {
  StateDict sd;
  if (oc_.kind == OptimKind::SGD) return sd;
  for (int pid : sel_.ids()) {
    const Param& p = host_model_->params[size_t(pid)];
    std::vector<float> a(p.numel());
    for (const auto& [prefix, dev] : {std::pair{"m.", m1_[size_t(pid)]}, std::pair{"v.", m2_[size_t(pid)]}}) {
      be_.download(a.data(), dev, a.size() * sizeof(float));
      sd.tensors.push_back(Tensor::from_f32(prefix + p.name, {int64_t(a.size())}, a.data(), DType::F32));
    }
  }
  return sd;
}

void PopulationEngine::load_optimizer_state(const StateDict& sd, uint64_t steps, const std::string& source) {
  if (oc_.kind != OptimKind::SGD) {
    // every tensor checked before any is uploaded: a bad file leaves the state as it was
    std::vector<std::pair<float*, std::vector<float>>> up;
    for (int pid : sel_.ids()) {
      const Param& p = host_model_->params[size_t(pid)];
      for (const auto& [prefix, dev] : {std::pair{"m.", m1_[size_t(pid)]}, std::pair{"v.", m2_[size_t(pid)]}}) {
        const std::string name = prefix + p.name;
        const Tensor& t = sd.at(name, source);
        if (t.numel() != p.numel() || t.dtype != DType::F32)
          throw InputError(fmt::format("{}: optimizer tensor '{}' has the wrong size or type", source, name));
        up.emplace_back(dev, t.to_f32());
      }
    }
    for (const auto& [dev, host] : up) be_.upload(dev, host.data(), host.size() * sizeof(float));
  }
  t_ = steps;
}

}  // namespace eggroll
