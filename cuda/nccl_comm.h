#pragma once
// NCCL backend of the Communicator (core/comm.h). Built only with CUDA + NCCL
// (EGGROLL_HAVE_NCCL). Every pointer passed to its collectives is a DEVICE pointer.
//
// Bootstrapping: rank 0 creates the 128-byte ncclUniqueId; `exchange` must hand rank 0's bytes to
// every rank (make_communicator uses an MPI broadcast, rendezvous_tcp or rendezvous_file).
// Device: cudaSetDevice(local_rank % device_count) before anything else (one GPU per local rank).
// Init: ncclCommInitRankConfig with blocking = 0, polled with ncclCommGetAsyncError until the
// deadline; on timeout the communicator is aborted (ncclCommAbort) and CommTimeout is thrown.
// Collectives: enqueued on the communicator's stream (a blocking stream created at init, so it
// is ordered after work on the legacy default stream; set_stream() chooses another), then the
// host polls cudaStreamQuery + ncclCommGetAsyncError until done, an error, or timeout_s; on
// timeout or error: ncclCommAbort, the communicator is broken, CommTimeout is thrown (NCCL does
// not say which peer is missing, so missing_ranks is empty).
// all_reduce_sum is NCCL's (ring/tree): every rank gets the same bits, in NCCL's order.
// bytes_sent counts what NCCL's ring algorithms send from this rank: all_gather (P-1)*b,
// all_reduce 2(P-1)/P*b, broadcast b on every rank but the last of the chain, barrier 4(P-1)/P.
#include <functional>
#include <memory>
#include <string>

#include "core/comm.h"

namespace eggroll::cuda {

using eggroll::IdExchange;  // core/comm.h

class NcclCommunicator : public Communicator {
 public:
  // Throws std::runtime_error when no CUDA device exists, CommTimeout when init times out.
  // on_failure (optional) runs once when the communicator breaks (init or collective timeout /
  // error), before the exception is thrown; make_communicator uses it to stop MPI_Finalize from
  // waiting on a dead peer at exit when MPI bootstrapped NCCL.
  NcclCommunicator(int rank, int size, int local_rank, const IdExchange& exchange, double timeout_s,
                   std::function<void()> on_failure = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override;
  void all_reduce_sum(float* data, size_t n) override;
  void all_reduce_sum(double* data, size_t n) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void barrier() override;
  std::string backend() const override { return "nccl"; }
  uint64_t bytes_sent() const override { return bytes_sent_; }

  int device() const { return device_; }
  // Use this cudaStream_t for later collectives (nullptr: back to the communicator's own).
  void set_stream(void* stream);

 private:
  struct Impl;
  void check_usable(const char* op) const;
  // Enqueues `launch` (returns an ncclResult_t as int) and waits for it with the deadline.
  void run(const char* op, const std::function<int()>& launch);
  [[noreturn]] void fail(const std::string& what);
  void mark_broken(const std::string& why);

  int rank_ = 0, size_ = 1, local_rank_ = 0, device_ = 0;
  double timeout_s_ = 300.0;
  uint64_t bytes_sent_ = 0;
  uint64_t seq_ = 0;
  bool broken_ = false;
  std::string broken_reason_;
  std::function<void()> on_failure_;
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Communicator> make_nccl_communicator(int rank, int size, int local_rank,
                                                     const IdExchange& exchange, double timeout_s,
                                                     std::function<void()> on_failure = {});

}  // namespace eggroll::cuda
