#pragma once
// Communicators: how the ranks of one run (processes, usually one per GPU) exchange data.
//
// The trainer needs five collectives: all_gather (fitness scalars), all_reduce_sum (updates,
// in `allreduce` mode), broadcast (initial weights / config checks), barrier, and rank/size.
// Backends:
//   single  one process; every collective is a copy or a no-op.
//   mpi     host memory over MPI (core/comm.cpp; built when CMake finds MPI: EGGROLL_HAVE_MPI).
//   tcp     host memory over TCP sockets, no MPI (core/comm.cpp): a star through rank 0, which
//           listens on dist.rendezvous_path (host:port) or MASTER_ADDR:MASTER_PORT; ranks from
//           the launcher's environment (detect_launch). Same semantics and sums as mpi.
//   nccl    device memory over NCCL (cuda/nccl_comm.cpp; built with CUDA + NCCL:
//           EGGROLL_HAVE_NCCL). Every pointer passed to it is a device pointer.
//
// Semantics common to all backends:
//   - every call is collective: all ranks call the same operations in the same order with the
//     same sizes (and the same root);
//   - calls are synchronous: when one returns, the result is in the output buffer;
//   - no call waits forever: after CommOptions::timeout_s a CommTimeout is thrown, naming the
//     operation and, where the backend can tell, the rank(s) that never delivered. After a
//     timeout the communicator is broken: every later call throws CommTimeout at once, and the
//     process should exit non-zero (there is no recovery; the job is restarted from a checkpoint);
//   - all_reduce_sum of the mpi and single backends is deterministic: every rank sums the
//     contributions in rank order (0 + 1 + 2 + ...), so all ranks get bit-identical results,
//     independent of MPI's algorithm and of timing. NCCL's ring all-reduce also gives every
//     rank the same bits for a fixed rank count, but its summation order is NCCL's own.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace eggroll {

// A collective or rendezvous did not complete in time (or a peer failed). `missing_ranks` lists
// the ranks that did not deliver, when known (empty when the backend cannot tell).
struct CommTimeout : std::runtime_error {
  CommTimeout(const std::string& what, std::vector<int> missing = {})
      : std::runtime_error(what), missing_ranks(std::move(missing)) {}
  std::vector<int> missing_ranks;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // recv holds size() * bytes_per_rank bytes: rank r's contribution at offset r * bytes_per_rank.
  // send may alias recv + rank() * bytes_per_rank.
  virtual void all_gather(const void* send, size_t bytes_per_rank, void* recv) = 0;
  // In place: data[i] = sum over ranks of data[i].
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  // In place: every rank gets root's bytes.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // "single", "mpi" or "nccl".
  virtual std::string backend() const = 0;
  // Running total of payload bytes this rank has sent (mpi: exact; nccl: what NCCL's ring
  // algorithms send from this rank; single: 0). For logging.
  virtual uint64_t bytes_sent() const = 0;
};

// ---- launch environment ------------------------------------------------------------------
// Where this process sits in the job, as the launcher reports it through environment variables:
//   source "openmpi": OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK   (mpirun / mpiexec of Open MPI)
//          "pmi":     PMI_RANK / PMI_SIZE (+ MPI_LOCALRANKID if set) (MPICH/Hydra, Intel MPI)
//          "slurm":   SLURM_PROCID / SLURM_NTASKS (SLURM_STEP_NUM_TASKS when set) / SLURM_LOCALID
//          "torch":   RANK / WORLD_SIZE / LOCAL_RANK                 (torchrun-style launchers)
//          "none":    nothing set: rank 0 of 1.
// The first complete set in this order wins. When the launcher gives no local rank, local_rank
// is the global rank (right on one node). Malformed values throw InputError naming the variable.
struct LaunchInfo {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  std::string source = "none";
};
LaunchInfo detect_launch();

// ---- factory -------------------------------------------------------------------------------
struct CommOptions {
  std::string backend = "auto";     // auto | single | mpi | tcp | nccl
  std::string rendezvous = "mpi";   // how nccl exchanges its unique id: mpi | tcp | file
  std::string rendezvous_path;      // file rendezvous: a path on a filesystem all ranks share
  double timeout_s = 300.0;         // per collective (and for the rendezvous / NCCL init)
};

// tcp: the address is rendezvous_path ("host:port") when set, else MASTER_ADDR (default
// 127.0.0.1) and MASTER_PORT (default 29500).
// auto: "mpi" when the launcher reports more than one task and MPI is built in, else "single".
// Throws InputError for an unknown backend, a backend this build lacks, or a launcher/MPI
// mismatch (e.g. `srun` without PMI: SLURM_NTASKS=2 but MPI sees one process).
// The tcp rendezvous reads MASTER_ADDR (default 127.0.0.1) and MASTER_PORT (default 29500);
// rank and size come from detect_launch().
std::unique_ptr<Communicator> make_communicator(const CommOptions& options);

// The tcp backend for an explicit rank and size: rank 0 listens on `port` (all interfaces), the
// others connect to host:port (retrying until timeout_s: rank 0 may start later). Returns once
// every rank has joined; throws CommTimeout naming the ranks that did not, InputError on bad
// arguments. Every collective then times out after timeout_s, naming the lost rank.
std::unique_ptr<Communicator> make_tcp_communicator(const std::string& host, int port, int rank, int size,
                                                    int local_rank, double timeout_s);

// The trivial backend (also used by tests and by make_communicator for "single").
std::unique_ptr<Communicator> make_single_communicator();

// True when this build has the backend ("single" and "tcp" always; "mpi" with EGGROLL_HAVE_MPI;
// "nccl" when the CUDA library registered it, built with NCCL).
bool comm_backend_available(const std::string& backend);

// ---- device communicators registered by a backend plugin --------------------------------------
// Called on every rank with this rank's candidate blob (rank 0: the real unique id); returns
// rank 0's blob.
using IdExchange = std::function<std::string(const std::string&)>;
// Makes a communicator of rank `rank` of `size` (local_rank picks the device) whose id is
// handed out by `exchange`; on_failure (optional) runs once when it breaks.
using DeviceCommFactory = std::function<std::unique_ptr<Communicator>(
    int rank, int size, int local_rank, const IdExchange& exchange, double timeout_s,
    std::function<void()> on_failure)>;
// The CUDA library registers "nccl" at static-initialisation time (cuda/nccl_comm.cpp), so
// core never includes cuda/.
void register_device_comm(const std::string& name, DeviceCommFactory factory);

// ---- rendezvous: rank 0's opaque blob to every rank ---------------------------------------
// Used to hand out the NCCL unique id without MPI; plain functions, testable without NCCL.
// Both return the blob of rank 0 (on rank 0: `blob` itself); the `blob` argument of other
// ranks is ignored. They throw CommTimeout when the exchange does not finish within
// timeout_s (naming the ranks that never showed up, on rank 0), InputError on bad arguments.
//
// TCP: rank 0 listens on `port` (all interfaces), waits for the other size-1 ranks, checks
// their hello (magic, rank, size: a rank of another job or a size mismatch is an error),
// sends the blob and waits for each rank's acknowledgement. Other ranks connect to host:port,
// retrying until the deadline (rank 0 may start later). port 1..65535.
std::string rendezvous_tcp(const std::string& host, int port, int rank, int size,
                           const std::string& blob, double timeout_s);
// File: rank 0 writes the blob to `path` atomically (temp file + rename); other ranks poll
// until it appears, read it, and acknowledge with `path`.ack.<rank> (atomic as well); rank 0
// waits for all acknowledgements and removes the files. The file carries a random nonce so
// rank 0 can detect a rank that read a stale file from an earlier run; still, use a fresh
// path per run (e.g. one containing $SLURM_JOB_ID).
std::string rendezvous_file(const std::string& path, int rank, int size, const std::string& blob,
                            double timeout_s);

}  // namespace eggroll
