#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/durable_store.hpp"
#include "cluster/redis_client.hpp"
#include "messages/types.hpp"

namespace nova {

class node;

// What the HTTP surface reports about a node (docs/http.md): health, metrics
// and the JSON shapes of envelopes, tasks and presence.

/// Pings the store over its own connection, at most once per `interval`,
/// so health checks never queue behind the node's store traffic.
class store_probe {
public:
  struct result {
    bool reachable = false;
    std::optional<std::chrono::microseconds> latency;
    /// healthy, warning (slower than `warning`) or critical (slower than
    /// `critical`, or no answer).
    std::string status = "critical";
  };

  store_probe(std::string url,
              std::chrono::milliseconds warning = std::chrono::milliseconds(100),
              std::chrono::milliseconds critical = std::chrono::seconds(1),
              std::chrono::milliseconds interval = std::chrono::seconds(1));

  /// The latest result, pinging first when it is older than the interval.
  result check();

private:
  std::string url_;
  std::chrono::milliseconds warning_;
  std::chrono::milliseconds critical_;
  std::chrono::milliseconds interval_;
  std::mutex mtx_;
  std::optional<redis_connection> conn_;
  std::chrono::steady_clock::time_point last_{};
  bool checked_ = false;
  result last_result_;
};

/// What `/health` answers; `probe` is null without a store.
struct health_report {
  nlohmann::json body;
  /// healthy, degraded or unhealthy.
  std::string status;
};

[[nodiscard]] health_report
health_of(node& n, store_probe* probe,
          std::chrono::steady_clock::time_point started);

/// Extra figures of the HTTP server for `/metrics`.
struct http_figures {
  size_t ws_clients = 0;
  uint64_t ws_dropped = 0;
};

/// The node's metrics in Prometheus text format 0.0.4.
[[nodiscard]] std::string metrics_text(node& n, const http_figures& http);

/// A payload as JSON: parsed when the envelope says it is JSON (and it
/// parses), else the text (invalid UTF-8 replaced).
[[nodiscard]] nlohmann::json payload_json(const std::string& payload,
                                          const std::string& content_type);

/// `env` in protobuf's canonical JSON mapping.
[[nodiscard]] nlohmann::json envelope_json(const envelope& env);

/// An event as `bus.subscribe` lists it.
[[nodiscard]] nlohmann::json event_json(const envelope& env);

[[nodiscard]] nlohmann::json presence_json(const presence& p);
[[nodiscard]] nlohmann::json task_json(const task& t);
[[nodiscard]] nlohmann::json task_result_json(const task_result& r);
[[nodiscard]] nlohmann::json queue_stats_json(const queue_stats& s);

/// `j` as text; invalid UTF-8 in strings replaced, never thrown.
[[nodiscard]] std::string dump_json(const nlohmann::json& j, int indent = -1);

} // namespace nova
