// NCCL backend on one GPU (ctest nccl_comm_gpu, label "gpu"). Exit 77 (SKIPPED) where no CUDA
// device exists. NCCL refuses two ranks on one GPU, so on a one-GPU machine this checks:
//   - a one-rank communicator made by make_communicator (backend nccl, rendezvous tcp):
//     all_gather / all_reduce_sum (float, double) / broadcast / barrier on device buffers;
//   - init of a two-rank communicator whose second rank never comes: CommTimeout within the
//     timeout (non-blocking init + ncclCommAbort), not a hang;
//   - with >= 2 GPUs, two ranks in two threads on two devices (file rendezvous): real collectives.
#include <cuda_runtime.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "core/comm.h"
#include "cuda/nccl_comm.h"

using namespace eggroll;

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "nccl_comm_main: FAILED: %s\n", what.c_str());
  }
}

void cu(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class T>
T* to_dev(const std::vector<T>& h) {
  T* d = nullptr;
  cu(cudaMalloc(reinterpret_cast<void**>(&d), h.size() * sizeof(T)), "cudaMalloc");
  cu(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  cu(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return h;
}

// Collectives of rank `me` of `P`; contributions rank-dependent; checks the results.
void exercise(Communicator& c) {
  const int P = c.size(), me = c.rank();
  const std::string who = "rank " + std::to_string(me) + ": ";
  std::vector<float> f(1000);
  for (size_t i = 0; i < f.size(); ++i) f[i] = 0.5f * static_cast<float>(i) + static_cast<float>(me);
  float* df = to_dev(f);
  c.all_reduce_sum(df, f.size());
  auto rf = to_host(df, f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    float want = 0;
    for (int r = 0; r < P; ++r) want += 0.5f * static_cast<float>(i) + static_cast<float>(r);
    if (rf[i] != want) {
      check(false, who + "all_reduce float element " + std::to_string(i));
      break;
    }
  }
  std::vector<double> d(77, 0.25 * (me + 1));
  double* dd = to_dev(d);
  c.all_reduce_sum(dd, d.size());
  auto rd = to_host(dd, d.size());
  check(rd[5] == 0.25 * P * (P + 1) / 2, who + "all_reduce double");
  std::vector<int> mine = {me, -me, 7 * me};
  std::vector<int> all(3 * static_cast<size_t>(P), -1);
  int* dmine = to_dev(mine);
  int* dall = to_dev(all);
  c.all_gather(dmine, 3 * sizeof(int), dall);
  all = to_host(dall, all.size());
  for (int r = 0; r < P; ++r)
    check(all[3 * r] == r && all[3 * r + 1] == -r && all[3 * r + 2] == 7 * r, who + "all_gather block " + std::to_string(r));
  std::vector<int> b(10, me == 0 ? 42 : 0);
  int* db = to_dev(b);
  c.broadcast(db, b.size() * sizeof(int), 0);
  check(to_host(db, b.size())[9] == 42, who + "broadcast");
  c.barrier();
  check(c.backend() == "nccl", who + "backend name");
  if (P == 1) check(c.bytes_sent() == 0, who + "bytes_sent with one rank");
  else check(c.bytes_sent() > 0, who + "bytes_sent");
  cudaFree(df);
  cudaFree(dd);
  cudaFree(dmine);
  cudaFree(dall);
  cudaFree(db);
}

}  // namespace

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("nccl_comm_main: SKIPPED: no CUDA device\n");
    return 77;
  }
  try {
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID",
                          "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "RANK", "WORLD_SIZE"})
      unsetenv(v);
    {  // one rank through the factory
      CommOptions o;
      o.backend = "nccl";
      o.rendezvous = "tcp";
      o.timeout_s = 60;
      auto c = make_communicator(o);
      check(c->size() == 1 && c->rank() == 0, "one-rank communicator");
      exercise(*c);
      std::printf("nccl_comm_main: one-rank communicator ok\n");
    }
    {  // rank 1 never comes: init must time out, not hang
      const double t = 3.0;
      const auto t0 = std::chrono::steady_clock::now();
      bool timed_out = false;
      try {
        cuda::NcclCommunicator c(0, 2, 0, [](const std::string& id) { return id; }, t);
      } catch (const CommTimeout& e) {
        timed_out = true;
        std::printf("nccl_comm_main: init timeout as expected: %s\n", e.what());
      }
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      check(timed_out, "init of a 2-rank communicator without rank 1 did not throw CommTimeout");
      check(dt < t + 10, "init timeout took " + std::to_string(dt) + " s");
      std::printf("nccl_comm_main: init timeout after %.2f s (timeout %.1f s)\n", dt, t);
    }
    if (count >= 2) {  // two ranks, two devices, two threads
      const std::string path = (std::filesystem::temp_directory_path() /
                                ("eggroll_nccl_" + std::to_string(getpid()) + ".id")).string();
      auto rank = [&](int r) {
        auto exchange = [&, r](const std::string& id) { return rendezvous_file(path, r, 2, id, 30); };
        cuda::NcclCommunicator c(r, 2, r, exchange, 30);
        exercise(c);
      };
      auto other = std::async(std::launch::async, rank, 1);
      rank(0);
      other.get();
      std::printf("nccl_comm_main: two-rank communicator on two GPUs ok\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nccl_comm_main: error: %s\n", e.what());
    return 1;
  }
  std::printf("nccl_comm_main: %s\n", g_failures ? "FAILED" : "PASSED");
  return g_failures ? 1 : 0;
}
