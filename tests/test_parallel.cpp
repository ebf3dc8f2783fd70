// The thread pool (core/parallel.h): coverage of every index, exceptions, nesting, thread counts,
// concurrent callers, a competing busy load, and thread-count-invariant GEMM results.
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/gemm.h"
#include "core/parallel.h"

using namespace eggroll;

namespace {
// Restores the default thread count when a test ends.
struct ThreadsGuard {
  explicit ThreadsGuard(int n) { set_num_threads(n); }
  ~ThreadsGuard() { set_num_threads(0); }
};

void check_each_once(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  for (auto& h : hits) h = 0;
  std::atomic<int64_t> bad{0};
  parallel_for(n, grain, [&](int64_t i) {
    if (i < 0 || i >= n) bad++;
    else hits[size_t(i)]++;
  });
  REQUIRE(bad == 0);
  int64_t wrong = 0;
  for (auto& h : hits) wrong += h != 1;
  REQUIRE(wrong == 0);
}

// Busy threads outside the pool, spinning until destroyed.
struct BusyThreads {
  std::atomic<bool> stop{false};
  std::vector<std::thread> t;
  explicit BusyThreads(int n) {
    for (int i = 0; i < n; i++)
      t.emplace_back([this] {
        volatile uint64_t x = 0;
        while (!stop.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~BusyThreads() {
    stop = true;
    for (auto& th : t) th.join();
  }
};
}  // namespace

TEST_CASE("parallel_for visits every index exactly once", "[parallel]") {
  for (int threads : {1, 2, 3, 8}) {
    ThreadsGuard g(threads);
    REQUIRE(num_threads() == threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 65, 1000, 100003})
      for (int64_t grain : {1, 2, 3, 64, 1000, 1 << 20}) {
        INFO("threads " << threads << " n " << n << " grain " << grain);
        check_each_once(n, grain);
      }
  }
}

TEST_CASE("parallel_for_chunks hands out consecutive chunks of the grain", "[parallel]") {
  ThreadsGuard g(3);
  const int64_t n = 1000, grain = 7;
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> chunks;
  parallel_for_chunks(n, grain, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> l(mu);
    chunks.insert({b, e});
  });
  REQUIRE(int64_t(chunks.size()) == (n + grain - 1) / grain);
  int64_t next = 0;
  for (auto [b, e] : chunks) {
    REQUIRE(b == next);
    REQUIRE(e == std::min(n, b + grain));
    next = e;
  }
  REQUIRE(next == n);
  // negative and zero counts do nothing; a zero or negative grain means 1
  int calls = 0;
  parallel_for(-5, 1, [&](int64_t) { calls++; });
  parallel_for(0, 1, [&](int64_t) { calls++; });
  REQUIRE(calls == 0);
  check_each_once(50, 0);
  check_each_once(50, -3);
}

TEST_CASE("exceptions thrown by the work reach the caller", "[parallel]") {
  for (int threads : {1, 2, 4}) {
    ThreadsGuard g(threads);
    INFO("threads " << threads);
    // one failing index
    REQUIRE_THROWS_WITH(parallel_for(1000, 1,
                                     [](int64_t i) {
                                       if (i == 617) throw std::runtime_error("index 617 failed");
                                     }),
                        "index 617 failed");
    // every index fails: one of them is rethrown, nothing hangs
    REQUIRE_THROWS_AS(parallel_for(200, 1, [](int64_t) { throw std::logic_error("all fail"); }), std::logic_error);
    // the pool works normally afterwards
    check_each_once(5000, 3);
  }
}

TEST_CASE("nested parallel_for runs inline and completes", "[parallel]") {
  ThreadsGuard g(4);
  REQUIRE_FALSE(in_parallel());
  const int64_t outer = 40, inner = 300;
  std::vector<std::atomic<int>> hits(static_cast<size_t>(outer * inner));
  for (auto& h : hits) h = 0;
  std::atomic<int> not_inside{0};
  parallel_for(outer, 1, [&](int64_t i) {
    if (!in_parallel()) not_inside++;
    const auto self = std::this_thread::get_id();
    std::atomic<int> other_thread{0};
    parallel_for(inner, 1, [&](int64_t j) {
      if (std::this_thread::get_id() != self) other_thread++;
      hits[size_t(i * inner + j)]++;
    });
    if (other_thread) not_inside += 1000;  // the nested call must stay on its thread
  });
  REQUIRE(not_inside == 0);
  REQUIRE_FALSE(in_parallel());
  for (auto& h : hits) REQUIRE(h == 1);
  // an exception from the nested level propagates through both
  REQUIRE_THROWS_WITH(parallel_for(8, 1,
                                   [](int64_t) {
                                     parallel_for(8, 1, [](int64_t j) {
                                       if (j == 5) throw std::runtime_error("inner");
                                     });
                                   }),
                      "inner");
}

TEST_CASE("one thread runs everything on the caller; more threads share the work", "[parallel]") {
  {
    ThreadsGuard g(1);
    const auto self = std::this_thread::get_id();
    std::atomic<int> elsewhere{0};
    parallel_for(10000, 1, [&](int64_t) {
      if (std::this_thread::get_id() != self) elsewhere++;
    });
    REQUIRE(elsewhere == 0);
  }
  {
    // slow chunks: the caller cannot finish them all before the workers join in
    ThreadsGuard g(3);
    std::mutex mu;
    std::set<std::thread::id> ids;
    parallel_for(200, 1, [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::lock_guard<std::mutex> l(mu);
      ids.insert(std::this_thread::get_id());
    });
    REQUIRE(ids.size() >= 2);
    REQUIRE(ids.size() <= 3);
  }
  REQUIRE(affinity_cpus() >= 1);
  set_num_threads(0);
  REQUIRE(num_threads() >= 1);
}

TEST_CASE("concurrent callers from different threads both complete", "[parallel]") {
  ThreadsGuard g(2);
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < 3; c++)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; rep++) {
        const int64_t n = 1 + rep * 13;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h = 0;
        parallel_for(n, 2, [&](int64_t i) { hits[size_t(i)]++; });
        for (auto& h : hits)
          if (h != 1) failures++;
      }
    });
  for (auto& t : callers) t.join();
  REQUIRE(failures == 0);
}

TEST_CASE("the pool completes under busy competing threads", "[parallel]") {
  ThreadsGuard g(2);
  BusyThreads busy(2);  // more busy threads than this 2-core machine has cores left for us
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 300; rep++) {
    const int64_t n = 64 + rep;
    std::vector<double> out(static_cast<size_t>(n));
    parallel_for(n, 1, [&](int64_t i) {
      double s = 0;
      for (int k = 0; k < 2000; k++) s += double(i) * 1e-3 + k * 1e-6;
      out[size_t(i)] = s;
    });
    for (int64_t i = 0; i < n; i++) {
      double s = 0;
      for (int k = 0; k < 2000; k++) s += double(i) * 1e-3 + k * 1e-6;
      REQUIRE(out[size_t(i)] == s);
    }
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("300 loaded parallel_for calls took " << sec << " s");
  REQUIRE(sec < 60.0);
}

TEST_CASE("the GEMM gives identical bits for every thread count", "[parallel][gemm]") {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  const int64_t rows = 13, in = 700, out = 1000;  // 16 tiles, two k blocks
  std::vector<float> X(size_t(rows * in)), W(size_t(out * in));
  for (auto& x : X) x = d(gen);
  for (auto& w : W) w = d(gen);
  std::vector<float> ref;
  for (int threads : {1, 2, 3, 7}) {
    ThreadsGuard g(threads);
    std::vector<float> Y(size_t(rows * out)), Z(size_t(rows * out));
    gemm_xwt(X.data(), W.data(), Y.data(), rows, in, out);
    const PackedWeights P = pack_weights(W.data(), in, out);
    gemm_packed(X.data(), P, Z.data(), rows);
    if (ref.empty()) ref = Y;
    INFO("threads " << threads);
    REQUIRE(std::memcmp(Y.data(), ref.data(), Y.size() * sizeof(float)) == 0);
    REQUIRE(std::memcmp(Z.data(), ref.data(), Z.size() * sizeof(float)) == 0);
  }
}
