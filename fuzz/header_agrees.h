#pragma once
// Shared by the fuzz targets: a reader's header-only variant must accept exactly what the
// full load accepts (fuzz builds skip CRC checks, the one thing only the full load does),
// with the same error, and describe the same tensors without their data.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/checkpoint.h"
#include "core/error.h"

namespace eggroll::fuzz {

template <class Load, class Header>
void check_header_agrees(const uint8_t* data, size_t size, const std::string& source, Load load, Header header) {
  StateDict full, head;
  std::string full_error, head_error;
  bool full_ok = true, head_ok = true;
  try {
    full = load(data, size, source);
  } catch (const InputError& e) {
    full_ok = false;
    full_error = e.what();
  }
  try {
    head = header(data, size, source);
  } catch (const InputError& e) {
    head_ok = false;
    head_error = e.what();
  }
  if (full_ok != head_ok || full_error != head_error) __builtin_trap();
  if (!full_ok) return;
  if (full.tensors.size() != head.tensors.size()) __builtin_trap();
  for (size_t i = 0; i < full.tensors.size(); i++) {
    const Tensor &f = full.tensors[i], &h = head.tensors[i];
    if (f.data.size() != f.nbytes() || !h.data.empty()) __builtin_trap();
    if (f.name != h.name || f.dtype != h.dtype || f.shape != h.shape) __builtin_trap();
  }
}

}  // namespace eggroll::fuzz
