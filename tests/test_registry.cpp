// The plugin registries: backends by name (core/backend.h) and device communicators (core/comm.h).
// In a CUDA build the CUDA library registers "cuda" (and "nccl" with NCCL) from static
// initialisers; this checks that the whole-archive link keeps them.
#include <catch2/catch.hpp>

#include "core/backend.h"
#include "core/comm.h"
#include "core/error.h"

using namespace eggroll;

TEST_CASE("backends are made by name; an unknown name lists the registered ones", "[registry]") {
  auto cpu = make_backend("cpu");
  REQUIRE(cpu);
  CHECK(std::string(cpu->name()) == "cpu");
  CHECK(backend_available("cpu"));
  try {
    make_backend("tpu");
    FAIL("no error for an unknown backend");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("backend 'tpu' is not built in (available: cpu") != std::string::npos);
  }
#ifdef EGGROLL_HAVE_CUDA
  CHECK(backend_available("cuda"));
#else
  CHECK_FALSE(backend_available("cuda"));
#endif
}

TEST_CASE("the nccl communicator is available exactly when the CUDA library registered it", "[registry]") {
#ifdef EGGROLL_HAVE_NCCL
  CHECK(comm_backend_available("nccl"));
#else
  CHECK_FALSE(comm_backend_available("nccl"));
#endif
  CHECK(comm_backend_available("single"));
  CHECK_FALSE(comm_backend_available("carrier-pigeon"));
}

TEST_CASE("registering a backend under a taken name replaces it", "[registry]") {
  register_backend("test-fake", [] { return make_backend("cpu"); });
  CHECK(backend_available("test-fake"));
  CHECK(std::string(make_backend("test-fake")->name()) == "cpu");
}
