#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

namespace nova {

/// Shows that a long command is still working: once a second, on stderr,
/// "<label>: <n> s elapsed" on one line that it rewrites, erased when the
/// ticker goes. Only when stderr is a terminal, so scripts and logs see
/// nothing of it.
class progress_ticker {
public:
  explicit progress_ticker(std::string label, bool enabled = ::isatty(2) != 0)
    : label_(std::move(label)) {
    if (!enabled)
      return;
    thread_ = std::thread{[this] { run(); }};
  }

  progress_ticker(const progress_ticker&) = delete;
  progress_ticker& operator=(const progress_ticker&) = delete;

  ~progress_ticker() {
    if (!thread_.joinable())
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

private:
  void run() {
    auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> guard{mtx_};
    while (!cv_.wait_for(guard, std::chrono::seconds(1),
                         [this] { return done_; })) {
      auto s = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::steady_clock::now() - start)
                 .count();
      std::fprintf(stderr, "\r\033[K%s: %lld s elapsed", label_.c_str(),
                   static_cast<long long>(s));
      std::fflush(stderr);
    }
  }

  std::string label_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

} // namespace nova
