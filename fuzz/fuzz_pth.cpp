// libFuzzer target: the .pth reader (zip + pickle + tensor views) on arbitrary bytes.
// Every input must either load or throw InputError; anything else is a finding.
// Built by scripts/fuzz.sh (CRC checks are off in fuzz builds so that mutations reach the pickle).
#include <cstddef>
#include <cstdint>

#include "core/checkpoint.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    eggroll::StateDict sd = eggroll::load_pth_bytes(data, size, "fuzz.pth");
    for (const eggroll::Tensor& t : sd.tensors)
      if (t.data.size() != t.nbytes()) __builtin_trap();
  } catch (const eggroll::InputError&) {
  }
  return 0;
}
