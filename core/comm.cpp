// Communicators (see comm.h): single-process and MPI backends, launch detection, the TCP and
// file rendezvous, and the factory (which hands "nccl" to the factory the CUDA library registers).
#include "core/comm.h"
#include "core/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"

#ifdef EGGROLL_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: no deprecated C++ bindings (and their warnings)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace eggroll {

namespace {

using Clock = std::chrono::steady_clock;

struct Deadline {
  Clock::time_point end;
  explicit Deadline(double seconds)
      : end(Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))) {}
  bool passed() const { return Clock::now() >= end; }
  // Milliseconds left, rounded up, at least 0 and at most cap_ms.
  int ms_left(int cap_ms = INT_MAX) const {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(end - Clock::now()).count();
    if (left <= 0) return 0;
    return static_cast<int>(std::min<int64_t>(cap_ms, (left + 999) / 1000));
  }
};

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(ranks[i]);
  }
  return out;
}

std::string ranks_phrase(const std::vector<int>& ranks) {
  return (ranks.size() == 1 ? "rank " : "ranks ") + rank_list(ranks);
}

void require_timeout(double timeout_s, const char* where) {
  require(timeout_s > 0 && timeout_s < 1e9, where, "timeout_s must be > 0, got " + std::to_string(timeout_s));
}

// ---- single process --------------------------------------------------------------------------

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override {
    if (bytes_per_rank && send != recv) std::memmove(recv, send, bytes_per_rank);
  }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void broadcast(void*, size_t, int root) override {
    require(root == 0, "single communicator broadcast", "root must be 0, got " + std::to_string(root));
  }
  void barrier() override {}
  std::string backend() const override { return "single"; }
  uint64_t bytes_sent() const override { return 0; }
};

// ---- environment ------------------------------------------------------------------------------

// false when unset or empty; InputError when set but not an integer.
bool env_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  while (end && (*end == ' ' || *end == '\n' || *end == '\t')) ++end;
  if (errno || end == v || *end || x < INT_MIN || x > INT_MAX)
    throw InputError(std::string("launch environment: ") + name + "='" + v + "' is not an integer");
  out = static_cast<int>(x);
  return true;
}

// ---- what the host-memory communicators (mpi, tcp) share ------------------------------------

// Identity, the collective sequence number, the broken state (a failed collective breaks the
// communicator for good: every later call throws the first failure), barrier, and the sum of the
// ranks' contributions in rank order (the same bits on every rank and for every backend).
class HostCommunicator : public Communicator {
 public:
  HostCommunicator(const char* name, double timeout_s) : name_(name), timeout_s_(timeout_s) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const { return local_rank_; }
  std::string backend() const override { return name_; }
  uint64_t bytes_sent() const override { return bytes_sent_; }

  void barrier() override {
    check_usable("barrier");
    const uint64_t seq = seq_;  // all_gather takes the next sequence number: seq
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    all_gather(&seq, sizeof seq, all.data());
    for (int p = 0; p < size_; ++p)
      if (all[static_cast<size_t>(p)] != seq)
        fail("barrier: rank " + std::to_string(p) + " is at collective #" + std::to_string(all[static_cast<size_t>(p)]) +
                 ", rank " + std::to_string(rank_) + " at #" + std::to_string(seq) +
                 " (the ranks called different sequences of collectives)",
             {p});
  }

 protected:
  static constexpr size_t kReduceChunkBytes = size_t(64) << 20;  // gathered bytes per chunk

  void check_usable(const char* op) const {
    if (broken_)
      throw CommTimeout(name_ + " " + std::string(op) + ": communicator is broken by an earlier failure (" +
                            broken_reason_ + ")",
                        broken_missing_);
  }
  [[noreturn]] void fail(const std::string& what, std::vector<int> missing) {
    broken_ = true;
    on_broken();
    broken_reason_ = what;
    broken_missing_ = missing;
    throw CommTimeout(name_ + " " + what, std::move(missing));
  }
  virtual void on_broken() {}
  // The checks every broadcast starts with; returns its collective sequence number.
  uint64_t start_broadcast(int root) {
    check_usable("broadcast");
    require(root >= 0 && root < size_, name_ + " broadcast",
            "root " + std::to_string(root) + " out of range [0, " + std::to_string(size_) + ")");
    return seq_++;
  }
  // The chunk loop of all_reduce_sum: reduce_chunk(seq, out, len) for each chunk of data, a chunk
  // sized so that the gathered contributions of all ranks stay under kReduceChunkBytes, one
  // collective sequence number each; nothing to exchange (one rank, no data) still takes one.
  template <class T, class F>
  void for_each_reduce_chunk(T* data, size_t n, F&& reduce_chunk) {
    check_usable("all_reduce_sum");
    if (size_ == 1 || n == 0) {
      ++seq_;
      return;
    }
    const size_t chunk = std::max<size_t>(1, kReduceChunkBytes / (sizeof(T) * static_cast<size_t>(size_)));
    for (size_t start = 0; start < n; start += chunk) {
      const size_t len = std::min(chunk, n - start);
      reduce_chunk(seq_++, data + start, len);
    }
  }
  // out[i] = rank0[i] + others[1 * len + i] + ... + others[(size - 1) * len + i], accumulated in Acc.
  template <class T, class Acc>
  static void sum_in_rank_order(T* out, const T* rank0, const T* others, size_t len, int size) {
    for (size_t i = 0; i < len; ++i) {
      Acc acc = static_cast<Acc>(rank0[i]);
      for (int p = 1; p < size; ++p) acc += static_cast<Acc>(others[static_cast<size_t>(p) * len + i]);
      out[i] = static_cast<T>(acc);
    }
  }

  std::string name_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double timeout_s_;
  uint64_t bytes_sent_ = 0;
  uint64_t seq_ = 0;
  bool broken_ = false;
  std::string broken_reason_;
  std::vector<int> broken_missing_;
};

#ifdef EGGROLL_HAVE_MPI
// ---- MPI ----------------------------------------------------------------------------------------

// MPI is initialised once per process (MPI_Init_thread, FUNNELED: only the thread that made the
// communicator calls it) and finalised at exit, unless a collective failed: MPI_Finalize can
// block on a dead peer, and the process is about to exit non-zero anyway.
struct MpiProcessState {
  bool we_initialized = false;
  bool broken = false;
};
MpiProcessState& mpi_state() {
  static MpiProcessState s;
  return s;
}

void mpi_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && !mpi_state().broken) MPI_Finalize();
}

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

void mpi_check(int code, const char* what) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string("mpi: ") + what + " failed: " + mpi_error_string(code));
}

void mpi_ensure_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    mpi_state().we_initialized = true;
    std::atexit(mpi_at_exit);
  }
  // Errors are returned, not fatal: a failed peer becomes an exception naming it.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

// Collectives are built from point-to-point messages so that a stuck or dead peer is known by
// rank: every rank posts one receive per peer, polls them with MPI_Test until the deadline, and
// reports the peers whose data never came.
//   all_gather: every rank sends its block to every peer ((P-1)*b bytes sent per rank, the
//               same volume as a ring).
//   all_reduce_sum: chunks of at most 64 MiB of gathered data; each chunk is all-gathered and
//               every rank sums the P contributions in rank order (float accumulates in double),
//               so all ranks get bit-identical results whatever MPI's internal algorithms.
//   broadcast:  the root sends to every peer.
//   barrier:    an all_gather of the collective's sequence number.
// Every collective has a sequence number; its messages use the tag seq mod (MPI_TAG_UB+1), so
// messages of different collectives never match one another. Messages over 1 GiB are split.
class MpiCommunicator final : public HostCommunicator {
 public:
  explicit MpiCommunicator(double timeout_s) : HostCommunicator("mpi", timeout_s) {
    mpi_ensure_initialized();
    mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    void* attr = nullptr;
    int flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &attr, &flag);
    tag_ub_ = flag && attr ? *static_cast<int*>(attr) : 32767;
    // Ranks sharing a node: local rank = rank within the node's shared-memory communicator.
    MPI_Comm node = MPI_COMM_NULL;
    if (MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node) == MPI_SUCCESS &&
        node != MPI_COMM_NULL) {
      MPI_Comm_rank(node, &local_rank_);
      MPI_Comm_free(&node);
    }
  }
  ~MpiCommunicator() override {
    if (!broken_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }


  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override {
    check_usable("all_gather");
    const uint64_t seq = seq_++;
    if (bytes_per_rank == 0) return;
    char* out = static_cast<char*>(recv);
    char* mine = out + static_cast<size_t>(rank_) * bytes_per_rank;
    if (send != mine) std::memmove(mine, send, bytes_per_rank);
    std::vector<Transfer> ts;
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      ts.push_back({p, false, out + static_cast<size_t>(p) * bytes_per_rank, bytes_per_rank});
      ts.push_back({p, true, mine, bytes_per_rank});
    }
    exchange("all_gather", seq, ts);
  }

  void all_reduce_sum(float* data, size_t n) override { reduce_impl<float, double>(data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce_impl<double, double>(data, n); }

  void broadcast(void* data, size_t bytes, int root) override {
    const uint64_t seq = start_broadcast(root);
    if (bytes == 0) return;
    std::vector<Transfer> ts;
    if (rank_ == root) {
      for (int p = 0; p < size_; ++p)
        if (p != rank_) ts.push_back({p, true, data, bytes});
    } else {
      ts.push_back({root, false, data, bytes});
    }
    exchange("broadcast", seq, ts);
  }

 private:
  struct Transfer {
    int peer;
    bool send;
    void* buf;
    size_t bytes;
  };
  static constexpr size_t kMaxMessage = size_t(1) << 30;
  void on_broken() override { mpi_state().broken = true; }

  template <class T, class Acc>
  void reduce_impl(T* data, size_t n) {
    std::vector<T> gathered;
    for_each_reduce_chunk(data, n, [&](uint64_t seq, T* out, size_t len) {
      gathered.resize(len * static_cast<size_t>(size_));  // the first chunk is the largest
      std::vector<Transfer> ts;
      for (int p = 0; p < size_; ++p) {
        if (p == rank_) continue;
        ts.push_back({p, false, gathered.data() + static_cast<size_t>(p) * len, len * sizeof(T)});
        ts.push_back({p, true, out, len * sizeof(T)});
      }
      exchange("all_reduce_sum", seq, ts);
      std::memcpy(gathered.data() + static_cast<size_t>(rank_) * len, out, len * sizeof(T));
      sum_in_rank_order<T, Acc>(out, gathered.data(), gathered.data(), len, size_);
    });
  }

  // Posts every transfer (split into <= 1 GiB messages), then polls until all are complete, an
  // MPI error, or the deadline.
  void exchange(const char* op, uint64_t seq, const std::vector<Transfer>& ts) {
    const int tag = static_cast<int>(seq % (static_cast<uint64_t>(tag_ub_) + 1));
    struct Posted {
      MPI_Request req;
      int peer;
      bool send;
      int expect;
      bool done;
    };
    std::vector<Posted> posted;
    auto describe = [&](const std::string& tail) {
      return std::string(op) + " (collective #" + std::to_string(seq) + ", rank " + std::to_string(rank_) + " of " +
             std::to_string(size_) + "): " + tail;
    };
    uint64_t sent = 0;
    for (const Transfer& t : ts) {
      for (size_t off = 0; off < t.bytes || (off == 0 && t.bytes == 0); off += kMaxMessage) {
        const int count = static_cast<int>(std::min(kMaxMessage, t.bytes - off));
        char* p = static_cast<char*>(t.buf) + off;
        MPI_Request req = MPI_REQUEST_NULL;
        int rc = t.send ? MPI_Isend(p, count, MPI_BYTE, t.peer, tag, comm_, &req)
                        : MPI_Irecv(p, count, MPI_BYTE, t.peer, tag, comm_, &req);
        if (rc != MPI_SUCCESS)
          fail(describe(std::string(t.send ? "MPI_Isend to" : "MPI_Irecv from") + " rank " + std::to_string(t.peer) +
                        " failed: " + mpi_error_string(rc)),
               {t.peer});
        posted.push_back({req, t.peer, t.send, count, false});
        if (t.send) sent += static_cast<uint64_t>(count);
        if (t.bytes == 0) break;
      }
    }
    const auto start = Clock::now();
    Deadline deadline(timeout_s_);
    size_t remaining = posted.size();
    while (remaining) {
      for (Posted& p : posted) {
        if (p.done) continue;
        int flag = 0;
        MPI_Status st;
        int rc = MPI_Test(&p.req, &flag, &st);
        if (rc != MPI_SUCCESS) {
          std::string msg = mpi_error_string(rc);
          fail(describe(std::string(p.send ? "sending to" : "receiving from") + " rank " + std::to_string(p.peer) +
                        " failed: " + msg + " (rank " + std::to_string(p.peer) +
                        " died, or called a different collective)"),
               {p.peer});
        }
        if (!flag) continue;
        p.done = true;
        --remaining;
        if (!p.send) {
          int got = 0;
          MPI_Get_count(&st, MPI_BYTE, &got);
          if (got != p.expect)
            fail(describe("rank " + std::to_string(p.peer) + " sent " + std::to_string(got) + " bytes, expected " +
                          std::to_string(p.expect) + " (the ranks called collectives with different sizes)"),
                 {p.peer});
        }
      }
      if (!remaining) break;
      if (deadline.passed()) {
        std::set<int> no_data, no_ack;
        for (Posted& p : posted) {
          if (p.done) continue;
          (p.send ? no_ack : no_data).insert(p.peer);
          if (!p.send && MPI_Cancel(&p.req) == MPI_SUCCESS) {  // a late message must not land in freed memory
            int flag = 0;
            MPI_Test(&p.req, &flag, MPI_STATUS_IGNORE);
          }
        }
        std::vector<int> lost(no_data.begin(), no_data.end());
        std::string tail;
        if (!lost.empty()) {
          tail = "lost " + ranks_phrase(lost) + ": no data arrived (dead, stuck, or in a different collective)";
        } else {
          lost.assign(no_ack.begin(), no_ack.end());
          tail = "lost " + ranks_phrase(lost) + ": did not take delivery (dead or stuck)";
        }
        fail(describe("timed out after " + fmt_seconds(timeout_s_) + ": " + tail), lost);
      }
      // Progress happens inside MPI_Test: poll hard while a transfer is likely under way, back
      // off once the wait looks like a slow peer, so oversubscribed cores are not burnt.
      if (Clock::now() - start < std::chrono::milliseconds(100))
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    bytes_sent_ += sent;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int tag_ub_ = 32767;
};

// MPI communicator + the launcher/MPI consistency check.
std::unique_ptr<MpiCommunicator> make_mpi(double timeout_s, const LaunchInfo& launch) {
  // A task of a Slurm job step started without PMI (`srun --mpi=none`, or MpiDefault=none) has
  // no way to find its peers, and Open MPI's MPI_Init aborts such a task with a message about how
  // Open MPI was built. Say what is wrong before MPI_Init, on every task. (A PMIx launch sets
  // PMIX_RANK, a PMI-1/2 launch PMI_FD or PMI_RANK, mpirun OMPI_COMM_WORLD_RANK.)
  if (launch.source == "slurm" && launch.size > 1 && std::getenv("SLURM_STEP_ID") && !std::getenv("PMIX_RANK") &&
      !std::getenv("PMI_FD") && !std::getenv("PMI_RANK")) {
    const char* type = std::getenv("SLURM_MPI_TYPE");
    throw InputError("communicator: the launcher reports " + std::to_string(launch.size) +
                     " tasks (a Slurm job step) but srun started them without PMI (SLURM_MPI_TYPE=" +
                     (type && *type ? type : "unset") +
                     "), so MPI cannot join them into one job. Launch with `srun --mpi=pmix` (`srun --mpi=list` "
                     "shows the plugins), or use backend tcp (or nccl with rendezvous tcp or file), which needs no MPI");
  }
  auto comm = std::make_unique<MpiCommunicator>(timeout_s);
  if (launch.source != "none" && launch.size != comm->size()) {
    const std::string var = launch.source == "openmpi" ? "OMPI_COMM_WORLD_SIZE"
                            : launch.source == "pmi"   ? "PMI_SIZE"
                            : launch.source == "slurm" ? "SLURM_NTASKS"
                                                       : "WORLD_SIZE";
    throw InputError(
        "communicator: the launcher reports " + std::to_string(launch.size) + " tasks (" + var + "=" +
        std::to_string(launch.size) + ", from " + launch.source + ") but MPI sees " + std::to_string(comm->size()) +
        (comm->size() == 1 ? " process: every task started its own one-process MPI world (e.g. srun without PMI "
                             "support). Launch with `srun --mpi=pmix` (or pmi2) or mpirun, or use backend tcp (or nccl "
                             "with rendezvous tcp or file), which needs no MPI"
                           : " processes: the launcher and the MPI library do not agree; launch with the mpirun of "
                             "the MPI this program was built with"));
  }
  return comm;
}
#endif  // EGGROLL_HAVE_MPI

// ---- sockets ------------------------------------------------------------------------------------

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Moves exactly n bytes (write or read) on a non-blocking socket before the deadline.
// Returns "" on success, else why not ("timeout", "closed", or the error).
std::string io_all(int fd, void* buf, size_t n, const Deadline& dl, bool write) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t k = write ? ::send(fd, p + done, n - done, MSG_NOSIGNAL) : ::recv(fd, p + done, n - done, 0);
    if (k > 0) {
      done += static_cast<size_t>(k);
      continue;
    }
    if (k == 0 && !write) return "closed";
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return std::strerror(errno);
    if (dl.passed()) return "timeout";
    pollfd pfd{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    ::poll(&pfd, 1, dl.ms_left(100));
  }
  return "";
}

constexpr char kTcpMagic[8] = {'E', 'G', 'G', 'R', 'V', 'Z', '0', '1'};
constexpr uint64_t kMaxBlob = uint64_t(1) << 24;

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

Fd tcp_listen(int port, const std::string& where) {
  // Dual-stack IPv6 when the host has it, else IPv4; all interfaces either way.
  for (int family : {AF_INET6, AF_INET}) {
    Fd s(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0) continue;
    int one = 1, zero = 0;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (family == AF_INET6) {
      setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0) {
      if (errno == EADDRINUSE)
        throw InputError(where + ": cannot listen on port " + std::to_string(port) +
                         ": address already in use (another job on this MASTER_PORT?)");
      continue;
    }
    if (::listen(s.fd, 128) != 0) continue;
    set_nonblocking(s.fd);
    return s;
  }
  throw std::runtime_error(where + ": cannot listen on port " + std::to_string(port) + ": " + std::strerror(errno));
}

// One connection attempt to any address of host:port, bounded by the deadline.
Fd tcp_connect_once(const addrinfo* list, const Deadline& dl) {
  for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
    Fd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (s.fd < 0) continue;
    set_nonblocking(s.fd);
    int rc = ::connect(s.fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) continue;
    if (rc != 0) {
      pollfd pfd{s.fd, POLLOUT, 0};
      if (::poll(&pfd, 1, dl.ms_left(1000)) <= 0) continue;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) continue;
    }
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
  }
  return Fd();
}

using AddrList = std::unique_ptr<addrinfo, void (*)(addrinfo*)>;

// host:port resolved for connecting; InputError naming `where` when it cannot be.
AddrList tcp_resolve(const std::string& host, int port, const char* where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (gai != 0) throw InputError(std::string(where) + ": cannot resolve '" + host + "': " + gai_strerror(gai));
  return AddrList(list, ::freeaddrinfo);
}

constexpr const char* kNotConnected = "could not connect";

// One attempt to join rank 0: connect to any address of `list`, send the hello (magic, rank, size).
// Returns "" with the connection in `out`, kNotConnected (after a short pause, so that callers may
// simply retry), or io_all's error for the hello ("closed", "timeout", ...).
std::string tcp_try_hello(const addrinfo* list, int rank, int size, const Deadline& dl, Fd& out) {
  Fd s = tcp_connect_once(list, dl);
  if (s.fd < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, dl.ms_left())));
    return kNotConnected;
  }
  unsigned char hello[16];
  std::memcpy(hello, kTcpMagic, sizeof kTcpMagic);
  put_u32(hello + 8, static_cast<uint32_t>(rank));
  put_u32(hello + 12, static_cast<uint32_t>(size));
  std::string err = io_all(s.fd, hello, sizeof hello, dl, true);
  if (err.empty()) out = std::move(s);
  return err;
}

// Rank 0's side of a TCP join: accepts connections on `listener` until ranks 1..size-1 have each
// sent their hello (magic, rank, size); returns rank -> connection. Connections that are not ours
// are dropped; a size mismatch or a duplicate rank is an error; ranks missing at the deadline
// are named in the CommTimeout.
std::map<int, Fd> tcp_accept_ranks(Fd& listener, int port, int size, const Deadline& dl, double timeout_s,
                                   const char* where) {
  struct Peer {
    Fd fd;
    unsigned char hello[16] = {};
    size_t got = 0;
  };
  std::vector<Peer> pending;            // accepted, hello not complete
  std::map<int, Fd> joined;             // rank -> connection
  auto missing = [&](const std::map<int, Fd>& have) {
    std::vector<int> m;
    for (int r = 1; r < size; ++r)
      if (!have.count(r)) m.push_back(r);
    return m;
  };
  while (static_cast<int>(joined.size()) < size - 1) {
    if (dl.passed()) {
      std::vector<int> m = missing(joined);
      throw CommTimeout(std::string(where) + ": rank 0 listening on port " + std::to_string(port) + ": " +
                            ranks_phrase(m) + " did not connect within " + fmt_seconds(timeout_s),
                        m);
    }
    std::vector<pollfd> pfds;
    pfds.push_back({listener.fd, POLLIN, 0});
    for (Peer& p : pending) pfds.push_back({p.fd.fd, POLLIN, 0});
    ::poll(pfds.data(), pfds.size(), dl.ms_left(100));
    if (pfds[0].revents & POLLIN) {
      for (;;) {
        int c = ::accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) break;
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Peer p;
        p.fd = Fd(c);
        pending.push_back(std::move(p));
      }
    }
    for (size_t i = 0; i < pending.size();) {
      Peer& p = pending[i];
      bool drop = false;
      ssize_t k = ::recv(p.fd.fd, p.hello + p.got, sizeof p.hello - p.got, 0);
      if (k > 0) p.got += static_cast<size_t>(k);
      else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) drop = true;
      if (!drop && p.got == sizeof p.hello) {
        if (std::memcmp(p.hello, kTcpMagic, sizeof kTcpMagic) != 0) {
          drop = true;  // not one of ours (a port scanner, another protocol): ignore it
        } else {
          const int r = static_cast<int>(get_u32(p.hello + 8));
          const int s = static_cast<int>(get_u32(p.hello + 12));
          require(s == size, where,
                  "rank " + std::to_string(r) + " says the job has " + std::to_string(s) + " ranks, rank 0 says " +
                      std::to_string(size) + " (two jobs on one MASTER_PORT, or a launcher mismatch?)");
          require(r >= 1 && r < size, where, "a peer claims rank " + std::to_string(r) + " of " + std::to_string(size));
          require(!joined.count(r), where, "two processes claim rank " + std::to_string(r));
          joined.emplace(r, std::move(p.fd));
          pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
      }
      if (drop) {
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      ++i;
    }
  }
  return joined;
}

// ---- file helpers -------------------------------------------------------------------------------

bool read_whole_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return !f.bad();
}

// temp file in the same directory + rename: readers see all of it or nothing.
void write_file_atomic(const std::string& path, const std::string& data, const std::string& where) {
  std::random_device rd;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw InputError(where + ": cannot write " + tmp + ": " + std::strerror(errno));
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw InputError(where + ": cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    throw InputError(where + ": cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
}

std::string random_nonce() {
  std::random_device rd;
  char buf[20];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

void check_rendezvous_args(const char* where, int rank, int size, double timeout_s) {
  require(size >= 1, where, "size must be >= 1, got " + std::to_string(size));
  require(rank >= 0 && rank < size, where,
          "rank " + std::to_string(rank) + " out of range [0, " + std::to_string(size) + ")");
  require_timeout(timeout_s, where);
}

}  // namespace

// ---- launch detection -------------------------------------------------------------------------

LaunchInfo detect_launch() {
  struct Source {
    const char* name;
    const char* rank;
    std::vector<const char*> sizes;  // first one set wins
    const char* local;
  };
  const Source sources[] = {
      {"openmpi", "OMPI_COMM_WORLD_RANK", {"OMPI_COMM_WORLD_SIZE"}, "OMPI_COMM_WORLD_LOCAL_RANK"},
      {"pmi", "PMI_RANK", {"PMI_SIZE"}, "MPI_LOCALRANKID"},
      {"slurm", "SLURM_PROCID", {"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"}, "SLURM_LOCALID"},
      {"torch", "RANK", {"WORLD_SIZE"}, "LOCAL_RANK"},
  };
  for (const Source& s : sources) {
    LaunchInfo info;
    if (!env_int(s.rank, info.rank)) continue;
    const char* size_var = nullptr;
    for (const char* v : s.sizes)
      if (env_int(v, info.size)) {
        size_var = v;
        break;
      }
    if (!size_var) continue;
    if (!env_int(s.local, info.local_rank)) info.local_rank = info.rank;
    info.source = s.name;
    const std::string where = std::string("launch environment (") + s.name + ")";
    require(info.size >= 1, where, std::string(size_var) + "=" + std::to_string(info.size) + " must be >= 1");
    require(info.rank >= 0 && info.rank < info.size, where,
            std::string(s.rank) + "=" + std::to_string(info.rank) + " out of range [0, " + size_var + "=" +
                std::to_string(info.size) + ")");
    require(info.local_rank >= 0 && info.local_rank < info.size, where,
            std::string(s.local) + "=" + std::to_string(info.local_rank) + " out of range [0, " +
                std::to_string(info.size) + ")");
    return info;
  }
  return LaunchInfo{};
}

// ---- TCP rendezvous ------------------------------------------------------------------------------

std::string rendezvous_tcp(const std::string& host, int port, int rank, int size, const std::string& blob,
                           double timeout_s) {
  const char* where = "tcp rendezvous";
  check_rendezvous_args(where, rank, size, timeout_s);
  require(port >= 1 && port <= 65535, where, "port must be in 1..65535, got " + std::to_string(port));
  require(blob.size() <= kMaxBlob, where, "blob too large");
  if (size == 1) return blob;
  Deadline dl(timeout_s);
  const std::string addr = host + ":" + std::to_string(port);

  if (rank == 0) {
    Fd listener = tcp_listen(port, where);
    std::map<int, Fd> joined = tcp_accept_ranks(listener, port, size, dl, timeout_s, where);
    // Everyone is here: send [u64 length][blob], then collect a one-byte acknowledgement each.
    std::string msg(8, '\0');
    for (int i = 0; i < 8; ++i) msg[static_cast<size_t>(i)] = static_cast<char>((uint64_t(blob.size()) >> (56 - 8 * i)) & 0xff);
    msg += blob;
    std::vector<int> lost;
    for (auto& [r, fd] : joined)
      if (!io_all(fd.fd, msg.data(), msg.size(), dl, true).empty()) lost.push_back(r);
    for (auto& [r, fd] : joined) {
      if (std::find(lost.begin(), lost.end(), r) != lost.end()) continue;
      char ack = 0;
      if (!io_all(fd.fd, &ack, 1, dl, false).empty() || ack != 'K') lost.push_back(r);
    }
    if (!lost.empty()) {
      std::sort(lost.begin(), lost.end());
      throw CommTimeout(std::string(where) + ": rank 0: " + ranks_phrase(lost) +
                            " connected but did not take the id within " + fmt_seconds(timeout_s),
                        lost);
    }
    return blob;
  }

  // rank > 0: connect (retrying: rank 0 may not listen yet), hello, read the blob, acknowledge.
  const AddrList addrs = tcp_resolve(host, port, where);
  std::string last = "no connection";
  while (!dl.passed()) {
    Fd s;
    std::string err = tcp_try_hello(addrs.get(), rank, size, dl, s);
    if (err == kNotConnected) {
      last = err;
      continue;
    }
    unsigned char len_be[8];
    if (err.empty()) err = io_all(s.fd, len_be, sizeof len_be, dl, false);
    if (err == "closed")
      throw std::runtime_error(std::string(where) + ": rank " + std::to_string(rank) + ": rank 0 at " + addr +
                               " closed the connection (it rejected this rank or failed; see its log)");
    if (err == "timeout") break;
    if (!err.empty()) {
      last = err;
      continue;
    }
    uint64_t len = 0;
    for (unsigned char b : len_be) len = (len << 8) | b;
    if (len > kMaxBlob)
      throw std::runtime_error(std::string(where) + ": rank " + std::to_string(rank) + ": bad length from " + addr);
    std::string out(static_cast<size_t>(len), '\0');
    err = io_all(s.fd, out.data(), out.size(), dl, false);
    if (err.empty()) {
      char ack = 'K';
      io_all(s.fd, &ack, 1, dl, true);  // rank 0 reports a missing ack; nothing to do here
      return out;
    }
    if (err == "timeout") break;
    throw std::runtime_error(std::string(where) + ": rank " + std::to_string(rank) + ": lost the connection to " +
                             addr + ": " + err);
  }
  throw CommTimeout(std::string(where) + ": rank " + std::to_string(rank) + " got no id from rank 0 at " + addr +
                        " within " + fmt_seconds(timeout_s) + " (" + last +
                        "; is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?)",
                    {0});
}

// ---- file rendezvous ---------------------------------------------------------------------------

std::string rendezvous_file(const std::string& path, int rank, int size, const std::string& blob, double timeout_s) {
  const char* where = "file rendezvous";
  check_rendezvous_args(where, rank, size, timeout_s);
  require(!path.empty(), where, "rendezvous_path is empty");
  if (size == 1) return blob;
  Deadline dl(timeout_s);
  const std::string header = "EGGROLL-RENDEZVOUS 1\n";
  auto ack_path = [&](int r) { return path + ".ack." + std::to_string(r); };

  if (rank == 0) {
    const std::string nonce = random_nonce();
    for (int r = 1; r < size; ++r) std::remove(ack_path(r).c_str());  // left by an earlier run
    std::ostringstream body;
    body << header << "nonce " << nonce << "\nsize " << size << "\nbytes " << blob.size() << "\n";
    write_file_atomic(path, body.str() + blob, where);
    std::set<int> acked;
    while (static_cast<int>(acked.size()) < size - 1) {
      for (int r = 1; r < size; ++r) {
        if (acked.count(r)) continue;
        std::string text;
        if (!read_whole_file(ack_path(r), text)) continue;
        if (text == nonce) {
          acked.insert(r);
        } else if (!text.empty()) {
          std::remove(path.c_str());
          throw InputError(std::string(where) + ": rank " + std::to_string(r) + " read a stale " + path +
                           " (left by an earlier run?): use a fresh rendezvous_path for every run");
        }
      }
      if (static_cast<int>(acked.size()) == size - 1) break;
      if (dl.passed()) {
        std::vector<int> m;
        for (int r = 1; r < size; ++r)
          if (!acked.count(r)) m.push_back(r);
        std::remove(path.c_str());
        throw CommTimeout(std::string(where) + ": rank 0 wrote " + path + " but " + ranks_phrase(m) +
                              " did not acknowledge within " + fmt_seconds(timeout_s) +
                              " (not started, a different rendezvous_path, or no shared filesystem?)",
                          m);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20, dl.ms_left())));
    }
    for (int r = 1; r < size; ++r) std::remove(ack_path(r).c_str());
    std::remove(path.c_str());
    return blob;
  }

  std::string note;
  for (;;) {
    std::string text;
    if (read_whole_file(path, text) && text.compare(0, header.size(), header) == 0) {
      std::istringstream in(text.substr(header.size()));
      std::string k1, nonce, k2, k3;
      long long fsize = -1, bytes = -1;
      in >> k1 >> nonce >> k2 >> fsize >> k3 >> bytes;
      const auto body_at = static_cast<size_t>(in.tellg()) + header.size() + 1;
      if (in && k1 == "nonce" && k2 == "size" && k3 == "bytes" && bytes >= 0 &&
          body_at + static_cast<size_t>(bytes) == text.size()) {
        if (fsize == size) {
          write_file_atomic(ack_path(rank), nonce, where);
          return text.substr(body_at);
        }
        note = " (found one for " + std::to_string(fsize) + " ranks, not " + std::to_string(size) + ": stale?)";
      }
    }
    if (dl.passed())
      throw CommTimeout(std::string(where) + ": rank " + std::to_string(rank) + ": " + path +
                            " was not written by rank 0 within " + fmt_seconds(timeout_s) + note,
                        {0});
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20, dl.ms_left())));
  }
}

// ---- TCP communicator ---------------------------------------------------------------------------

namespace {

// Host memory over TCP sockets, no MPI: a star through rank 0. Rank 0 listens on the rendezvous
// port, every other rank connects once and keeps its connection for the whole run.
//   all_gather:     every rank sends its block to rank 0, rank 0 sends the whole result back.
//   all_reduce_sum: the same gather (in chunks of at most 64 MiB of gathered data); rank 0 sums
//                   the contributions in rank order (float accumulates in double), exactly as the
//                   mpi backend does, and sends the sum back: bit-identical to mpi and to 1 rank.
//   broadcast:      the root's bytes go to rank 0 (when the root is not 0), then to every rank.
//   barrier:        an all_gather of the collective's sequence number.
// Every message is [u64 sequence number][u64 payload bytes][payload]; a message of another
// collective is an error naming the rank. A peer that exits closes its connection, which is
// reported at once; one that is stuck is reported at the deadline (timeout_s per collective).
class TcpCommunicator final : public HostCommunicator {
 public:
  TcpCommunicator(int rank, int size, int local_rank, std::vector<Fd> peers, double timeout_s)
      : HostCommunicator("tcp", timeout_s), peers_(std::move(peers)) {
    rank_ = rank, size_ = size, local_rank_ = local_rank;
  }


  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override {
    check_usable("all_gather");
    const uint64_t seq = seq_++;
    char* out = static_cast<char*>(recv);
    char* mine = out + static_cast<size_t>(rank_) * bytes_per_rank;
    if (send != mine) std::memmove(mine, send, bytes_per_rank);
    if (size_ == 1) return;
    const size_t total = static_cast<size_t>(size_) * bytes_per_rank;
    Deadline dl(timeout_s_);
    if (rank_ == 0) {
      std::vector<char*> slots(static_cast<size_t>(size_));
      for (int p = 1; p < size_; ++p) slots[static_cast<size_t>(p)] = out + static_cast<size_t>(p) * bytes_per_rank;
      gather_at_root("all_gather", seq, slots, bytes_per_rank, dl);
      for (int p = 1; p < size_; ++p) send_to("all_gather", seq, p, out, total, dl);
    } else {
      send_to("all_gather", seq, 0, mine, bytes_per_rank, dl);
      recv_from_root("all_gather", seq, out, total, dl);
    }
  }

  void all_reduce_sum(float* data, size_t n) override { reduce_impl<float, double>(data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce_impl<double, double>(data, n); }

  void broadcast(void* data, size_t bytes, int root) override {
    const uint64_t seq = start_broadcast(root);
    if (size_ == 1 || bytes == 0) return;
    Deadline dl(timeout_s_);
    char* buf = static_cast<char*>(data);
    if (rank_ == 0) {
      if (root != 0) {
        std::vector<char*> slots(static_cast<size_t>(size_), nullptr);
        slots[static_cast<size_t>(root)] = buf;
        gather_at_root("broadcast", seq, slots, bytes, dl);
      }
      for (int p = 1; p < size_; ++p)
        if (p != root) send_to("broadcast", seq, p, buf, bytes, dl);
    } else if (rank_ == root) {
      send_to("broadcast", seq, 0, buf, bytes, dl);
    } else {
      recv_from_root("broadcast", seq, buf, bytes, dl);
    }
  }

 private:
  static constexpr size_t kHeader = 16;

  std::string describe(const char* op, uint64_t seq, const std::string& tail) const {
    return std::string(op) + " (collective #" + std::to_string(seq) + ", rank " + std::to_string(rank_) + " of " +
           std::to_string(size_) + "): " + tail;
  }

  [[noreturn]] void lost(const char* op, uint64_t seq, int peer, const std::string& why) {
    std::string tail;
    if (why == "timeout")
      tail = "timed out after " + fmt_seconds(timeout_s_) + ": lost rank " + std::to_string(peer) +
             ": no data arrived (dead, stuck, or in a different collective)";
    else if (why == "closed")
      tail = "lost rank " + std::to_string(peer) + ": it closed its connection (the process exited or was killed)";
    else
      tail = "lost rank " + std::to_string(peer) + ": " + why;
    fail(describe(op, seq, tail), {peer});
  }

  static void put_u64(unsigned char* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (56 - 8 * i));
  }
  static uint64_t get_u64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
  }

  void check_header(const char* op, uint64_t seq, int peer, const unsigned char* h, size_t bytes) {
    const uint64_t their_seq = get_u64(h), their_bytes = get_u64(h + 8);
    if (their_seq != seq || their_bytes != bytes)
      fail(describe(op, seq,
                    "rank " + std::to_string(peer) + " sent collective #" + std::to_string(their_seq) + " of " +
                        std::to_string(their_bytes) + " bytes, expected #" + std::to_string(seq) + " of " +
                        std::to_string(bytes) + " (the ranks called different sequences of collectives)"),
           {peer});
  }

  void send_to(const char* op, uint64_t seq, int peer, const void* data, size_t bytes, const Deadline& dl) {
    unsigned char h[kHeader];
    put_u64(h, seq);
    put_u64(h + 8, bytes);
    const int fd = peers_[static_cast<size_t>(peer)].fd;
    std::string err = io_all(fd, h, kHeader, dl, true);
    if (err.empty()) err = io_all(fd, const_cast<void*>(data), bytes, dl, true);
    if (!err.empty()) lost(op, seq, peer, err);
    bytes_sent_ += bytes;
  }

  void recv_from_root(const char* op, uint64_t seq, void* data, size_t bytes, const Deadline& dl) {
    unsigned char h[kHeader];
    const int fd = peers_[0].fd;
    std::string err = io_all(fd, h, kHeader, dl, false);
    if (err.empty()) check_header(op, seq, 0, h, bytes);
    if (err.empty()) err = io_all(fd, data, bytes, dl, false);
    if (!err.empty()) lost(op, seq, 0, err);
  }

  // Rank 0: receives `bytes` from every rank p with slots[p] != nullptr, from all of them at once
  // (poll), until all have arrived or the deadline; names the ranks that did not deliver.
  void gather_at_root(const char* op, uint64_t seq, const std::vector<char*>& slots, size_t bytes, const Deadline& dl) {
    struct In {
      int peer;
      unsigned char h[kHeader];
      size_t got = 0;  // header + payload bytes received
    };
    std::vector<In> in;
    for (int p = 1; p < size_; ++p)
      if (slots[static_cast<size_t>(p)]) in.push_back({p, {}, 0});
    size_t open = in.size();
    while (open > 0) {
      std::vector<pollfd> pfds;
      std::vector<In*> who;
      for (In& x : in)
        if (x.got < kHeader + bytes) {
          pfds.push_back({peers_[static_cast<size_t>(x.peer)].fd, POLLIN, 0});
          who.push_back(&x);
        }
      if (dl.passed()) {
        std::vector<int> late;
        for (In* x : who) late.push_back(x->peer);
        fail(describe(op, seq,
                      "timed out after " + fmt_seconds(timeout_s_) + ": lost " + ranks_phrase(late) +
                          ": no data arrived (dead, stuck, or in a different collective)"),
             late);
      }
      ::poll(pfds.data(), pfds.size(), dl.ms_left(100));
      for (In* x : who) {
        const int fd = peers_[static_cast<size_t>(x->peer)].fd;
        for (;;) {
          if (x->got >= kHeader + bytes) break;
          ssize_t k;
          if (x->got < kHeader) {
            k = ::recv(fd, x->h + x->got, kHeader - x->got, 0);
          } else {
            const size_t off = x->got - kHeader;
            k = ::recv(fd, slots[static_cast<size_t>(x->peer)] + off, bytes - off, 0);
          }
          if (k > 0) {
            const bool had_header = x->got >= kHeader;
            x->got += static_cast<size_t>(k);
            if (!had_header && x->got >= kHeader) check_header(op, seq, x->peer, x->h, bytes);
            if (x->got >= kHeader + bytes) --open;
            continue;
          }
          if (k == 0) lost(op, seq, x->peer, "closed");
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
          lost(op, seq, x->peer, std::strerror(errno));
        }
      }
    }
  }

  template <class T, class Acc>
  void reduce_impl(T* data, size_t n) {
    std::vector<T> gathered;  // rank 0 only
    for_each_reduce_chunk(data, n, [&](uint64_t seq, T* out, size_t len) {
      Deadline dl(timeout_s_);
      if (rank_ != 0) {
        send_to("all_reduce_sum", seq, 0, out, len * sizeof(T), dl);
        recv_from_root("all_reduce_sum", seq, out, len * sizeof(T), dl);
        return;
      }
      gathered.resize(len * static_cast<size_t>(size_));  // the first chunk is the largest
      std::vector<char*> slots(static_cast<size_t>(size_));
      for (int p = 1; p < size_; ++p)
        slots[static_cast<size_t>(p)] = reinterpret_cast<char*>(gathered.data() + static_cast<size_t>(p) * len);
      gather_at_root("all_reduce_sum", seq, slots, len * sizeof(T), dl);
      sum_in_rank_order<T, Acc>(out, out, gathered.data(), len, size_);  // rank 0's own contribution first
      for (int p = 1; p < size_; ++p) send_to("all_reduce_sum", seq, p, out, len * sizeof(T), dl);
    });
  }

  std::vector<Fd> peers_;  // rank 0: one connection per rank (index 0 unused); others: [0] = rank 0
};

// Connects to rank 0 and sends the hello, retrying until the deadline (rank 0 may not listen yet).
Fd tcp_join(const std::string& host, int port, int rank, int size, const Deadline& dl, double timeout_s,
            const char* where) {
  const AddrList addrs = tcp_resolve(host, port, where);
  while (!dl.passed()) {
    Fd s;
    if (tcp_try_hello(addrs.get(), rank, size, dl, s).empty()) return s;
  }
  throw CommTimeout(std::string(where) + ": rank " + std::to_string(rank) + " could not reach rank 0 at " + host + ":" +
                        std::to_string(port) + " within " + fmt_seconds(timeout_s) +
                        " (is rank 0 running, and is the address right?)",
                    {0});
}

// "host:port" (the last ':' splits; [v6] brackets are removed) or, when empty, MASTER_ADDR and
// MASTER_PORT.
std::pair<std::string, int> tcp_address(const std::string& spec, const char* where) {
  std::string host = "127.0.0.1";
  int port = 29500;
  if (spec.empty()) {
    if (const char* h = std::getenv("MASTER_ADDR"); h && *h) host = h;
    env_int("MASTER_PORT", port);
  } else {
    const size_t colon = spec.rfind(':');
    require(colon != std::string::npos && colon > 0 && colon + 1 < spec.size(), where,
            "rendezvous_path '" + spec + "' is not host:port");
    host = spec.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string ps = spec.substr(colon + 1);
    char* end = nullptr;
    errno = 0;
    const long p = std::strtol(ps.c_str(), &end, 10);
    require(errno == 0 && end && !*end && p >= 1 && p <= 65535, where,
            "rendezvous_path '" + spec + "': port must be in 1..65535");
    port = static_cast<int>(p);
  }
  require(port >= 1 && port <= 65535, where, "MASTER_PORT must be in 1..65535, got " + std::to_string(port));
  return {host, port};
}

}  // namespace

std::unique_ptr<Communicator> make_tcp_communicator(const std::string& host, int port, int rank, int size,
                                                    int local_rank, double timeout_s) {
  const char* where = "tcp communicator";
  check_rendezvous_args(where, rank, size, timeout_s);
  require(port >= 1 && port <= 65535, where, "port must be in 1..65535, got " + std::to_string(port));
  std::vector<Fd> peers(static_cast<size_t>(rank == 0 ? size : 1));
  if (size > 1) {
    Deadline dl(timeout_s);
    if (rank == 0) {
      Fd listener = tcp_listen(port, where);
      std::map<int, Fd> joined = tcp_accept_ranks(listener, port, size, dl, timeout_s, where);
      for (auto& [r, fd] : joined) peers[static_cast<size_t>(r)] = std::move(fd);
    } else {
      peers[0] = tcp_join(host, port, rank, size, dl, timeout_s, where);
    }
    // A first barrier: no rank returns before every rank has joined.
    auto comm = std::make_unique<TcpCommunicator>(rank, size, local_rank, std::move(peers), timeout_s);
    comm->barrier();
    return comm;
  }
  return std::make_unique<TcpCommunicator>(rank, size, local_rank, std::move(peers), timeout_s);
}

// ---- factory -------------------------------------------------------------------------------------

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

namespace {
Registry<DeviceCommFactory>& device_comms() {
  static Registry<DeviceCommFactory> r;
  return r;
}
const DeviceCommFactory* device_comm(const std::string& name) { return device_comms().find(name); }
}  // namespace

void register_device_comm(const std::string& name, DeviceCommFactory factory) {
  device_comms().add(name, std::move(factory));
}

bool comm_backend_available(const std::string& backend) {
  if (backend == "single" || backend == "tcp") return true;
#ifdef EGGROLL_HAVE_MPI
  if (backend == "mpi") return true;
#endif
  return backend == "nccl" && device_comm("nccl");
}

std::unique_ptr<Communicator> make_communicator(const CommOptions& options) {
  const char* where = "communicator";
  require_timeout(options.timeout_s, where);
  std::string backend = options.backend;
  require(backend == "auto" || backend == "single" || backend == "mpi" || backend == "tcp" || backend == "nccl", where,
          "unknown backend '" + backend + "' (auto, single, mpi, tcp or nccl)");
  const LaunchInfo launch = detect_launch();
  if (backend == "auto") {
    if (launch.size <= 1) {
      backend = "single";
    } else if (comm_backend_available("mpi")) {
      backend = "mpi";
    } else {
      throw InputError(std::string(where) + ": the launcher (" + launch.source + ") reports " +
                       std::to_string(launch.size) +
                       " tasks but this build has no MPI; rebuild with MPI, or use backend tcp (or nccl with "
                       "rendezvous tcp or file)");
    }
  }
  if (backend == "single") return make_single_communicator();
  if (backend == "tcp") {
    const auto [host, port] = tcp_address(options.rendezvous_path, where);
    return make_tcp_communicator(host, port, launch.rank, launch.size, launch.local_rank, options.timeout_s);
  }
  if (!comm_backend_available(backend))
    throw InputError(std::string(where) + ": backend '" + backend + "' is not built in (" +
                     (backend == "mpi" ? "CMake found no MPI" : "needs CUDA and NCCL") + ")");
#ifdef EGGROLL_HAVE_MPI
  if (backend == "mpi") return make_mpi(options.timeout_s, launch);
#endif
  if (backend == "nccl") {
    const DeviceCommFactory& make_nccl = *device_comm("nccl");  // available: checked above
    const std::string& rv = options.rendezvous;
    require(rv == "mpi" || rv == "tcp" || rv == "file", where, "unknown rendezvous '" + rv + "' (mpi, tcp or file)");
    const double t = options.timeout_s;
    if (rv == "mpi") {
#ifdef EGGROLL_HAVE_MPI
      std::shared_ptr<MpiCommunicator> mpi = make_mpi(t, launch);
      auto exchange = [mpi](const std::string& blob) {
        std::string b = blob;
        uint64_t n = b.size();
        mpi->broadcast(&n, sizeof n, 0);
        b.resize(static_cast<size_t>(n));
        mpi->broadcast(b.data(), b.size(), 0);
        return b;
      };
      // A broken NCCL communicator must also keep MPI_Finalize (which may wait for a dead
      // peer) from running at exit.
      return make_nccl(mpi->rank(), mpi->size(), mpi->local_rank(), exchange, t,
                       [] { mpi_state().broken = true; });
#else
      throw InputError(std::string(where) + ": rendezvous 'mpi' needs MPI, which this build lacks; use tcp or file");
#endif
    }
    if (rv == "tcp") {
      std::string host = "127.0.0.1";
      if (const char* h = std::getenv("MASTER_ADDR"); h && *h) host = h;
      int port = 29500;
      env_int("MASTER_PORT", port);
      require(port >= 1 && port <= 65535, where, "MASTER_PORT must be in 1..65535, got " + std::to_string(port));
      auto exchange = [=](const std::string& blob) { return rendezvous_tcp(host, port, launch.rank, launch.size, blob, t); };
      return make_nccl(launch.rank, launch.size, launch.local_rank, exchange, t, {});
    }
    require(!options.rendezvous_path.empty(), where, "rendezvous 'file' needs rendezvous_path");
    const std::string path = options.rendezvous_path;
    auto exchange = [=](const std::string& blob) { return rendezvous_file(path, launch.rank, launch.size, blob, t); };
    return make_nccl(launch.rank, launch.size, launch.local_rank, exchange, t, {});
  }
  throw InputError(std::string(where) + ": backend '" + backend + "' is not built in");
}

}  // namespace eggroll
