#pragma once
// What the AVX-512F kernels of the CPU backend share (core/noise_simd.cpp, core/wkv7_simd.cpp):
// each function is compiled with a target attribute (EGGROLL_AVX512), so a build without
// -march=native has it too, and is picked at run time when the CPU has AVX-512F and its
// environment switch is not "0".
// GCC 12 reports its own _mm512_undefined_*() placeholders inside the intrinsics as
// uninitialized when they are inlined into target("avx512f") functions (without -march=native);
// include this header first in such a file, before <immintrin.h> is seen.
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC only
#endif
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#define EGGROLL_AVX512 __attribute__((target("avx512f")))

namespace eggroll {

inline bool cpu_has_avx512f() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
// False when the environment variable `name` is "0" (the scalar reference forced).
inline bool simd_env_allows(const char* name) {
  const char* e = std::getenv(name);
  return !(e && std::strcmp(e, "0") == 0);
}

}  // namespace eggroll
