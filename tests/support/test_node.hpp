#pragma once

#include <chrono>

#include "runtime/config.hpp"

namespace nova::testing {

/// A node configuration for tests: embedded, two threads, short intervals.
inline config test_config() {
  config cfg;
  cfg.node_id = "test-node";
  cfg.threads = 2;
  cfg.log_level = "error";
  cfg.limits.heartbeat_interval = std::chrono::milliseconds(100);
  cfg.limits.request_timeout = std::chrono::seconds(5);
  cfg.limits.retry_base = std::chrono::milliseconds(5);
  cfg.limits.retry_max = std::chrono::milliseconds(50);
  cfg.drain_timeout = std::chrono::seconds(5);
  return cfg;
}

} // namespace nova::testing

#include <functional>
#include <thread>

namespace nova::testing {

/// Polls `pred` every millisecond until it holds or `timeout` passes; for
/// state that has no notification to wait on.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout
                       = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

} // namespace nova::testing

#include <atomic>
#include <string>

#include <unistd.h>

namespace nova::testing {

/// A fresh subject prefix per test (and process), so tests sharing a
/// nats-server never see each other's traffic.
inline std::string fresh_prefix() {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(::getpid()) + "x" + std::to_string(counter++);
}

/// A test node on the NATS bus with a 200 ms heartbeat.
inline config nats_config(const std::string& node_id, const std::string& urls,
                          const std::string& prefix) {
  auto cfg = test_config();
  cfg.node_id = node_id;
  cfg.bus = bus_kind::nats;
  cfg.nats_url = urls;
  cfg.prefix = prefix;
  cfg.limits.heartbeat_interval = std::chrono::milliseconds(200);
  return cfg;
}

} // namespace nova::testing
