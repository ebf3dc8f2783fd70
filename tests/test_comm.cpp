// Communicator tests that need neither MPI ranks nor a GPU: the single backend, launch
// detection, the factory's argument checks, and the TCP / file rendezvous between threads.
// (MPI: tests/mpi_comm_main.cpp under mpirun; NCCL: tests/nccl_comm_main.cpp on a GPU.)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include "core/comm.h"
#include "core/error.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

// Clears every launcher variable detect_launch() reads; restores them on destruction.
struct EnvGuard {
  std::map<std::string, std::optional<std::string>> saved;
  EnvGuard() {
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK",
                          "PMI_SIZE", "MPI_LOCALRANKID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS",
                          "SLURM_NPROCS", "SLURM_LOCALID", "RANK", "WORLD_SIZE", "LOCAL_RANK"}) {
      const char* old = std::getenv(v);
      saved[v] = old ? std::optional<std::string>(old) : std::nullopt;
      ::unsetenv(v);
    }
  }
  ~EnvGuard() {
    for (auto& [k, v] : saved) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
  }
  void set(const char* k, const char* v) { ::setenv(k, v, 1); }
};

// A port nobody listens on right now (bind to 0, read it back, close).
int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(s);
  return ntohs(a.sin_port);
}

std::string binary_blob() {
  std::string b(128, '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 37 + 11) & 0xff);  // zeros and high bytes too
  b[5] = '\0';
  return b;
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() /
               ("eggroll_comm_test_" + std::to_string(::getpid()) + "_" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  fs::create_directories(d);
  return d;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("single communicator: trivial collectives", "[comm]") {
  auto c = make_single_communicator();
  CHECK(c->rank() == 0);
  CHECK(c->size() == 1);
  CHECK(c->backend() == "single");
  const double src[3] = {1.5, -2.0, 3.25};
  double dst[3] = {0, 0, 0};
  c->all_gather(src, sizeof src, dst);
  CHECK(dst[0] == 1.5);
  CHECK(dst[2] == 3.25);
  c->all_gather(dst, sizeof dst, dst);  // in place
  CHECK(dst[1] == -2.0);
  float f[2] = {1.f, 2.f};
  c->all_reduce_sum(f, 2);
  CHECK(f[0] == 1.f);
  CHECK(f[1] == 2.f);
  double d[1] = {0.1};
  c->all_reduce_sum(d, 1);
  CHECK(d[0] == 0.1);
  int x = 7;
  c->broadcast(&x, sizeof x, 0);
  CHECK(x == 7);
  CHECK_THROWS_AS(c->broadcast(&x, sizeof x, 1), InputError);
  c->barrier();
  CHECK(c->bytes_sent() == 0);
}

TEST_CASE("make_communicator: choices and argument checks", "[comm]") {
  EnvGuard env;
  CommOptions o;
  o.backend = "single";
  CHECK(make_communicator(o)->backend() == "single");
  o.backend = "auto";  // no launcher variables: one process
  CHECK(make_communicator(o)->backend() == "single");
  o.backend = "gloo";
  CHECK_THROWS_AS(make_communicator(o), InputError);
  o.backend = "single";
  o.timeout_s = 0;
  CHECK_THROWS_AS(make_communicator(o), InputError);
  o.timeout_s = 10;
  CHECK(comm_backend_available("single"));
  CHECK_FALSE(comm_backend_available("gloo"));
  if (!comm_backend_available("nccl")) {
    o.backend = "nccl";
    CHECK_THROWS_WITH(make_communicator(o), Catch::Contains("not built in"));
  }
  if (!comm_backend_available("mpi")) {
    env.set("SLURM_PROCID", "0");
    env.set("SLURM_NTASKS", "2");
    o.backend = "auto";
    CHECK_THROWS_WITH(make_communicator(o), Catch::Contains("no MPI"));
  }
}

TEST_CASE("detect_launch: launcher variables", "[comm]") {
  EnvGuard env;
  SECTION("nothing set: rank 0 of 1") {
    LaunchInfo l = detect_launch();
    CHECK(l.rank == 0);
    CHECK(l.size == 1);
    CHECK(l.local_rank == 0);
    CHECK(l.source == "none");
  }
  SECTION("Open MPI") {
    env.set("OMPI_COMM_WORLD_RANK", "3");
    env.set("OMPI_COMM_WORLD_SIZE", "8");
    env.set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
    LaunchInfo l = detect_launch();
    CHECK(l.rank == 3);
    CHECK(l.size == 8);
    CHECK(l.local_rank == 1);
    CHECK(l.source == "openmpi");
  }
  SECTION("Open MPI wins over Slurm (mpirun inside an allocation)") {
    env.set("SLURM_PROCID", "0");
    env.set("SLURM_NTASKS", "16");
    env.set("OMPI_COMM_WORLD_RANK", "1");
    env.set("OMPI_COMM_WORLD_SIZE", "2");
    LaunchInfo l = detect_launch();
    CHECK(l.source == "openmpi");
    CHECK(l.size == 2);
    CHECK(l.local_rank == 1);  // no local rank given: the global rank
  }
  SECTION("PMI (MPICH / Hydra)") {
    env.set("PMI_RANK", "2");
    env.set("PMI_SIZE", "4");
    LaunchInfo l = detect_launch();
    CHECK(l.source == "pmi");
    CHECK(l.rank == 2);
    CHECK(l.size == 4);
    CHECK(l.local_rank == 2);
    env.set("MPI_LOCALRANKID", "0");
    CHECK(detect_launch().local_rank == 0);
  }
  SECTION("Slurm: step task count preferred over the allocation's") {
    env.set("SLURM_PROCID", "5");
    env.set("SLURM_NTASKS", "8");
    env.set("SLURM_LOCALID", "1");
    LaunchInfo l = detect_launch();
    CHECK(l.source == "slurm");
    CHECK(l.rank == 5);
    CHECK(l.size == 8);
    CHECK(l.local_rank == 1);
    env.set("SLURM_STEP_NUM_TASKS", "6");
    CHECK(detect_launch().size == 6);
  }
  SECTION("torchrun style") {
    env.set("RANK", "1");
    env.set("WORLD_SIZE", "2");
    env.set("LOCAL_RANK", "0");
    LaunchInfo l = detect_launch();
    CHECK(l.source == "torch");
    CHECK(l.rank == 1);
    CHECK(l.size == 2);
    CHECK(l.local_rank == 0);
  }
  SECTION("an incomplete set is ignored") {
    env.set("PMI_RANK", "1");  // no PMI_SIZE
    CHECK(detect_launch().source == "none");
  }
  SECTION("malformed values are input errors naming the variable") {
    env.set("SLURM_PROCID", "x1");
    env.set("SLURM_NTASKS", "2");
    CHECK_THROWS_WITH(detect_launch(), Catch::Contains("SLURM_PROCID"));
    env.set("SLURM_PROCID", "2");  // rank >= size
    CHECK_THROWS_AS(detect_launch(), InputError);
    env.set("SLURM_PROCID", "0");
    env.set("SLURM_NTASKS", "0");
    CHECK_THROWS_AS(detect_launch(), InputError);
    env.set("SLURM_NTASKS", "2");
    env.set("SLURM_LOCALID", "-1");
    CHECK_THROWS_AS(detect_launch(), InputError);
  }
}

TEST_CASE("tcp rendezvous: rank 0's blob reaches every rank", "[comm][rendezvous]") {
  const int port = free_port();
  const std::string blob = binary_blob();
  const int size = 3;
  std::vector<std::future<std::string>> peers;
  for (int r = 1; r < size; ++r)
    peers.push_back(std::async(std::launch::async, [=] { return rendezvous_tcp("127.0.0.1", port, r, size, "", 10); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the others start first: they must retry
  // a stray connection speaking another protocol is ignored
  auto stray = std::async(std::launch::async, [=] {
    for (int i = 0; i < 100; ++i) {
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(port));
      if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const char junk[16] = "GET / HTTP/1.0\n";
        (void)!::write(s, junk, sizeof junk);
        ::close(s);
        return;
      }
      ::close(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const std::string got0 = rendezvous_tcp("127.0.0.1", port, 0, size, blob, 10);
  CHECK(got0 == blob);
  for (auto& f : peers) CHECK(f.get() == blob);
  stray.get();
  // size 1: nothing to exchange, no socket
  CHECK(rendezvous_tcp("127.0.0.1", port, 0, 1, "abc", 1) == "abc");
}

TEST_CASE("tcp rendezvous: timeouts and mismatches fail fast and clearly", "[comm][rendezvous]") {
  SECTION("nobody serves: a 1 s timeout fails in about 1 s") {
    const int port = free_port();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      rendezvous_tcp("127.0.0.1", port, 1, 2, "", 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(std::string(e.what()).find("rank 0") != std::string::npos);
      CHECK(e.missing_ranks == std::vector<int>{0});
    }
    const double dt = seconds_since(t0);
    CHECK(dt >= 0.9);
    CHECK(dt < 2.0);
  }
  SECTION("nobody connects: rank 0 names the missing ranks") {
    const int port = free_port();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      rendezvous_tcp("127.0.0.1", port, 0, 3, "id", 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(std::string(e.what()).find("ranks 1, 2 did not connect") != std::string::npos);
      CHECK(e.missing_ranks == std::vector<int>{1, 2});
    }
    CHECK(seconds_since(t0) < 2.0);
  }
  SECTION("one of two peers missing") {
    const int port = free_port();
    auto peer = std::async(std::launch::async, [=] { return rendezvous_tcp("127.0.0.1", port, 2, 3, "", 5); });
    try {
      rendezvous_tcp("127.0.0.1", port, 0, 3, "id", 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(e.missing_ranks == std::vector<int>{1});
    }
    CHECK_THROWS(peer.get());  // rank 0 gave up and closed the connection
  }
  SECTION("size mismatch: input error on rank 0, closed connection on the peer") {
    const int port = free_port();
    auto peer = std::async(std::launch::async, [=] { return rendezvous_tcp("127.0.0.1", port, 1, 3, "", 5); });
    CHECK_THROWS_WITH(rendezvous_tcp("127.0.0.1", port, 0, 2, "id", 5), Catch::Contains("says the job has 3 ranks"));
    CHECK_THROWS_WITH(peer.get(), Catch::Contains("closed the connection"));
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(rendezvous_tcp("127.0.0.1", 0, 0, 2, "", 1), InputError);
    CHECK_THROWS_AS(rendezvous_tcp("127.0.0.1", 29500, 2, 2, "", 1), InputError);
    CHECK_THROWS_AS(rendezvous_tcp("127.0.0.1", 29500, 0, 2, "", -1), InputError);
  }
}

TEST_CASE("file rendezvous: rank 0's blob reaches every rank, files are cleaned up", "[comm][rendezvous]") {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "nccl.id").string();
  const std::string blob = binary_blob();
  const int size = 4;
  std::vector<std::future<std::string>> peers;
  for (int r = 1; r < size; ++r)
    peers.push_back(std::async(std::launch::async, [=] { return rendezvous_file(path, r, size, "", 10); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(rendezvous_file(path, 0, size, blob, 10) == blob);
  for (auto& f : peers) CHECK(f.get() == blob);
  CHECK(fs::is_empty(dir));  // id file, temp files and acknowledgements all removed
  // again at the same path: works (nothing stale left behind)
  auto again = std::async(std::launch::async, [=] { return rendezvous_file(path, 1, 2, "", 10); });
  CHECK(rendezvous_file(path, 0, 2, "second", 10) == "second");
  CHECK(again.get() == "second");
  fs::remove_all(dir);
}

TEST_CASE("file rendezvous: timeouts and stale files", "[comm][rendezvous]") {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "nccl.id").string();
  SECTION("nobody writes: a 1 s timeout fails in about 1 s") {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      rendezvous_file(path, 1, 2, "", 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(std::string(e.what()).find("was not written by rank 0") != std::string::npos);
      CHECK(e.missing_ranks == std::vector<int>{0});
    }
    const double dt = seconds_since(t0);
    CHECK(dt >= 0.9);
    CHECK(dt < 2.0);
  }
  SECTION("nobody reads: rank 0 names the missing ranks and removes its file") {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      rendezvous_file(path, 0, 3, "id", 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(e.missing_ranks == std::vector<int>{1, 2});
      CHECK(std::string(e.what()).find("ranks 1, 2 did not acknowledge") != std::string::npos);
    }
    CHECK(seconds_since(t0) < 2.0);
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("a file for another job size is ignored as stale") {
    {
      std::ofstream f(path, std::ios::binary);
      f << "EGGROLL-RENDEZVOUS 1\nnonce 0123\nsize 5\nbytes 3\nold";
    }
    auto peer = std::async(std::launch::async, [=] { return rendezvous_file(path, 1, 2, "", 10); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(rendezvous_file(path, 0, 2, "new", 10) == "new");
    CHECK(peer.get() == "new");
  }
  SECTION("a missing directory is an input error on rank 0") {
    CHECK_THROWS_AS(rendezvous_file((dir / "no" / "such" / "id").string(), 0, 2, "id", 1), InputError);
  }
  fs::remove_all(dir);
}

// ---- tcp communicator (host memory over sockets, no MPI) ------------------------------------------

namespace {
// Runs fn(rank, comm) on `size` threads, each with its own tcp communicator on `port`.
template <class F>
void on_tcp_ranks(int size, int port, double timeout_s, F fn) {
  std::vector<std::future<void>> ranks;
  for (int r = 0; r < size; ++r)
    ranks.push_back(std::async(std::launch::async, [=] {
      auto comm = make_tcp_communicator("127.0.0.1", port, r, size, r, timeout_s);
      fn(r, *comm);
    }));
  for (auto& f : ranks) f.get();
}
}  // namespace

TEST_CASE("tcp communicator: collectives between 3 ranks, sums in rank order", "[comm][tcp]") {
  const int P = 3;
  const size_t n = 1000;
  // float contributions whose sum depends on the order: the result must be the rank-order sum
  // accumulated in double, bit for bit, on every rank (what the mpi backend computes)
  auto contribution = [](int r, size_t i) { return static_cast<float>((r + 1) * 1e7 * (i % 2 ? 1 : -1) + 0.1 * r + i * 1e-3); };
  std::vector<float> expect(n);
  for (size_t i = 0; i < n; ++i) {
    double acc = contribution(0, i);
    for (int r = 1; r < P; ++r) acc += contribution(r, i);
    expect[i] = static_cast<float>(acc);
  }
  std::vector<std::vector<float>> sums(P);
  std::vector<std::vector<double>> dsums(P);
  std::vector<std::vector<int>> gathered(P);
  std::vector<std::string> bcast0(P), bcast2(P);
  std::vector<uint64_t> sent(P);
  on_tcp_ranks(P, free_port(), 10, [&](int r, Communicator& c) {
    CHECK(c.backend() == "tcp");
    CHECK(c.rank() == r);
    CHECK(c.size() == P);
    std::vector<int> g(3 * P);
    const int mine[3] = {r, 10 * r, -r};
    c.all_gather(mine, sizeof mine, g.data());
    gathered[static_cast<size_t>(r)] = g;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = contribution(r, i);
    c.all_reduce_sum(x.data(), n);
    sums[static_cast<size_t>(r)] = x;
    std::vector<double> d = {1.0 * r, 0.5, -2.0 * r};
    c.all_reduce_sum(d.data(), d.size());
    dsums[static_cast<size_t>(r)] = d;
    std::string b0 = r == 0 ? binary_blob() : std::string(128, 'x');
    c.broadcast(b0.data(), b0.size(), 0);
    bcast0[static_cast<size_t>(r)] = b0;
    std::string b2 = r == 2 ? std::string("from rank 2") : std::string(11, '?');
    c.broadcast(b2.data(), b2.size(), 2);
    bcast2[static_cast<size_t>(r)] = b2;
    c.barrier();
    c.all_reduce_sum(static_cast<float*>(nullptr), 0);  // empty: still collective, no traffic
    c.barrier();
    sent[static_cast<size_t>(r)] = c.bytes_sent();
  });
  for (int r = 0; r < P; ++r) {
    const auto& g = gathered[static_cast<size_t>(r)];
    for (int p = 0; p < P; ++p) {
      CHECK(g[static_cast<size_t>(3 * p)] == p);
      CHECK(g[static_cast<size_t>(3 * p + 1)] == 10 * p);
      CHECK(g[static_cast<size_t>(3 * p + 2)] == -p);
    }
    CHECK(std::memcmp(sums[static_cast<size_t>(r)].data(), expect.data(), n * sizeof(float)) == 0);
    CHECK(dsums[static_cast<size_t>(r)] == std::vector<double>{3.0, 1.5, -6.0});
    CHECK(bcast0[static_cast<size_t>(r)] == binary_blob());
    CHECK(bcast2[static_cast<size_t>(r)] == "from rank 2");
    CHECK(sent[static_cast<size_t>(r)] > 0);
  }
}

TEST_CASE("tcp communicator: a large all_reduce in several chunks", "[comm][tcp]") {
  const int P = 2;
  const size_t n = (size_t(64) << 20) / (sizeof(float) * P) * 2 + 7;  // 2 full chunks and a tail
  std::vector<int> bad(P, -1);
  on_tcp_ranks(P, free_port(), 30, [&](int r, Communicator& c) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>((i % 1000) * (r + 1));
    c.all_reduce_sum(x.data(), n);
    int wrong = 0;
    for (size_t i = 0; i < n; ++i) wrong += x[i] != static_cast<float>((i % 1000) * 3);
    bad[static_cast<size_t>(r)] = wrong;
  });
  CHECK(bad == std::vector<int>{0, 0});
}

TEST_CASE("tcp communicator: lost and stuck ranks are named, nobody hangs", "[comm][tcp]") {
  SECTION("a rank that exits: rank 0 names it at once, the others then lose rank 0") {
    const int port = free_port();
    std::vector<std::string> err(3);
    std::vector<std::vector<int>> missing(3);
    std::vector<double> secs(3, -1);
    on_tcp_ranks(3, port, 20, [&](int r, Communicator& c) {
      c.barrier();
      if (r == 2) return;  // its communicator closes: the process "died"
      const auto t0 = std::chrono::steady_clock::now();
      int v = r, all[3];
      try {
        c.all_gather(&v, sizeof v, all);
      } catch (const CommTimeout& e) {
        err[static_cast<size_t>(r)] = e.what();
        missing[static_cast<size_t>(r)] = e.missing_ranks;
      }
      secs[static_cast<size_t>(r)] = seconds_since(t0);
      if (r == 0) CHECK_THROWS_WITH(c.barrier(), Catch::Contains("broken by an earlier failure"));
    });
    CHECK(missing[0] == std::vector<int>{2});
    CHECK(err[0].find("lost rank 2") != std::string::npos);
    CHECK(err[0].find("closed its connection") != std::string::npos);
    CHECK(missing[1] == std::vector<int>{0});
    CHECK(err[1].find("lost rank 0") != std::string::npos);
    CHECK(secs[0] < 5.0);  // well before the 20 s timeout
    CHECK(secs[1] < 5.0);
  }
  SECTION("a stuck rank: the collective times out after timeout_s, naming it") {
    const int port = free_port();
    std::string err;
    std::vector<int> missing;
    double secs = -1;
    std::promise<void> done;
    auto stuck_until = done.get_future().share();
    on_tcp_ranks(2, port, 1.0, [&](int r, Communicator& c) {
      if (r == 1) {
        stuck_until.wait();  // alive, connected, but never calls the collective
        return;
      }
      const auto t0 = std::chrono::steady_clock::now();
      try {
        c.barrier();
      } catch (const CommTimeout& e) {
        err = e.what();
        missing = e.missing_ranks;
      }
      secs = seconds_since(t0);
      done.set_value();
    });
    CHECK(missing == std::vector<int>{1});
    CHECK(err.find("timed out after 1 s: lost rank 1") != std::string::npos);
    CHECK(secs >= 0.9);
    CHECK(secs < 3.0);
  }
  SECTION("joining: missing ranks and an absent rank 0 time out, naming them") {
    const int port = free_port();
    try {
      make_tcp_communicator("127.0.0.1", port, 0, 3, 0, 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(e.missing_ranks == std::vector<int>{1, 2});
    }
    try {
      make_tcp_communicator("127.0.0.1", free_port(), 1, 2, 1, 1.0);
      FAIL("no exception");
    } catch (const CommTimeout& e) {
      CHECK(e.missing_ranks == std::vector<int>{0});
      CHECK(std::string(e.what()).find("could not reach rank 0") != std::string::npos);
    }
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(make_tcp_communicator("127.0.0.1", 0, 0, 2, 0, 1), InputError);
    CHECK_THROWS_AS(make_tcp_communicator("127.0.0.1", 29500, 2, 2, 0, 1), InputError);
    CHECK_THROWS_AS(make_tcp_communicator("127.0.0.1", 29500, 0, 2, 0, 0), InputError);
  }
}

TEST_CASE("make_communicator: backend tcp", "[comm][tcp]") {
  EnvGuard env;
  CommOptions o;
  o.backend = "tcp";
  CHECK(comm_backend_available("tcp"));
  auto one = make_communicator(o);  // no launcher: one rank, no socket
  CHECK(one->backend() == "tcp");
  CHECK(one->size() == 1);
  float x = 2.5f;
  one->all_reduce_sum(&x, 1);
  CHECK(x == 2.5f);
  env.set("SLURM_PROCID", "1");
  env.set("SLURM_NTASKS", "2");
  o.timeout_s = 0.5;
  o.rendezvous_path = "127.0.0.1:0";
  CHECK_THROWS_WITH(make_communicator(o), Catch::Contains("port must be in 1..65535"));
  o.rendezvous_path = "no-port";
  CHECK_THROWS_WITH(make_communicator(o), Catch::Contains("is not host:port"));
  o.rendezvous_path = "127.0.0.1:" + std::to_string(free_port());  // rank 1, nobody listens
  CHECK_THROWS_AS(make_communicator(o), CommTimeout);
}
