// libFuzzer target: the .pth reader (zip + pickle + tensor views) on arbitrary bytes.
// Every input must either load or throw InputError, and the header-only reader must agree
// with the load (same verdict, same error, same tensors); anything else is a finding.
// Built by scripts/fuzz.sh (CRC checks are off in fuzz builds so that mutations reach the pickle).
#include <cstddef>
#include <cstdint>

#include "core/checkpoint.h"
#include "fuzz/header_agrees.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  eggroll::fuzz::check_header_agrees(data, size, "fuzz.pth", eggroll::load_pth_bytes, eggroll::read_pth_header_bytes);
  return 0;
}
