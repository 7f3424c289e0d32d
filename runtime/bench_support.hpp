#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "cluster/redis_client.hpp"

namespace nova {

/// What the store benchmarks share: finding server binaries and running a
/// throwaway redis-server next to the benchmark.

/// `flag` if set (empty if not executable), else `$<env>`, else the first
/// executable `<name>` in /usr/bin, /usr/sbin, /usr/local/bin; empty if none.
[[nodiscard]] std::string find_server_binary(const std::string& flag,
                                             const char* env,
                                             const char* name);

/// `find_server_binary`, or throws `std::runtime_error` naming where it
/// looked (`--<name>`, `$<env>`, the three folders).
[[nodiscard]] std::string require_server_binary(const std::string& flag,
                                                const char* env,
                                                const char* name);

/// What a benchmark's peer process does once set up: blocks until its
/// standard input reaches its end (the parent went) or `lifetime` passes.
void serve_until_stdin_closes(std::chrono::seconds lifetime);

/// A free TCP port on 127.0.0.1 (free when asked; others may take it).
[[nodiscard]] uint16_t free_loopback_port();

/// CPU time (user + system) of this process so far, in milliseconds.
[[nodiscard]] double process_cpu_ms();

/// CPU time (user + system) of process `pid` so far, in milliseconds, from
/// `/proc/<pid>/stat`; 0 when it cannot be read.
[[nodiscard]] double process_cpu_ms(pid_t pid);

/// The value of `field:` in an INFO reply.
[[nodiscard]] std::optional<std::string> info_field(const std::string& info,
                                                    const std::string& field);

/// What a redis-server has done so far, from `INFO cpu` and `INFO
/// commandstats`.
struct server_sample {
  double cpu_ms = 0;
  /// Commands run so far (those inside scripts too), INFO itself left out.
  int64_t commands = 0;
};

/// Asks the server behind `pool`; throws `std::runtime_error` on failure.
[[nodiscard]] server_sample sample_server(redis_pool& pool);

/// Makes `fd` the descriptor `target` of a forked child; async-signal-safe.
inline void place_fd(int fd, int target) {
  if (fd == target)
    ::fcntl(fd, F_SETFD, 0);
  else
    ::dup2(fd, target);
}

/// A child process writing stdout and stderr to a temporary file. Peers get
/// a pipe as standard input: closing our end tells them to exit, and so does
/// our death (the pipe closes, and the kernel sends SIGKILL). The destructor
/// kills what still runs; every wait is bounded.
class child_process {
public:
  child_process(std::vector<std::string> argv, bool stdin_pipe) {
    char tmpl[] = "/tmp/nova-bench-XXXXXX";
    // Unlinked at once: we read it through our descriptor, and nothing is
    // left behind however this process ends.
    int log = ::mkostemp(tmpl, O_CLOEXEC);
    if (log < 0)
      throw std::runtime_error("cannot create a log file for " + argv[0]);
    ::unlink(tmpl);
    int in[2] = {-1, -1};
    if (stdin_pipe) {
      if (::pipe2(in, O_CLOEXEC) != 0) {
        ::close(log);
        throw std::runtime_error("cannot create a pipe for " + argv[0]);
      }
    } else {
      in[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      if (in[0] >= 0)
        place_fd(in[0], 0);
      place_fd(log, 1);
      place_fd(log, 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    log_ = log;
    if (in[0] >= 0)
      ::close(in[0]);
    stdin_ = in[1];
    if (pid_ < 0) {
      close_stdin();
      ::close(log_);
      throw std::runtime_error("cannot fork for " + argv[0]);
    }
    for (auto& a : argv)
      name_ += (name_.empty() ? "" : " ") + a;
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Closes standard input and gives it `grace` to exit before SIGKILL.
  ~child_process() {
    close_stdin();
    if (!wait(std::chrono::seconds(3)))
      kill_now();
    ::close(log_);
  }

  [[nodiscard]] pid_t pid() const noexcept {
    return pid_;
  }

  [[nodiscard]] const std::string& name() const noexcept {
    return name_;
  }

  void close_stdin() {
    if (stdin_ >= 0)
      ::close(stdin_);
    stdin_ = -1;
  }

  void signal(int sig) {
    if (pid_ > 0 && !exit_code_)
      ::kill(pid_, sig);
  }

  void kill_now() {
    if (pid_ <= 0 || exit_code_)
      return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_code_ = 128 + SIGKILL;
  }

  /// The exit code (128 + signal when killed), or nothing while it runs.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    if (exit_code_ || pid_ <= 0)
      return exit_code_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + WTERMSIG(status);
        return exit_code_;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// What it wrote; with `tail`, only the last `tail` bytes.
  [[nodiscard]] std::string output(size_t tail = 0) const {
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = ::pread(log_, buf, sizeof(buf), static_cast<off_t>(out.size()));
      if (n <= 0)
        break;
      out.append(buf, static_cast<size_t>(n));
    }
    if (tail > 0 && out.size() > tail)
      return "..." + out.substr(out.size() - tail);
    return out;
  }

  /// Waits until the output has a line starting with `text` and returns
  /// that line; throws when the process exits first or on timeout.
  std::string wait_for_line(const std::string& text,
                            std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto all = output();
      for (auto pos = all.find(text); pos != std::string::npos;
           pos = all.find(text, pos + 1)) {
        auto eol = all.find('\n', pos);
        if ((pos == 0 || all[pos - 1] == '\n') && eol != std::string::npos)
          return all.substr(pos, eol - pos);
      }
      if (auto code = wait(std::chrono::milliseconds(0)))
        throw std::runtime_error(fmt::format("{} exited with {}:\n{}", name_,
                                             *code, tail(all)));
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error(fmt::format("{} not ready after {} ms:\n{}",
                                             name_, timeout.count(),
                                             tail(all)));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

private:
  static std::string tail(const std::string& x) {
    return x.size() <= 2000 ? x : x.substr(x.size() - 2000);
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int log_ = -1;
  std::optional<int> exit_code_;
  std::string name_;
};

/// A redis-server without persistence on a free loopback port, in a fresh
/// temporary directory. It dies with this process (PR_SET_PDEATHSIG); the
/// destructor stops it and removes the directory.
class redis_child {
public:
  explicit redis_child(const std::string& path);
  redis_child(const redis_child&) = delete;
  redis_child& operator=(const redis_child&) = delete;
  ~redis_child();

  [[nodiscard]] uint16_t port() const noexcept {
    return port_;
  }

  [[nodiscard]] std::string url() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
  }

  [[nodiscard]] pid_t pid() const noexcept {
    return proc_->pid();
  }

  bool exited() {
    return proc_->wait(std::chrono::milliseconds(0)).has_value();
  }

  /// The last 2000 bytes the server wrote.
  [[nodiscard]] std::string output() const {
    return proc_->output(2000);
  }

  /// Waits until the server answers (at most `timeout`); throws with its
  /// output if it exits or stays silent.
  void wait_ready(std::chrono::milliseconds timeout);

  /// A pool of `size` connections to it, with `command_timeout`.
  [[nodiscard]] std::shared_ptr<redis_pool>
  pool(size_t size, std::chrono::milliseconds command_timeout) const;

private:
  uint16_t port_;
  std::string dir_;
  std::unique_ptr<child_process> proc_;
};

} // namespace nova
