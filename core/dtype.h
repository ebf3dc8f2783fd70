#pragma once
// Element types of stored tensors and the scalar conversions between them.
#include <cstdint>
#include <cstring>
#include <string>

namespace eggroll {

enum class DType : uint8_t { F32, BF16, F16 };

inline size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
  }
  return "?";
}
// Accepts f32/float32/fp32, bf16/bfloat16, f16/fp16/float16. Returns false on anything else.
bool parse_dtype(const std::string& s, DType& out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type t at src (little-endian) to float.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);
// Converts n floats to type t (little-endian) at dst.
void convert_from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace eggroll
