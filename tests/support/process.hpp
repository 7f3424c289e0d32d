#pragma once

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace nova::testing {

/// A child process for system tests: its stdout and stderr go to a temporary
/// file that tests read; every wait is bounded; the destructor kills it.
class process {
public:
  explicit process(std::vector<std::string> argv) {
    char tmpl[] = "/tmp/nova-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    log_path_ = tmpl;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    ::close(fd);
  }

  process(const process&) = delete;
  process& operator=(const process&) = delete;

  ~process() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::unlink(log_path_.c_str());
  }

  [[nodiscard]] bool started() const noexcept {
    return pid_ > 0;
  }

  [[nodiscard]] pid_t pid() const noexcept {
    return pid_;
  }

  void signal(int sig) {
    if (pid_ > 0 && !exit_code_)
      ::kill(pid_, sig);
  }

  /// The exit code (128 + signal when killed), or nothing if the process
  /// still runs after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    if (exit_code_)
      return exit_code_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      auto r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + WTERMSIG(status);
        return exit_code_;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// Everything the process printed so far.
  [[nodiscard]] std::string output() const {
    std::ifstream in{log_path_};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  /// Waits until the output contains `text`.
  bool wait_for_output(const std::string& text,
                       std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

/// Where a server binary lives: `$<env_var>` if set, else the first
/// executable `name` in /usr/bin, /usr/sbin, /usr/local/bin; empty if none.
inline std::string find_program(const char* env_var, const char* name) {
  if (const char* env = std::getenv(env_var); env && *env)
    return ::access(env, X_OK) == 0 ? std::string{env} : std::string{};
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
    auto path = std::string{dir} + "/" + name;
    if (::access(path.c_str(), X_OK) == 0)
      return path;
  }
  return {};
}

/// The path of a program built into build/bin.
inline std::string bin(const std::string& name) {
  return std::string{NOVA_BIN_DIR} + "/" + name;
}

} // namespace nova::testing
