#include "core/dtype.h"

namespace eggroll {

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "f32" || s == "fp32" || s == "float32") { out = DType::F32; return true; }
  if (s == "bf16" || s == "bfloat16") { out = DType::BF16; return true; }
  if (s == "f16" || s == "fp16" || s == "float16") { out = DType::F16; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { e++; man <<= 1; } while (!(man & 0x400u));
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exp = int32_t((u >> 23) & 0xff);
  uint32_t man = u & 0x7fffffu;
  if (exp == 255) return uint16_t(sign | 0x7c00u | (man ? 0x200u : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return uint16_t(sign | 0x7c00u);  // overflow -> inf
  if (e <= 0) {                                   // subnormal or zero
    if (e < -10) return uint16_t(sign);
    man |= 0x800000u;
    uint32_t shift = uint32_t(14 - e);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | uint32_t(e) << 10 | man >> 13;
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;  // may carry into exponent: correct
  return uint16_t(half);
}

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::BF16:
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(uint16_t(b[2 * i] | b[2 * i + 1] << 8));
      break;
    case DType::F16:
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(uint16_t(b[2 * i] | b[2 * i + 1] << 8));
      break;
  }
}

void convert_from_f32(DType t, const float* src, void* dst, size_t n) {
  auto* b = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h = t == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
        b[2 * i] = uint8_t(h);
        b[2 * i + 1] = uint8_t(h >> 8);
      }
      break;
  }
}

}  // namespace eggroll
