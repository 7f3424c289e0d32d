#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

// free_port() lives with the NATS fixture.
#include "support/nats_server.hpp"
#include "support/process.hpp"

namespace nova::testing {

/// Where redis-server lives: `$NOVA_REDIS_SERVER`, else the first executable
/// of /usr/bin (where Debian installs it), /usr/sbin, /usr/local/bin; empty
/// if there is none.
inline std::string redis_server_path() {
  return find_program("NOVA_REDIS_SERVER", "redis-server");
}

/// True if a server on 127.0.0.1:port answers an inline PING within
/// `timeout` (+PONG, or -NOAUTH from a server with a password: it is up
/// either way; -LOADING is not ready).
inline bool answers_ping(uint16_t port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const char ping[] = "PING\r\n";
    if (::send(fd, ping, sizeof(ping) - 1, MSG_NOSIGNAL)
        == static_cast<ssize_t>(sizeof(ping) - 1)) {
      char buf[64];
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        std::string reply{buf, static_cast<size_t>(n)};
        ok = reply.rfind("+PONG", 0) == 0 || reply.rfind("-NOAUTH", 0) == 0;
      }
    }
  }
  ::close(fd);
  return ok;
}

inline std::string redis_url(uint16_t port) {
  return "redis://127.0.0.1:" + std::to_string(port);
}

/// One redis-server on a free loopback port, without persistence: its
/// working directory is a fresh temporary one, removed by the destructor.
/// Starting waits (at most 5 s) until it answers PING and throws with the
/// server's output otherwise; the destructor kills it.
class redis_server {
public:
  redis_server() : redis_server(std::vector<std::string>{}) {
    // nop
  }

  /// `extra_args` go to the command line, e.g. {"--requirepass", "secret"}.
  explicit redis_server(std::vector<std::string> extra_args,
                        bool start_now = true)
    : port_(free_port()), extra_args_(std::move(extra_args)) {
    char tmpl[] = "/tmp/nova-redis-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = tmpl;
    if (!start_now)
      return;
    try {
      start();
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      throw;
    }
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start() {
    if (running())
      return;
    auto path = redis_server_path();
    if (path.empty())
      throw std::runtime_error("redis-server not found");
    std::vector<std::string> argv{path,          "--port",
                                  std::to_string(port_), "--bind",
                                  "127.0.0.1",   "--save",
                                  "",            "--appendonly",
                                  "no",          "--dir",
                                  dir_,          "--daemonize",
                                  "no"};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    proc_ = std::make_unique<process>(std::move(argv));
    if (!proc_->started())
      throw std::runtime_error("cannot spawn " + path);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!answers_ping(port_, std::chrono::milliseconds(500))) {
      if (auto code = proc_->wait(std::chrono::milliseconds(0)))
        throw std::runtime_error("redis-server on port " + std::to_string(port_)
                                 + " exited with " + std::to_string(*code)
                                 + ":\n" + proc_->output());
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error("redis-server on port " + std::to_string(port_)
                                 + " not ready after 5 s:\n"
                                 + proc_->output());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  /// SIGTERM, then SIGKILL if it is still there after `grace`. Clients see
  /// their connections closed.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(3)) {
    if (!proc_)
      return;
    proc_->signal(SIGTERM);
    // A paused server handles SIGTERM only once it runs again.
    proc_->signal(SIGCONT);
    if (!proc_->wait(grace)) {
      proc_->signal(SIGKILL);
      proc_->wait(std::chrono::seconds(5));
    }
    proc_.reset();
  }

  /// SIGKILL: a crash.
  void kill() {
    if (!proc_)
      return;
    proc_->signal(SIGKILL);
    proc_->wait(std::chrono::seconds(5));
    proc_.reset();
  }

  /// SIGSTOP: the server hangs with its connections open (the kernel still
  /// accepts new ones), as an overloaded or wedged server would.
  void pause() {
    if (proc_)
      proc_->signal(SIGSTOP);
  }

  /// SIGCONT after `pause`.
  void resume() {
    if (proc_)
      proc_->signal(SIGCONT);
  }

  /// Stops and starts again on the same port, with an empty data set.
  void restart() {
    stop();
    start();
  }

  [[nodiscard]] bool running() {
    return proc_ && !proc_->wait(std::chrono::milliseconds(0));
  }

  [[nodiscard]] uint16_t port() const noexcept {
    return port_;
  }

  /// redis://127.0.0.1:<port>
  [[nodiscard]] std::string url() const {
    return redis_url(port_);
  }

  /// The server's working directory (stays empty: no persistence).
  [[nodiscard]] const std::string& dir() const noexcept {
    return dir_;
  }

  /// What the server logged so far (empty when not running).
  [[nodiscard]] std::string output() const {
    return proc_ ? proc_->output() : std::string{};
  }

private:
  uint16_t port_;
  std::vector<std::string> extra_args_;
  std::string dir_;
  std::unique_ptr<process> proc_;
};

} // namespace nova::testing

/// Fails the enclosing test when redis-server is missing: an integration
/// test never passes without its real server (scripts/setup.sh installs it).
#define NOVA_REQUIRE_REDIS_SERVER()                                            \
  do {                                                                         \
    if (::nova::testing::redis_server_path().empty()) {                        \
      FAIL("redis-server not found ($NOVA_REDIS_SERVER, /usr/bin, "        \
           "/usr/sbin, /usr/local/bin); install the redis-server package");    \
    }                                                                          \
  } while (false)
