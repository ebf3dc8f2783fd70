// NCCL backend (see nccl_comm.h). Every collective: enqueue on the stream, then poll the stream
// and NCCL's async error until done or the deadline; on timeout/error abort the communicator.
#include "cuda/nccl_comm.h"

#ifdef EGGROLL_HAVE_NCCL  // defined by CMake when libnccl and nccl.h are found
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace eggroll::cuda {

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds_str(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("nccl backend: ") + what + ": " + cudaGetErrorString(e));
}

void sleep_a_little(Clock::time_point start) {
  if (Clock::now() - start < std::chrono::milliseconds(50))
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t own_stream = nullptr;
  cudaStream_t stream = nullptr;  // the one collectives use
  int* scratch = nullptr;         // device int for barrier()
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {  // also runs when the constructor throws
    if (scratch) cudaFree(scratch);
    if (own_stream) cudaStreamDestroy(own_stream);
  }
};

NcclCommunicator::NcclCommunicator(int rank, int size, int local_rank, const IdExchange& exchange, double timeout_s,
                                   std::function<void()> on_failure)
    : rank_(rank),
      size_(size),
      local_rank_(local_rank),
      timeout_s_(timeout_s),
      on_failure_(std::move(on_failure)),
      impl_(std::make_unique<Impl>()) {
  require(size >= 1 && rank >= 0 && rank < size, "nccl communicator",
          "rank " + std::to_string(rank) + " out of range for size " + std::to_string(size));
  require(timeout_s > 0, "nccl communicator", "timeout_s must be > 0");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0)
    throw std::runtime_error("nccl backend: rank " + std::to_string(rank) + " sees no CUDA device");
  device_ = local_rank % count;
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");

  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) throw std::runtime_error(std::string("nccl backend: ncclGetUniqueId: ") + ncclGetErrorString(r));
  }
  const std::string mine(reinterpret_cast<const char*>(&id), sizeof id);
  const std::string got = exchange(mine);
  if (got.size() != sizeof id)
    throw std::runtime_error("nccl backend: rank " + std::to_string(rank) + " received a " +
                             std::to_string(got.size()) + "-byte unique id, expected " + std::to_string(sizeof id));
  std::memcpy(&id, got.data(), sizeof id);

  cuda_check(cudaStreamCreate(&impl_->own_stream), "cudaStreamCreate");  // blocking: ordered after the legacy stream
  impl_->stream = impl_->own_stream;
  cuda_check(cudaMalloc(reinterpret_cast<void**>(&impl_->scratch), sizeof(int)), "cudaMalloc");
  cuda_check(cudaMemset(impl_->scratch, 0, sizeof(int)), "cudaMemset");

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  ncclResult_t r = ncclCommInitRankConfig(&impl_->comm, size, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    std::string msg = ncclGetErrorString(r);
    if (impl_->comm) ncclCommAbort(impl_->comm);
    impl_->comm = nullptr;
    mark_broken(msg);
    throw std::runtime_error("nccl backend: ncclCommInitRankConfig (rank " + std::to_string(rank) + " of " +
                             std::to_string(size) + "): " + msg);
  }
  for (;;) {
    ncclResult_t state = ncclInProgress;
    if (ncclCommGetAsyncError(impl_->comm, &state) != ncclSuccess) state = ncclInternalError;
    if (state == ncclSuccess) break;
    if (state != ncclInProgress || Clock::now() >= deadline) {
      ncclCommAbort(impl_->comm);
      impl_->comm = nullptr;
      mark_broken(state != ncclInProgress ? ncclGetErrorString(state) : "init timed out");
      if (state != ncclInProgress)
        throw std::runtime_error("nccl backend: init (rank " + std::to_string(rank) + " of " + std::to_string(size) +
                                 ") failed: " + ncclGetErrorString(state));
      throw CommTimeout("nccl init (rank " + std::to_string(rank) + " of " + std::to_string(size) +
                        "): not all ranks joined within " + seconds_str(timeout_s) +
                        "; communicator aborted (a rank is missing, on a different id, or unreachable)");
    }
    sleep_a_little(start);
  }
}

NcclCommunicator::~NcclCommunicator() {
  if (!impl_) return;
  if (impl_->comm) {
    if (broken_) {
      ncclCommAbort(impl_->comm);
    } else {
      // Non-blocking communicator: finalize returns ncclInProgress; wait (bounded) then destroy.
      ncclResult_t r = ncclCommFinalize(impl_->comm);
      const auto start = Clock::now();
      const auto limit = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
      ncclResult_t state = r == ncclSuccess ? ncclSuccess : ncclInProgress;
      while (r == ncclSuccess || r == ncclInProgress) {
        if (ncclCommGetAsyncError(impl_->comm, &state) != ncclSuccess || state != ncclInProgress) break;
        if (Clock::now() >= limit) break;
        sleep_a_little(start);
      }
      if (state == ncclSuccess)
        ncclCommDestroy(impl_->comm);
      else
        ncclCommAbort(impl_->comm);
    }
    impl_->comm = nullptr;
  }
}

void NcclCommunicator::set_stream(void* stream) {
  impl_->stream = stream ? static_cast<cudaStream_t>(stream) : impl_->own_stream;
}

void NcclCommunicator::check_usable(const char* op) const {
  if (broken_)
    throw CommTimeout("nccl " + std::string(op) + ": communicator is broken by an earlier failure (" + broken_reason_ +
                      ")");
}

void NcclCommunicator::mark_broken(const std::string& why) {
  if (broken_) return;
  broken_ = true;
  broken_reason_ = why;
  if (on_failure_) on_failure_();
}

void NcclCommunicator::fail(const std::string& what) {
  if (impl_->comm) ncclCommAbort(impl_->comm);
  impl_->comm = nullptr;
  mark_broken(what);
  throw CommTimeout("nccl " + what);
}

void NcclCommunicator::run(const char* op, const std::function<int()>& launch) {
  check_usable(op);
  const uint64_t seq = seq_++;
  auto describe = [&](const std::string& tail) {
    return std::string(op) + " (collective #" + std::to_string(seq) + ", rank " + std::to_string(rank_) + " of " +
           std::to_string(size_) + "): " + tail;
  };
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  ncclResult_t r = static_cast<ncclResult_t>(launch());
  if (r != ncclSuccess && r != ncclInProgress) fail(describe(std::string("enqueue failed: ") + ncclGetErrorString(r)));
  for (;;) {
    ncclResult_t state = ncclInProgress;
    if (ncclCommGetAsyncError(impl_->comm, &state) != ncclSuccess) state = ncclInternalError;
    if (state != ncclSuccess && state != ncclInProgress)
      fail(describe(std::string("NCCL error: ") + ncclGetErrorString(state) + " (a peer rank failed?)"));
    if (state == ncclSuccess) {  // enqueued; now wait for the stream
      cudaError_t q = cudaStreamQuery(impl_->stream);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) fail(describe(std::string("CUDA error: ") + cudaGetErrorString(q)));
    }
    if (Clock::now() >= deadline)
      fail(describe("timed out after " + seconds_str(timeout_s_) +
                    "; communicator aborted (a peer rank is dead or stuck; NCCL does not say which)"));
    sleep_a_little(start);
  }
}

void NcclCommunicator::all_gather(const void* send, size_t bytes_per_rank, void* recv) {
  check_usable("all_gather");
  if (bytes_per_rank == 0) {
    ++seq_;
    return;
  }
  run("all_gather", [&] {
    return static_cast<int>(ncclAllGather(send, recv, bytes_per_rank, ncclUint8, impl_->comm, impl_->stream));
  });
  bytes_sent_ += static_cast<uint64_t>(size_ - 1) * bytes_per_rank;
}

void NcclCommunicator::all_reduce_sum(float* data, size_t n) {
  check_usable("all_reduce_sum");
  run("all_reduce_sum", [&] {
    return static_cast<int>(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, impl_->comm, impl_->stream));
  });
  bytes_sent_ += static_cast<uint64_t>(2.0 * (size_ - 1) / size_ * static_cast<double>(n * sizeof(float)));
}

void NcclCommunicator::all_reduce_sum(double* data, size_t n) {
  check_usable("all_reduce_sum");
  run("all_reduce_sum", [&] {
    return static_cast<int>(ncclAllReduce(data, data, n, ncclFloat64, ncclSum, impl_->comm, impl_->stream));
  });
  bytes_sent_ += static_cast<uint64_t>(2.0 * (size_ - 1) / size_ * static_cast<double>(n * sizeof(double)));
}

void NcclCommunicator::broadcast(void* data, size_t bytes, int root) {
  check_usable("broadcast");
  require(root >= 0 && root < size_, "nccl broadcast",
          "root " + std::to_string(root) + " out of range [0, " + std::to_string(size_) + ")");
  run("broadcast", [&] {
    return static_cast<int>(ncclBroadcast(data, data, bytes, ncclUint8, root, impl_->comm, impl_->stream));
  });
  // chain root -> root+1 -> ...: every rank but the last forwards the data
  if (size_ > 1 && rank_ != (root + size_ - 1) % size_) bytes_sent_ += bytes;
}

void NcclCommunicator::barrier() {
  check_usable("barrier");
  run("barrier", [&] {
    return static_cast<int>(
        ncclAllReduce(impl_->scratch, impl_->scratch, 1, ncclInt32, ncclSum, impl_->comm, impl_->stream));
  });
  bytes_sent_ += static_cast<uint64_t>(2.0 * (size_ - 1) / size_ * sizeof(int));
}

std::unique_ptr<Communicator> make_nccl_communicator(int rank, int size, int local_rank, const IdExchange& exchange,
                                                     double timeout_s, std::function<void()> on_failure) {
  return std::make_unique<NcclCommunicator>(rank, size, local_rank, exchange, timeout_s, std::move(on_failure));
}

namespace {
// make_communicator's "nccl" backend (core/comm.h registry); the library is linked whole-archive.
const bool kRegistered = [] {
  register_device_comm("nccl", [](int rank, int size, int local_rank, const IdExchange& exchange, double timeout_s,
                                  std::function<void()> on_failure) {
    return make_nccl_communicator(rank, size, local_rank, exchange, timeout_s, std::move(on_failure));
  });
  return true;
}();
}  // namespace

}  // namespace eggroll::cuda

#endif  // EGGROLL_HAVE_NCCL
