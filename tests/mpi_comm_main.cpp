// MPI communicator checks, run by ctest under mpirun (label "mpi"; see CMakeLists.txt):
//   mpi_comm_main basic           all_gather / all_reduce_sum / broadcast / barrier results,
//                                 bytes_sent accounting, bit-identical all_reduce on every rank.
//   mpi_comm_main kill <seconds>  the last rank SIGKILLs itself before a collective; the others
//                                 must throw CommTimeout naming it within <seconds> (exit 3).
//   mpi_comm_main stall <seconds> the same with a rank that hangs (sleeps) instead of dying.
//   mpi_comm_main mismatch        run WITHOUT mpirun but with SLURM_NTASKS=2: make_communicator
//                                 must refuse with an InputError that explains srun without PMI.
//   mpi_comm_main nopmi           the same inside a Slurm job step (SLURM_STEP_ID set, no PMIX_RANK
//                                 or PMI_FD): refused before MPI_Init, naming the missing PMI.
// Exit status: 0 ok, 1 failed check, 2 InputError, 3 CommTimeout.
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"

using namespace eggroll;

namespace {

int g_failures = 0;
int g_rank = -1;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "mpi_comm_main: rank %d: FAILED: %s\n", g_rank, what.c_str());
  }
}

uint64_t fnv1a(const void* p, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Rank r's contribution to element i: varied signs and magnitudes (1e-3 .. 1e3), so the order
// of summation matters in floating point. Cheap: a hash, not transcendental functions.
// noinline: inlined, GCC would contract `u * scale + acc` into an FMA in the reference sum
// below and the reference would no longer be the plain rank-order sum.
[[gnu::noinline]] double contribution(int r, size_t i) {
  static const double scale[7] = {1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3};
  uint64_t z = (static_cast<uint64_t>(i) << 8) + static_cast<uint64_t>(r) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53 - 0.5;
  return u * scale[(i + static_cast<size_t>(r)) % 7];
}

template <class T>
void check_all_reduce(Communicator& c, size_t n, uint64_t& expected_bytes, const char* name) {
  const int P = c.size(), me = c.rank();
  std::vector<T> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<T>(contribution(me, i));
  c.all_reduce_sum(data.data(), n);
  expected_bytes += static_cast<uint64_t>(P - 1) * n * sizeof(T);
  // The documented order: contributions of ranks 0, 1, ..., P-1, accumulated in double.
  size_t mismatches = 0;
  double worst_rel = 0;
  for (size_t i = 0; i < n; ++i) {
    double acc = static_cast<double>(static_cast<T>(contribution(0, i)));
    double exact = acc;
    for (int r = 1; r < P; ++r) {
      acc += static_cast<double>(static_cast<T>(contribution(r, i)));
      exact += static_cast<double>(static_cast<T>(contribution(r, i)));
    }
    if (data[i] != static_cast<T>(acc)) ++mismatches;
    double mag = 0;
    for (int r = 0; r < P; ++r) mag += std::fabs(contribution(r, i));
    if (mag > 0) worst_rel = std::max(worst_rel, std::fabs(static_cast<double>(data[i]) - exact) / mag);
  }
  check(mismatches == 0, std::string(name) + ": " + std::to_string(mismatches) + " elements differ from the rank-order sum");
  check(worst_rel <= 1e-6, std::string(name) + ": relative error " + std::to_string(worst_rel));
  // bit-identical on every rank
  uint64_t h = fnv1a(data.data(), n * sizeof(T));
  std::vector<uint64_t> hs(static_cast<size_t>(P));
  c.all_gather(&h, sizeof h, hs.data());
  expected_bytes += static_cast<uint64_t>(P - 1) * sizeof h;
  for (int r = 0; r < P; ++r) check(hs[static_cast<size_t>(r)] == h, std::string(name) + ": rank " + std::to_string(r) + " got different bits");
}

int run_basic() {
  CommOptions o;
  o.backend = "auto";
  o.timeout_s = 60;
  auto c = make_communicator(o);
  const int P = c->size(), me = c->rank();
  g_rank = me;
  const LaunchInfo launch = detect_launch();
  check(c->backend() == "mpi", "auto under mpirun chose " + c->backend());
  check(P >= 2, "size " + std::to_string(P));
  check(launch.size == P && launch.rank == me, "detect_launch disagrees with MPI");
  uint64_t expected = 0;

  // all_gather: rank order
  int mine[3] = {me, 10 * me, -me - 1};
  std::vector<int> all(3 * static_cast<size_t>(P), -99);
  c->all_gather(mine, sizeof mine, all.data());
  expected += static_cast<uint64_t>(P - 1) * sizeof mine;
  for (int r = 0; r < P; ++r) {
    const int* a = &all[3 * static_cast<size_t>(r)];
    check(a[0] == r && a[1] == 10 * r && a[2] == -r - 1, "all_gather block of rank " + std::to_string(r));
  }
  check(c->bytes_sent() == expected, "bytes_sent after all_gather");

  // all_gather in place, and a large one (rendezvous protocol, not eager)
  std::vector<double> fit(static_cast<size_t>(P), -1.0);
  fit[static_cast<size_t>(me)] = 0.5 * me;
  c->all_gather(&fit[static_cast<size_t>(me)], sizeof(double), fit.data());
  expected += static_cast<uint64_t>(P - 1) * sizeof(double);
  for (int r = 0; r < P; ++r) check(fit[static_cast<size_t>(r)] == 0.5 * r, "in-place all_gather");
  const size_t big = (1u << 20) + 3;
  std::vector<unsigned char> bsend(big), brecv(big * static_cast<size_t>(P));
  for (size_t i = 0; i < big; ++i) bsend[i] = static_cast<unsigned char>((i * 7 + static_cast<size_t>(me) * 13) & 0xff);
  c->all_gather(bsend.data(), big, brecv.data());
  expected += static_cast<uint64_t>(P - 1) * big;
  for (int r = 0; r < P; ++r) {
    size_t bad = 0;
    for (size_t i = 0; i < big; ++i)
      bad += brecv[static_cast<size_t>(r) * big + i] != static_cast<unsigned char>((i * 7 + static_cast<size_t>(r) * 13) & 0xff);
    check(bad == 0, "large all_gather block of rank " + std::to_string(r));
  }

  // all_reduce_sum: small, and one spanning several 64 MiB chunks of gathered data
  check_all_reduce<float>(*c, 1001, expected, "all_reduce float small");
  check_all_reduce<double>(*c, 257, expected, "all_reduce double small");
  check_all_reduce<float>(*c, 9'000'000, expected, "all_reduce float chunked");
  check_all_reduce<double>(*c, 4'500'000, expected, "all_reduce double chunked");
  float empty = 1.f;
  c->all_reduce_sum(&empty, 0);
  check(empty == 1.f, "all_reduce of 0 elements touched data");

  // broadcast from the last rank and from rank 0
  std::vector<char> msg(100'000);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = me == P - 1 ? static_cast<char>('a' + i % 26) : 0;
  c->broadcast(msg.data(), msg.size(), P - 1);
  if (me == P - 1) expected += static_cast<uint64_t>(P - 1) * msg.size();
  size_t bad = 0;
  for (size_t i = 0; i < msg.size(); ++i) bad += msg[i] != static_cast<char>('a' + i % 26);
  check(bad == 0, "broadcast from rank " + std::to_string(P - 1));
  uint64_t seed = me == 0 ? 0x1234abcdull : 0;
  c->broadcast(&seed, sizeof seed, 0);
  if (me == 0) expected += static_cast<uint64_t>(P - 1) * sizeof seed;
  check(seed == 0x1234abcdull, "broadcast from rank 0");
  bool threw = false;
  try {
    c->broadcast(&seed, sizeof seed, P);
  } catch (const InputError&) {
    threw = true;
  }
  check(threw, "broadcast with root out of range must throw InputError");

  // barrier: everyone arrives; the slowest rank holds the others back
  const auto t0 = std::chrono::steady_clock::now();
  if (me == 0) usleep(200'000);
  c->barrier();
  expected += static_cast<uint64_t>(P - 1) * sizeof(uint64_t);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(waited >= 0.15, "barrier returned after " + std::to_string(waited) + " s, before rank 0 arrived");

  check(c->bytes_sent() == expected,
        "bytes_sent " + std::to_string(c->bytes_sent()) + ", expected " + std::to_string(expected));

  // every rank's failures, summed (deterministic all_reduce of a double)
  double failures = g_failures;
  c->all_reduce_sum(&failures, 1);
  if (me == 0)
    std::printf("mpi_comm_main: %d ranks, bytes_sent on rank 0: %llu, failed checks on all ranks: %g\n", P,
                static_cast<unsigned long long>(c->bytes_sent()), failures);
  return failures == 0 ? 0 : 1;
}

int run_kill(double timeout_s, bool stall) {
  CommOptions o;
  o.backend = "mpi";
  o.timeout_s = timeout_s;
  auto c = make_communicator(o);
  const int P = c->size(), me = c->rank();
  g_rank = me;
  for (int step = 0; step < 3; ++step) {
    std::vector<float> update(1000, static_cast<float>(me));
    c->all_reduce_sum(update.data(), update.size());
    if (step == 2 && me == P - 1) {
      std::fprintf(stderr, "mpi_comm_main: rank %d: %s before step %d's all_gather\n", me,
                   stall ? "hanging" : "killing myself", step);
      std::fflush(stderr);
      if (stall) sleep(3600);
      raise(SIGKILL);
    }
    double fitness = me + 0.25 * step;
    std::vector<double> all(static_cast<size_t>(P));
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c->all_gather(&fitness, sizeof fitness, all.data());
    } catch (const CommTimeout& e) {
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "mpi_comm_main: rank %d: CommTimeout after %.2f s: %s\n", me, dt, e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "mpi_comm_main: rank %d: FAILED: no CommTimeout although rank %d died\n", me, P - 1);
  return 1;
}

int run_mismatch() {
  g_rank = 0;
  CommOptions o;
  for (const char* backend : {"auto", "mpi"}) {
    o.backend = backend;
    try {
      auto c = make_communicator(o);
      check(false, std::string(backend) + ": make_communicator accepted SLURM_NTASKS=2 with a 1-process MPI world");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      std::printf("mpi_comm_main: %s: InputError as expected: %s\n", backend, msg.c_str());
      check(msg.find("reports 2 tasks") != std::string::npos, "message lacks the task count");
      check(msg.find("MPI sees 1") != std::string::npos, "message lacks MPI's size");
      check(msg.find("srun --mpi=pmix") != std::string::npos, "message lacks the srun hint");
      check(msg.find("rendezvous tcp or file") != std::string::npos, "message lacks the rendezvous hint");
    }
  }
  return g_failures ? 1 : 0;
}

int run_nopmi() {
  g_rank = 0;
  CommOptions o;
  for (const char* backend : {"auto", "mpi"}) {
    o.backend = backend;
    try {
      auto c = make_communicator(o);
      check(false, std::string(backend) + ": make_communicator accepted a 2-task job step started without PMI");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      std::printf("mpi_comm_main: %s: InputError as expected: %s\n", backend, msg.c_str());
      check(msg.find("reports 2 tasks") != std::string::npos, "message lacks the task count");
      check(msg.find("without PMI (SLURM_MPI_TYPE=none)") != std::string::npos, "message lacks the PMI type");
      check(msg.find("srun --mpi=pmix") != std::string::npos, "message lacks the srun hint");
      check(msg.find("backend tcp") != std::string::npos, "message lacks the tcp hint");
    }
  }
  int initialized = 1;
  MPI_Initialized(&initialized);
  check(!initialized, "MPI_Init ran before the check");
  return g_failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "basic";
  try {
    int rc;
    if (mode == "basic")
      rc = run_basic();
    else if (mode == "kill")
      rc = run_kill(argc > 2 ? std::atof(argv[2]) : 5.0, false);
    else if (mode == "stall")
      rc = run_kill(argc > 2 ? std::atof(argv[2]) : 5.0, true);
    else if (mode == "mismatch")
      rc = run_mismatch();
    else if (mode == "nopmi")
      rc = run_nopmi();
    else {
      std::fprintf(stderr, "usage: mpi_comm_main basic | kill <timeout_s> | stall <timeout_s> | mismatch | nopmi\n");
      return 1;
    }
    if (g_failures && rc == 0) rc = 1;
    return rc;
  } catch (const CommTimeout& e) {
    std::fprintf(stderr, "mpi_comm_main: rank %d: CommTimeout: %s\n", g_rank, e.what());
    return 3;
  } catch (const InputError& e) {
    std::fprintf(stderr, "mpi_comm_main: rank %d: error: %s\n", g_rank, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_comm_main: rank %d: error: %s\n", g_rank, e.what());
    return 1;
  }
}
