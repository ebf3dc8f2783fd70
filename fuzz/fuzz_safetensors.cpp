// libFuzzer target: the safetensors reader on arbitrary bytes.
// Every input must either load or throw InputError, and the header-only reader must agree
// with the load (same verdict, same error, same tensors); anything else is a finding.
#include <cstddef>
#include <cstdint>

#include "core/checkpoint.h"
#include "fuzz/header_agrees.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  eggroll::fuzz::check_header_agrees(data, size, "fuzz.safetensors", eggroll::load_safetensors_bytes,
                                     eggroll::read_safetensors_header_bytes);
  return 0;
}
