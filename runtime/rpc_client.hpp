#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace nova {

/// Where a node's HTTP surface answers (`nova node --http HOST:PORT`).
struct rpc_target {
  /// `http://host[:port][/base]`; calls go to `<base>/rpc`. A bare
  /// `host:port` means `http://host:port`.
  std::string url = "http://127.0.0.1:8080";
  /// Sent as `Authorization: Bearer <token>` when not empty.
  std::string token;
  /// Bounds one call: connecting, sending and reading the reply.
  std::chrono::milliseconds timeout{5000};
};

/// A parsed `http://` URL.
struct http_endpoint {
  std::string host;
  uint16_t port = 80;
  /// The request target of JSON-RPC calls, e.g. `/rpc`.
  std::string path = "/rpc";
};

/// Parses `rpc_target::url`; only `http://` (no TLS, no credentials).
[[nodiscard]] caf::expected<http_endpoint> parse_http_url(
  const std::string& url);

/// A JSON-RPC 2.0 error object as the server sent it.
struct rpc_error {
  int64_t code = 0;
  std::string message;
  /// `null` when the server sent none.
  nlohmann::json data;
};

/// The Nova error code for a JSON-RPC error code: -32700/-32600/-32602
/// `invalid_argument`, -32601 `unsupported`, else `handler_failed`.
[[nodiscard]] caf::error make_rpc_error(const std::string& url,
                                        rpc_error x);

/// The JSON-RPC error object carried by `err`, if it came from the server
/// (rather than from reaching it).
[[nodiscard]] std::optional<rpc_error> rpc_error_of(const caf::error& err);

/// A one-line description of any error `rpc_call` returns, without the
/// tuple rendering `describe` gives multi-part contexts.
[[nodiscard]] std::string describe_rpc(const caf::error& err);

/// A synchronous JSON-RPC client that keeps its connection open between
/// calls (reconnecting when the server closed it). Not thread-safe.
class rpc_client {
public:
  [[nodiscard]] static caf::expected<rpc_client> make(rpc_target target);

  rpc_client(rpc_client&&) noexcept;
  rpc_client& operator=(rpc_client&&) noexcept;
  ~rpc_client();

  /// Calls `method`; the `result` member of the reply, or an error:
  /// `backend_unavailable` when the node cannot be reached,
  /// `request_timeout` after `timeout`, `invalid_argument` for HTTP 401,
  /// `decode_failed` for a reply that is not JSON-RPC, and the server's
  /// JSON-RPC error (see `rpc_error_of`).
  [[nodiscard]] caf::expected<nlohmann::json> call(const std::string& method,
                                                   nlohmann::json params);

  [[nodiscard]] const rpc_target& target() const noexcept;

private:
  struct impl;
  explicit rpc_client(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// One call on a fresh connection.
[[nodiscard]] caf::expected<nlohmann::json> rpc_call(
  const rpc_target& t, const std::string& method,
  nlohmann::json params = nlohmann::json::object());

} // namespace nova
