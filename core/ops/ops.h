#pragma once
// Every CPU reference op (namespace eggroll::ref), by group: the definition each backend's
// kernels are checked against (tests/test_backend_ops.cpp).
#include "core/ops/layer.h"   // embedding, norms, token shifts, pointwise ops, gathers
#include "core/ops/linear.h"  // the shared products and the update GEMM
#include "core/ops/noise.h"   // low-rank corrections, vector noise, noise cache, Philox
#include "core/ops/sample.h"  // argmax / sampling
#include "core/ops/update.h"  // ES update operands, vector gradients, SGD / Adam
#include "core/ops/wkv7.h"    // the WKV-7 recurrence
