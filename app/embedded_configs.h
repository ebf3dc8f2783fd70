#pragma once
// Config files compiled into the binary (generated from configs/ by CMake).
#include <string>

namespace eggroll {
const std::string& embedded_quickstart_yaml();
}
