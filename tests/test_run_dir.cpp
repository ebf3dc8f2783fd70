// The run directory (app/run_dir.h) that the trainer writes and the sweep and `eggroll eval`
// read: state.json written and read back, `latest`, and the errors for damaged files.
// The shared file helpers (core/file_io.h) under it.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "app/run_dir.h"
#include "core/error.h"
#include "core/file_io.h"
#include "fixtures.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

using test::input_error_of;

}  // namespace

TEST_CASE("state.json and latest: written, read back, completed steps", "[run_dir]") {
  const fs::path run = test::temp_root("run_dir") / "ok";
  fs::remove_all(run);
  CHECK(latest_checkpoint(run.string()).empty());
  CHECK(completed_steps(run.string()) == 0);

  const fs::path ck = run / "checkpoints" / "step_7";
  fs::create_directories(ck);
  write_run_state(ck.string(), {7, 0x1234567890ull});
  // the format the trainer has always written
  CHECK(test::slurp(ck / "state.json") == "{\n \"format\": 1,\n \"optimizer_steps\": 78187493520,\n \"step\": 7\n}\n");
  const RunState st = read_run_state(ck.string());
  CHECK(st.step == 7);
  CHECK(st.optimizer_steps == 0x1234567890ull);
  CHECK(!fs::exists(ck / "state.json.tmp"));

  set_latest_checkpoint(run.string(), "step_7");
  CHECK(test::slurp(run / "checkpoints" / "latest") == "step_7\n");
  CHECK(latest_checkpoint(run.string()) == ck.string());
  CHECK(completed_steps(run.string()) == 7);

  TrainConfig cfg;
  cfg.run.dir = "runs";
  cfg.run.name = std::string("x");  // (a literal assignment here trips GCC 12's false -Wrestrict)
  CHECK(run_directory(cfg) == "runs/x");
}

TEST_CASE("damaged run directories name the file", "[run_dir]") {
  const fs::path run = test::temp_root("run_dir") / "bad";
  fs::remove_all(run);
  const fs::path ck = run / "checkpoints" / "step_2";
  const std::string state = (ck / "state.json").string();
  write(run / "checkpoints" / "latest", "step_2\n");
  // latest names a directory without state.json (an interrupted checkpoint)
  CHECK(input_error_of([&] { latest_checkpoint(run.string()); }) ==
        (run / "checkpoints" / "latest").string() + ": points to 'step_2', which is not a complete checkpoint");
  write(run / "checkpoints" / "latest", "../elsewhere\n");
  CHECK_THAT(input_error_of([&] { latest_checkpoint(run.string()); }), Catch::Contains("not a complete checkpoint"));
  write(run / "checkpoints" / "latest", "step_2\n");
  for (const std::string bad : {"", "{\"step\": 2", "[2]", "{\"step\": 2}", "{\"optimizer_steps\": 2}",
                                "{\"step\": -1, \"optimizer_steps\": 2}", "{\"step\": \"2\", \"optimizer_steps\": 2}",
                                "{\"step\": 2.5, \"optimizer_steps\": 2}", "{\"step\": 2, \"optimizer_steps\": -2}",
                                "{\"step\": 4294967296, \"optimizer_steps\": 2}"}) {
    INFO(bad);
    write(state, bad);
    CHECK(input_error_of([&] { read_run_state(ck.string()); }) == state + ": malformed checkpoint state");
    CHECK(input_error_of([&] { completed_steps(run.string()); }) == state + ": malformed checkpoint state");
  }
  write(state, "{\"step\": 2, \"optimizer_steps\": 9, \"format\": 1}");
  CHECK(completed_steps(run.string()) == 2);
}

TEST_CASE("file helpers: whole reads, atomic writes, errors naming the file", "[run_dir]") {
  const fs::path d = test::temp_root("run_dir") / "io";
  fs::create_directories(d);
  const std::string p = (d / "a.txt").string();
  write_file_atomic(p, std::string("one\0two", 7));
  CHECK(read_file(p) == std::string("one\0two", 7));
  write_file_atomic(p, "replaced");
  CHECK(read_file(p, "text") == "replaced");
  CHECK(!fs::exists(p + ".tmp"));
  write_file_atomic(p, "");
  CHECK(read_file(p).empty());

  CHECK(input_error_of([&] { read_file((d / "none.yaml").string(), "config file"); }) ==
        (d / "none.yaml").string() + ": cannot open config file (No such file or directory)");
  CHECK(input_error_of([&] { read_file(d.string(), "sweep file"); }) == d.string() + ": is a directory, not a sweep file");
  const std::string nodir = (d / "no" / "b.txt").string();
  CHECK(input_error_of([&] { write_file_atomic(nodir, "x"); }) ==
        nodir + ".tmp: cannot create: No such file or directory");
  // an error inside the writer removes the temp file and keeps the old contents
  CHECK_THROWS_AS(write_file_atomic(p, [](std::FILE* f, const std::string& tmp) {
                    write_all(f, tmp, "partial", 7);
                    throw InputError(tmp + ": producer failed");
                  }),
                  InputError);
  CHECK(read_file(p).empty());
  CHECK(!fs::exists(p + ".tmp"));
  // renaming over a directory fails and names both
  fs::create_directories(d / "dir");
  CHECK_THAT(input_error_of([&] { write_file_atomic((d / "dir").string(), "x"); }),
             Catch::Contains("cannot rename " + (d / "dir").string() + ".tmp into place"));
  CHECK(!fs::exists(d / "dir.tmp"));
}
