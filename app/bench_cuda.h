#pragma once
// `eggroll bench es` options, and its CUDA path (`--backend cuda`, app/bench_cuda.cpp).
#include <cstdint>
#include <string>
#include <vector>

namespace eggroll {

struct BenchEsOptions {
  std::string backend = "cpu";  // cpu | cuda
  std::string preset = "0.1b", population = "64,256,1024";
  std::string dtype;  // matrices: f32 | bf16; empty = f32 on the CPU, bf16 on the device
  int tokens = 16, openes_members = 2, rank = 1, threads = 0, repeat = 2;
  int openes_tokens = 0;  // 0: --tokens (each OpenES member decodes as many tokens as an EGGROLL member)
  int competing_load = 0;  // cpu: busy processes started for the loaded measurements (app/cmd_bench.cpp)
  std::string interleave = "runs";  // cpu: runs (one variant's whole decode at a time) | steps (app/cmd_bench.cpp)
  double sigma = 1e-3;
};

// Population decode throughput on the current CUDA device, random weights made on the device:
// pure batched inference, EGGROLL (noise regenerated / kept), OpenES at batch 1, plus the card's
// measured GEMM and copy ceilings; one JSON line per population on stdout, progress on stderr.
// InputError (exit 2) when built without CUDA, when no device is present, or when the largest
// population does not fit (the memory plan, app/plan.h, is printed to stderr first).
void bench_es_cuda(const BenchEsOptions& o, const std::vector<int64_t>& populations);

}  // namespace eggroll
