#include "tasks/external.h"

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace eggroll::external {

std::optional<double> parse_reward_line(std::string_view line, std::string* why) {
  auto fail = [&](std::string w) -> std::optional<double> {
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail("not JSON");
  if (!j.is_object()) return fail("not a JSON object");
  const auto r = j.find("reward");
  if (r == j.end()) return fail("no \"reward\" key");
  if (!r->is_number()) return fail("\"reward\" is not a number");
  const double v = r->get<double>();
  if (!std::isfinite(v)) return fail("\"reward\" is not finite");
  return v;
}

void LineReader::feed(std::string_view bytes) {
  if (too_long_) return;
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {  // drop consumed bytes now and then
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
  if (buf_.find('\n', pos_) == std::string::npos && buf_.size() - pos_ > kMaxLineBytes) too_long_ = true;
}

std::optional<std::string> LineReader::next() {
  if (too_long_) return std::nullopt;
  const size_t e = buf_.find('\n', pos_);
  if (e == std::string::npos) return std::nullopt;
  if (e - pos_ > kMaxLineBytes) {
    too_long_ = true;
    return std::nullopt;
  }
  std::string line = buf_.substr(pos_, e - pos_);
  pos_ = e + 1;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }
}  // namespace

Process::Process(std::string command, double timeout_s) : command_(std::move(command)), timeout_s_(timeout_s) {}

Process::~Process() {
  if (fd_ >= 0) {
    ::close(fd_);  // EOF on the child's stdin: a well-behaved process exits
    fd_ = -1;
  }
  if (pid_ > 0) {
    for (int i = 0; i < 100; i++) {  // up to 1 s
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
  }
}

std::string Process::who() const {
  return "task.command '" + printable(command_, 120) + "' (pid " + std::to_string(pid_) + ")";
}

void Process::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw InputError("task.command: cannot create a socket pair: " + std::string(std::strerror(errno)));
  const char* cmd = command_.c_str();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw InputError("task.command: fork failed: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::setpgid(0, 0);
    ::dup2(sv[1], 0);
    ::dup2(sv[1], 1);
    ::execl("/bin/sh", "sh", "-c", cmd, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(sv[1]);
  fd_ = sv[0];
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  pid_ = pid;
  reader_ = LineReader{};
}

void Process::stop() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);  // the process group: sh and what it started
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
}

std::string Process::exit_status() {
  for (int i = 0; i < 200; i++) {  // up to 2 s for the exit to be reported
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      const pid_t p = pid_;
      pid_ = -1;
      (void)p;
      if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
      if (WIFSIGNALED(st)) return "was killed by signal " + std::to_string(WTERMSIG(st));
      return "stopped";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "closed its stdout";
}

std::vector<double> Process::exchange(const std::vector<std::string>& lines,
                                      const std::function<std::string(size_t)>& describe) {
  std::vector<double> rewards;
  if (lines.empty()) return rewards;
  if (pid_ < 0) start();
  const std::string name = who();
  auto fail = [&](const std::string& what) {
    const std::string rollout = describe(rewards.size());
    stop();
    throw InputError(name + ": " + what + " (" + rollout + ")");
  };
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  size_t written = 0;
  double deadline = now_s() + timeout_s_;
  char buf[65536];
  for (;;) {
    while (rewards.size() < lines.size()) {
      auto l = reader_.next();
      if (!l) break;
      if (blank(*l)) continue;
      std::string why;
      const auto r = parse_reward_line(*l, &why);
      if (!r) fail("bad answer line '" + printable(*l, 200) + "': " + why + " (expected {\"reward\": <number>})");
      rewards.push_back(*r);
      deadline = now_s() + timeout_s_;
    }
    if (reader_.too_long()) fail("answer line longer than " + std::to_string(kMaxLineBytes) + " bytes");
    if (rewards.size() == lines.size()) break;
    const double left = deadline - now_s();
    if (left <= 0)
      fail("no answer within task.timeout_s = " + nlohmann::json(timeout_s_).dump() + " s; the process was killed");
    pollfd p{fd_, short(POLLIN | (written < out.size() ? POLLOUT : 0)), 0};
    const int rc = ::poll(&p, 1, int(std::min(left * 1000.0 + 1.0, 1e9)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      fail("poll failed: " + std::string(std::strerror(errno)));
    }
    if (rc == 0) continue;
    if ((p.revents & POLLOUT) && written < out.size()) {
      const ssize_t n = ::send(fd_, out.data() + written, out.size() - written, MSG_NOSIGNAL);
      if (n > 0) written += size_t(n);
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        fail(exit_status() + " (it stopped reading its stdin)");
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        reader_.feed(std::string_view(buf, size_t(n)));
      } else if (n == 0 || errno == ECONNRESET) {  // reset: it went away with our lines unread
        fail(exit_status() + " before answering every rollout (" + std::to_string(rewards.size()) + " of " +
             std::to_string(lines.size()) + " answered)");
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fail("read failed: " + std::string(std::strerror(errno)));
      }
    }
  }
  // answers beyond the batch would be taken for the next batch's: a protocol error
  while (auto l = reader_.next())
    if (!blank(*l)) fail("answered more lines than it was sent (" + std::to_string(lines.size()) + "): '" +
                         printable(*l, 200) + "'");
  return rewards;
}

}  // namespace eggroll::external
