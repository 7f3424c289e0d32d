#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/tap.hpp"
#include "runtime/config.hpp"

namespace nova {

class node;

/// The node's HTTP surface (docs/http.md): `POST /rpc` (JSON-RPC 2.0),
/// `/health`, `/health/live`, `/health/ready`, `/metrics`, the `/ws` live
/// feed and the dashboard at `/`. One I/O thread (Boost.Beast) serves every
/// connection; calls that wait run on a small worker pool.
class http_server {
public:
  /// The feed that copies envelopes to WebSocket clients. The node installs
  /// it as its tap before any Nova or gateway thread runs.
  [[nodiscard]] static std::shared_ptr<envelope_tap>
  make_feed(const std::string& prefix, size_t recent_events = 1000);

  /// Binds and starts serving. Throws `std::runtime_error` when the address
  /// cannot be bound.
  http_server(node& n, const http_config& cfg,
              std::shared_ptr<envelope_tap> feed);

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Stops serving and closes every connection.
  ~http_server();

  /// The port actually bound (useful with port 0).
  [[nodiscard]] uint16_t port() const noexcept;

  /// `host:port` actually bound.
  [[nodiscard]] std::string address() const;

  /// Stops accepting, closes connections, joins the threads. Idempotent.
  void stop();

  /// The server's state, shared with its connections.
  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// The dashboard page (runtime/web/dashboard.html, compiled in).
[[nodiscard]] const std::string& dashboard_html();

} // namespace nova
