#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <sched.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace eggroll {

namespace {

thread_local bool tl_in_parallel = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

void futex_wait(std::atomic<uint32_t>& a, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  a.wait(expected);
#endif
}

void futex_wake_all(std::atomic<uint32_t>& a) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&a), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0);
#else
  a.notify_all();
#endif
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || x < 0 || x > 1000000) return fallback;
  return int(x);
}

int default_threads() {
  int n = env_int("EGGROLL_NUM_THREADS", 0);
  if (n <= 0) n = env_int("OMP_NUM_THREADS", 0);
  if (n <= 0) n = affinity_cpus();
  return std::clamp(n, 1, 4096);
}

bool use_openmp() {
  static const bool v = [] {
    const char* e = std::getenv("EGGROLL_PARALLEL");
    return e && std::strcmp(e, "openmp") == 0;
  }();
  return v;
}

// Spin budget of a waiting thread before it sleeps.
std::chrono::nanoseconds spin_budget() {
  static const auto v = std::chrono::nanoseconds(int64_t(env_int("EGGROLL_SPIN_US", 50)) * 1000);
  return v;
}

constexpr uint32_t kClosed = 0xffffffffu;  // chunk index of a finished job

class Pool {
 public:
  ~Pool() { stop_workers(); }

  // Runs the job; false when the pool is busy (another thread's job), so the caller runs inline.
  bool run(int threads, int64_t n, int64_t grain, uint32_t chunks, detail::ChunkFn fn, void* ctx) {
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    if (int(workers_.size()) != threads - 1) {
      stop_workers();
      start_workers(threads - 1);
    }
    // job fields, then publish (seq_cst: see claim())
    n_.store(n, std::memory_order_relaxed);
    grain_.store(grain, std::memory_order_relaxed);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    nchunks_.store(chunks, std::memory_order_seq_cst);
    const uint32_t e = ++epoch_;
    word_.store(uint64_t(e) << 32, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      wake_seq_.fetch_add(1, std::memory_order_seq_cst);
      futex_wake_all(wake_seq_);
    }
    tl_in_parallel = true;
    claim(e);
    tl_in_parallel = false;
    // wait for the chunks other threads still run: spin, then sleep
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned it = 1; done_.load(std::memory_order_acquire) < chunks; it++) {
      cpu_relax();
      if (it % 64 == 0 && std::chrono::steady_clock::now() - t0 > spin_budget()) {
        caller_waiting_.store(1, std::memory_order_seq_cst);
        const uint32_t d = done_.load(std::memory_order_seq_cst);
        if (d < chunks) futex_wait(done_, d);
        caller_waiting_.store(0, std::memory_order_relaxed);
      }
    }
    word_.store((uint64_t(e) << 32) | kClosed, std::memory_order_seq_cst);
    std::exception_ptr err = error_;
    error_ = nullptr;
    lock.unlock();
    if (err) std::rethrow_exception(err);
    return true;
  }

 private:
  // Claims and runs chunks of job e until none is left.
  void claim(uint32_t e) {
    uint64_t w = word_.load(std::memory_order_seq_cst);
    for (;;) {
      if (uint32_t(w >> 32) != e) return;
      const uint32_t i = uint32_t(w);
      // nchunks_ is stored before the job is published and the job is closed (index kClosed)
      // before the next one's nchunks_ is stored; all seq_cst, so a claim that succeeds below
      // saw the word of job e still open and i < its chunk count.
      const uint32_t chunks = nchunks_.load(std::memory_order_seq_cst);
      if (i >= chunks) return;
      if (!word_.compare_exchange_weak(w, w + 1, std::memory_order_seq_cst, std::memory_order_seq_cst)) continue;
      // chunk i of job e is ours; the job's fields stay put until done_ counts it
      if (!failed_.load(std::memory_order_relaxed)) {
        const int64_t n = n_.load(std::memory_order_relaxed), g = grain_.load(std::memory_order_relaxed);
        const int64_t b = int64_t(i) * g, end = std::min(n, b + g);
        try {
          fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), b, end);
        } catch (...) {
          std::lock_guard<std::mutex> g2(error_mu_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      const uint32_t d = done_.fetch_add(1, std::memory_order_seq_cst) + 1;
      if (d == chunks && caller_waiting_.load(std::memory_order_seq_cst)) futex_wake_all(done_);
      w = word_.load(std::memory_order_seq_cst);
    }
  }

  void worker_main(uint32_t seen) {
    tl_in_parallel = true;
    for (;;) {
      uint64_t w = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (unsigned it = 1;; it++) {
        if (stop_.load(std::memory_order_relaxed)) return;
        w = word_.load(std::memory_order_acquire);
        if (uint32_t(w >> 32) != seen) break;
        cpu_relax();
        if (it % 64 == 0 && std::chrono::steady_clock::now() - t0 > spin_budget()) {
          const uint32_t s = wake_seq_.load(std::memory_order_seq_cst);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          if (uint32_t(word_.load(std::memory_order_seq_cst) >> 32) == seen && !stop_.load(std::memory_order_seq_cst))
            futex_wait(wake_seq_, s);
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          t0 = std::chrono::steady_clock::now();
        }
      }
      seen = uint32_t(w >> 32);
      claim(seen);
    }
  }

  void start_workers(int count) {
    stop_.store(false);
    const uint32_t seen = epoch_;
    for (int i = 0; i < count; i++) workers_.emplace_back([this, seen] { worker_main(seen); });
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_seq_cst);
    wake_seq_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(wake_seq_);
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex busy_;  // one job at a time
  std::vector<std::thread> workers_;
  uint32_t epoch_ = 0;                      // written under busy_ only
  std::atomic<uint64_t> word_{0};           // epoch << 32 | next chunk to claim
  std::atomic<uint32_t> nchunks_{0};
  std::atomic<uint32_t> done_{0};           // chunks finished (futex word of the waiting caller)
  std::atomic<uint32_t> wake_seq_{0};       // futex word of sleeping workers
  std::atomic<int> sleepers_{0};
  std::atomic<int> caller_waiting_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> n_{0}, grain_{1};
  std::atomic<detail::ChunkFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<bool> failed_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

std::atomic<int> g_threads{0};  // 0 = not yet resolved

Pool& pool() {
  static Pool p;
  return p;
}

void run_openmp(int threads, int64_t n, int64_t grain, int64_t chunks, detail::ChunkFn fn, void* ctx) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; c++) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      fn(ctx, c * grain, std::min(n, (c + 1) * grain));
    } catch (...) {
      std::lock_guard<std::mutex> g(mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_num_threads(int n) { g_threads.store(n > 0 ? std::min(n, 4096) : default_threads()); }

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

bool in_parallel() { return tl_in_parallel; }

const char* parallel_backend() { return use_openmp() ? "openmp" : "pool"; }

namespace detail {

void run_chunks(int64_t n, int64_t grain, ChunkFn fn, void* ctx) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks >= int64_t(kClosed)) {  // more chunks than the counter holds: bigger chunks
    grain = (n + int64_t(kClosed) - 2) / (int64_t(kClosed) - 1);
    chunks = (n + grain - 1) / grain;
  }
  const int threads = num_threads();
  if (chunks > 1 && threads > 1 && !tl_in_parallel) {
    if (use_openmp()) {
      if (!omp_in_parallel()) {
        run_openmp(threads, n, grain, chunks, fn, ctx);
        return;
      }
    } else if (pool().run(threads, n, grain, uint32_t(chunks), fn, ctx)) {
      return;
    }
  }
  // inline: one thread, nested, the pool busy with another thread's job, or a single chunk
  for (int64_t c = 0; c < chunks; c++) fn(ctx, c * grain, std::min(n, (c + 1) * grain));
}

}  // namespace detail
}  // namespace eggroll
