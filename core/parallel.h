#pragma once
// Our own thread pool for the CPU hot paths (GEMM, the step's ops, noise, update, loading).
//
// parallel_for(n, grain, fn) runs fn(i) for every i in [0, n) exactly once. The range is cut into
// chunks of `grain` indices (the last one shorter); the pool's workers and the calling thread claim
// chunks one at a time from an atomic counter, so a thread that a competing process has
// descheduled holds up at most the one chunk it claimed, never a fixed share of the work. The
// caller returns when every chunk has run.
//
// Waiting: an idle worker spins for a bounded time (EGGROLL_SPIN_US, default 50 us) and then
// sleeps on a futex; the caller, once no chunk is left to claim, waits for the chunks still
// running the same way. Work published while workers sleep wakes them, but the caller never
// waits for a worker to start: it runs the chunks itself.
//
// - Exceptions thrown by fn (on any thread) propagate to the caller: the first one is rethrown
//   after every started chunk has finished; chunks not yet started are skipped.
// - A parallel_for called from inside fn (nested), or while another thread's parallel_for holds
//   the pool, runs inline on the calling thread (no deadlock, same results).
// - Work is never split by thread: which thread runs a chunk does not change what it computes,
//   so results do not depend on the thread count.
//
// Thread count: set_num_threads(n) (run.threads, --threads); 0 = the default, which is
// EGGROLL_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs in this process's affinity mask.
// EGGROLL_PARALLEL=openmp runs the same chunks with `omp parallel for schedule(dynamic, 1)`
// instead (for comparisons; the default is `pool`).
#include <cstdint>
#include <type_traits>
#include <utility>

namespace eggroll {

// Sets the total thread count (the caller included); 0 = the default above.
void set_num_threads(int n);
// The thread count parallel_for uses (>= 1).
int num_threads();
// CPUs in this process's affinity mask (>= 1).
int affinity_cpus();
// True on a pool worker and on a caller inside its own parallel_for.
bool in_parallel();
// "pool" or "openmp" (EGGROLL_PARALLEL, read once).
const char* parallel_backend();

namespace detail {
using ChunkFn = void (*)(void* ctx, int64_t begin, int64_t end);
void run_chunks(int64_t n, int64_t grain, ChunkFn fn, void* ctx);
}  // namespace detail

// fn(begin, end) for consecutive chunks [c * grain, min(n, (c + 1) * grain)).
template <class F>
void parallel_for_chunks(int64_t n, int64_t grain, F&& fn) {
  using Fn = std::remove_reference_t<F>;
  detail::run_chunks(
      n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// fn(i) for every i in [0, n), in chunks of `grain` indices.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  parallel_for_chunks(n, grain, [&fn](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) fn(i);
  });
}

}  // namespace eggroll
