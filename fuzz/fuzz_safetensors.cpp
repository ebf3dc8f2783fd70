// libFuzzer target: the safetensors reader on arbitrary bytes.
// Every input must either load or throw InputError; anything else is a finding.
#include <cstddef>
#include <cstdint>

#include "core/checkpoint.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    eggroll::StateDict sd = eggroll::load_safetensors_bytes(data, size, "fuzz.safetensors");
    for (const eggroll::Tensor& t : sd.tensors)
      if (t.data.size() != t.nbytes()) __builtin_trap();
  } catch (const eggroll::InputError&) {
  }
  return 0;
}
