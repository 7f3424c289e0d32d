#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <sys/types.h>

#include "cluster/redis_client.hpp"

namespace nova {

/// What the store benchmarks share: finding server binaries and running a
/// throwaway redis-server next to the benchmark.

/// `flag` if set (empty if not executable), else `$<env>`, else the first
/// executable `<name>` in /usr/bin, /usr/sbin, /usr/local/bin; empty if none.
[[nodiscard]] std::string find_server_binary(const std::string& flag,
                                             const char* env,
                                             const char* name);

/// A free TCP port on 127.0.0.1 (free when asked; others may take it).
[[nodiscard]] uint16_t free_loopback_port();

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

  bool exited();

  /// The last 2000 bytes the server wrote.
  [[nodiscard]] std::string output() const;

  /// Waits until the server answers (at most `timeout`); throws with its
  /// output if it exits or stays silent.
  void wait_ready(std::chrono::milliseconds timeout);

  /// A pool of `size` connections to it, with `command_timeout`.
  [[nodiscard]] std::shared_ptr<redis_pool>
  pool(size_t size, std::chrono::milliseconds command_timeout) const;

private:
  uint16_t port_;
  std::string dir_;
  int log_ = -1;
  pid_t pid_ = -1;
  bool gone_ = false;
};

} // namespace nova
