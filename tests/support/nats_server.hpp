#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/process.hpp"

namespace nova::testing {

/// Where nats-server lives: `$NOVA_NATS_SERVER`, else the first executable
/// of /usr/bin, /usr/sbin (where Debian installs it), /usr/local/bin; empty
/// if there is none.
inline std::string nats_server_path() {
  return find_program("NOVA_NATS_SERVER", "nats-server");
}

/// A loopback port that was free a moment ago (bound to port 0, read back,
/// closed).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw std::runtime_error("free_port: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind() failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// True if something accepts TCP connections on 127.0.0.1:port.
inline bool accepts_tcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  auto ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0;
  ::close(fd);
  return ok;
}

inline std::string loopback_url(uint16_t port) {
  return "nats://127.0.0.1:" + std::to_string(port);
}

/// One nats-server on a free loopback port, without monitoring. Starting
/// waits (at most 5 s) until it accepts connections and throws with the
/// server's output otherwise; the destructor kills it.
class nats_server {
public:
  struct deferred_t {
    explicit deferred_t() = default;
  };
  /// Picks the port but starts nothing yet: `nats_server srv{deferred_t{}}`.
  static inline const deferred_t deferred{};

  nats_server() : nats_server(free_port(), {}) {
    // nop
  }

  explicit nats_server(deferred_t) : port_(free_port()) {
    // nop
  }

  nats_server(uint16_t port, std::vector<std::string> extra_args,
              bool start_now = true)
    : port_(port), extra_args_(std::move(extra_args)) {
    if (start_now)
      start();
  }

  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  void start() {
    if (running())
      return;
    auto path = nats_server_path();
    if (path.empty())
      throw std::runtime_error("nats-server not found");
    std::vector<std::string> argv{path,   "-a", "127.0.0.1", "-p",
                                  std::to_string(port_), "-m", "0"};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    proc_ = std::make_unique<process>(std::move(argv));
    if (!proc_->started())
      throw std::runtime_error("cannot spawn " + path);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!accepts_tcp(port_)) {
      if (auto code = proc_->wait(std::chrono::milliseconds(0)))
        throw std::runtime_error("nats-server on port " + std::to_string(port_)
                                 + " exited with " + std::to_string(*code)
                                 + ":\n" + proc_->output());
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error("nats-server on port " + std::to_string(port_)
                                 + " not ready after 5 s:\n"
                                 + proc_->output());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  /// SIGTERM, then SIGKILL if it is still there after `grace`.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(3)) {
    if (!proc_)
      return;
    proc_->signal(SIGTERM);
    if (!proc_->wait(grace)) {
      proc_->signal(SIGKILL);
      proc_->wait(std::chrono::seconds(5));
    }
    proc_.reset();
  }

  /// The server's process id, or -1 when it is not running.
  [[nodiscard]] pid_t pid() const noexcept {
    return proc_ ? proc_->pid() : -1;
  }

  /// SIGKILL: a crash, no goodbye to clients or routes.
  void kill() {
    if (!proc_)
      return;
    proc_->signal(SIGKILL);
    proc_->wait(std::chrono::seconds(5));
    proc_.reset();
  }

  /// Stops and starts again on the same port.
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

  [[nodiscard]] std::string url() const {
    return loopback_url(port_);
  }

  /// What the server logged so far (empty when not running).
  [[nodiscard]] std::string output() const {
    return proc_ ? proc_->output() : std::string{};
  }

private:
  uint16_t port_;
  std::vector<std::string> extra_args_;
  std::unique_ptr<process> proc_;
};

/// `n` nats-servers routed into one cluster named `nova-test`.
///
/// Each server solicits routes only to the servers started before it, which
/// already listen. Had every server listed every other one, the earlier
/// ones would find the later ones refusing and retry a second later, while
/// the test runs, opening duplicate routes that nats-server then closes.
class nats_cluster {
public:
  explicit nats_cluster(size_t n = 3) {
    // Ports are picked right before each server starts, and picked again
    // when one was taken meanwhile (the routes of the servers started
    // before connect out from ephemeral ports, which may be the very port
    // picked a moment ago).
    std::vector<uint16_t> route_ports;
    for (size_t i = 0; i < n; ++i) {
      for (int attempt = 1;; ++attempt) {
        auto client_port = free_port();
        auto route_port = free_port();
        std::vector<std::string> args{"--name",
                                      "nova-test-" + std::to_string(i),
                                      "--cluster",
                                      loopback_url(route_port),
                                      "--cluster_name",
                                      "nova-test"};
        std::string routes;
        for (auto port : route_ports) {
          if (!routes.empty())
            routes += ',';
          routes += loopback_url(port);
        }
        if (!routes.empty()) {
          args.emplace_back("--routes");
          args.push_back(routes);
        }
        try {
          servers_.push_back(
            std::make_unique<nats_server>(client_port, std::move(args)));
          route_ports.push_back(route_port);
          break;
        } catch (const std::runtime_error& e) {
          if (attempt == 5
              || std::string_view{e.what()}.find("address already in use")
                   == std::string_view::npos)
            throw;
        }
      }
    }
  }

  [[nodiscard]] size_t size() const noexcept {
    return servers_.size();
  }

  [[nodiscard]] nats_server& server(size_t i) {
    return *servers_.at(i);
  }

  [[nodiscard]] std::string url(size_t i) const {
    return servers_.at(i)->url();
  }

  /// All client URLs, comma-separated.
  [[nodiscard]] std::string urls() const {
    std::string out;
    for (auto& srv : servers_) {
      if (!out.empty())
        out += ',';
      out += srv->url();
    }
    return out;
  }

  /// The index of the server whose client port appears in `url`, or size().
  [[nodiscard]] size_t index_of(const std::string& url) const {
    for (size_t i = 0; i < servers_.size(); ++i) {
      auto suffix = ":" + std::to_string(servers_[i]->port());
      if (url.size() >= suffix.size()
          && url.compare(url.size() - suffix.size(), suffix.size(), suffix)
               == 0)
        return i;
    }
    return servers_.size();
  }

  void kill(size_t i) {
    servers_.at(i)->kill();
  }

  /// Waits until every running server has one live route to every other one.
  bool wait_for_routes(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto ready = std::all_of(servers_.begin(), servers_.end(),
                               [this](auto& srv) {
                                 return !srv->running()
                                        || live_routes(srv->output())
                                             == running() - 1;
                               });
      if (ready)
        return true;
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

private:
  size_t running() {
    return static_cast<size_t>(std::count_if(
      servers_.begin(), servers_.end(), [](auto& srv) { return srv->running(); }));
  }

  static size_t occurrences(const std::string& log, const std::string& needle) {
    size_t count = 0;
    for (auto pos = log.find(needle); pos != std::string::npos;
         pos = log.find(needle, pos + needle.size()))
      ++count;
    return count;
  }

  /// Routes the server logged as created and not (yet) as closed: a
  /// duplicate route is logged as created too, and closed right after.
  static size_t live_routes(const std::string& log) {
    auto created = occurrences(log, "Route connection created");
    auto closed = occurrences(log, "Router connection closed");
    return created >= closed ? created - closed : 0;
  }

  std::vector<std::unique_ptr<nats_server>> servers_;
};

} // namespace nova::testing

/// Fails the enclosing test when nats-server is missing: an integration
/// test never passes without its real server (scripts/setup.sh installs it).
#define NOVA_REQUIRE_NATS_SERVER()                                             \
  do {                                                                         \
    if (::nova::testing::nats_server_path().empty()) {                         \
      FAIL("nats-server not found ($NOVA_NATS_SERVER, /usr/bin, "          \
           "/usr/sbin, /usr/local/bin); install the nats-server package");     \
    }                                                                          \
  } while (false)
