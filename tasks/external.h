#pragma once
// The external reward process (task.name: external): a user's own reward in any language, with
// no C++ change.
//
//   task.command    shell command started once per process (per rank), lazily at the first
//                   reward, through /bin/sh -c; its stderr is ours
//   task.timeout_s  how long to wait for each answer line (default 60)
//
// Protocol (JSON lines, UTF-8): for every rollout eggroll writes one line to the process's
// stdin,
//   {"prompt": <template applied>, "completion": <text>, "tokens": [ids], <the example's fields>}
// and reads one line from its stdout, {"reward": <finite number>} (other keys are ignored).
// eggroll writes a whole batch (a training step's rollouts of this rank) before it reads, so the
// process may answer line by line or in batches; answers come back in order, exactly one per
// line. Blank answer lines are skipped. Extra answers are an error when they arrive with the
// batch's last answer; ones that arrive later are not detected.
//
// Any failure stops the run with an InputError naming the command and its pid, the rollout
// (its number in the batch and its prompt) and, for a bad answer, the line: the process exits
// or closes stdout (with its exit status), does not answer within task.timeout_s (it is
// killed), answers with a line that is not a JSON object with a finite numeric "reward", or
// with a line longer than kMaxLineBytes. There is no silent reward of 0; a restarted run
// resumes from its last checkpoint as always.
//
// Data: task.train_path / task.val_path JSONL with a "prompt" string on every line; every other
// field of the line is passed through to the process (and logged in samples.jsonl).
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace eggroll::external {

constexpr size_t kMaxLineBytes = size_t(1) << 20;

// Parses one answer line: the reward, or nullopt with *why set.
std::optional<double> parse_reward_line(std::string_view line, std::string* why);

// Splits a byte stream into lines ('\n'; a trailing '\r' is dropped). Never throws.
class LineReader {
 public:
  void feed(std::string_view bytes);
  // The next complete line, or nullopt. too_long() is set (and nothing more is returned) once
  // a line exceeds kMaxLineBytes.
  std::optional<std::string> next();
  bool too_long() const { return too_long_; }
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool too_long_ = false;
};

// One long-lived child process speaking the protocol above.
class Process {
 public:
  Process(std::string command, double timeout_s);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Writes the lines (each without '\n') and returns one reward per line, in order.
  // `describe(i)` names rollout i in error messages. InputError on any failure; the process is
  // then stopped, and the next call starts a new one.
  std::vector<double> exchange(const std::vector<std::string>& lines,
                               const std::function<std::string(size_t)>& describe);

  pid_t pid() const { return pid_; }

 private:
  void start();
  void stop();          // close, wait briefly, kill
  std::string exit_status();  // after EOF: "exited with status N" / "was killed by signal N"
  std::string who() const;

  std::string command_;
  double timeout_s_;
  pid_t pid_ = -1;
  int fd_ = -1;  // our end of the socket pair (the child's stdin and stdout)
  LineReader reader_;
};

}  // namespace eggroll::external
