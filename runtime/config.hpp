#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "actors/context.hpp"

namespace CLI {
class App;
}

namespace nova {

enum class bus_kind { memory, nats };

[[nodiscard]] const char* to_string(bus_kind x) noexcept;

/// Where the task queue lives: in this process, or in DragonflyDB (any
/// server speaking the Redis protocol), shared by every node.
enum class store_kind { memory, redis };

[[nodiscard]] const char* to_string(store_kind x) noexcept;

/// The node's HTTP surface (docs/http.md): off while `address` is empty.
struct http_config {
  /// `host:port`; port 0 picks a free one.
  std::string address;
  /// When set, requests need `Authorization: Bearer <token>`.
  std::string token;
  size_t max_body = 1024 * 1024;
  size_t rpc_max_batch = 100;
  size_t rpc_max_depth = 64;
  /// Frames queued per WebSocket client before it loses some.
  size_t ws_queue = 1024;
  /// Threads that run JSON-RPC calls that wait (requests, store reads).
  size_t workers = 4;
  /// When the address cannot be bound, log a warning and run without HTTP
  /// instead of refusing to start (`nova node`'s default address).
  bool optional = false;
  /// `--no-http`: no HTTP surface, whatever the defaults say.
  bool off = false;
};

/// Where `nova node` serves HTTP when neither `--http` nor `NOVA_HTTP` says.
constexpr const char* default_http_address = "127.0.0.1:8080";

/// A node's configuration. Defaults, then environment variables, then
/// command-line flags, each overriding the one before.
struct config {
  std::string node_id = "node-1";
  bus_kind bus = bus_kind::memory;
  /// One URL, or a comma-separated list for a NATS cluster; may carry
  /// `user:password@` or a token (`token@`).
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string nats_user;
  std::string nats_password;
  std::string nats_token;
  /// TLS: a `tls://` URL or any of these turns it on.
  std::string nats_ca_file;
  std::string nats_cert_file;
  std::string nats_key_file;
  /// Write every NATS publish at once (lowest latency); off, nats.c buffers
  /// and flushes about every millisecond (highest throughput).
  bool nats_send_asap = true;
  store_kind store = store_kind::memory;
  std::string dragonfly_url = "redis://127.0.0.1:6379";
  /// Durable streams: approximate bound per stream, and optionally an age.
  size_t stream_max_len = 1'000'000;
  caf::timespan stream_max_age{0};
  std::string prefix = "nova";
  /// Scheduler threads; 0 means one per core.
  size_t threads = 0;
  nova::limits limits;
  /// How long shutdown waits for mailboxes to drain before it stops Novas.
  caf::timespan drain_timeout = std::chrono::seconds(10);
  std::string log_level = "info";
  nova::http_config http;

  /// Reads NOVA_NODE_ID, MESSAGE_BUS, NOVA_STORE, NATS_URL, DRAGONFLY_URL,
  /// NOVA_PREFIX, NOVA_HEARTBEAT_MS, NOVA_MAX_PAYLOAD, NOVA_LOG_LEVEL,
  /// NOVA_HTTP and NOVA_HTTP_TOKEN over the defaults.
  /// An invalid value is an error naming the variable.
  [[nodiscard]] static caf::expected<config> from_env();

  /// Adds the node flags (--node-id, --bus, --nats-url, ...) to `app`,
  /// writing into this object.
  void add_flags(CLI::App& app);

  /// Checks ids and ranges; the node refuses to start on an error.
  [[nodiscard]] caf::error validate() const;
};

} // namespace nova
