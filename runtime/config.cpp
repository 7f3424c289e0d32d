#include "runtime/config.hpp"

#include <cstdlib>
#include <map>

#include <CLI/CLI.hpp>

#include "cluster/naming.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

caf::expected<uint64_t> parse_uint(const char* name, const std::string& v) {
  try {
    size_t pos = 0;
    auto x = std::stoull(v, &pos);
    if (pos == v.size())
      return static_cast<uint64_t>(x);
  } catch (...) {
    // fall through
  }
  return make_error(errc::invalid_argument,
                    std::string{name} + "='" + v
                      + "' is not a non-negative integer");
}

caf::expected<bus_kind> parse_bus(const std::string& v) {
  if (v == "memory")
    return bus_kind::memory;
  if (v == "nats")
    return bus_kind::nats;
  return make_error(errc::invalid_argument,
                    "bus '" + v + "' is not one of memory|nats");
}

caf::expected<store_kind> parse_store(const std::string& v) {
  if (v == "memory")
    return store_kind::memory;
  if (v == "redis" || v == "dragonfly")
    return store_kind::redis;
  return make_error(errc::invalid_argument,
                    "store '" + v + "' is not one of memory|redis");
}

} // namespace

const char* to_string(bus_kind x) noexcept {
  return x == bus_kind::nats ? "nats" : "memory";
}

const char* to_string(store_kind x) noexcept {
  return x == store_kind::redis ? "redis" : "memory";
}

caf::expected<config> config::from_env() {
  config cfg;
  auto get = [](const char* name) -> const char* { return std::getenv(name); };
  if (auto v = get("NOVA_NODE_ID"))
    cfg.node_id = v;
  if (auto v = get("MESSAGE_BUS")) {
    auto b = parse_bus(v);
    if (!b)
      return make_error(errc::invalid_argument,
                        "MESSAGE_BUS: " + describe(b.error()));
    cfg.bus = *b;
  }
  if (auto v = get("NOVA_STORE")) {
    auto st = parse_store(v);
    if (!st)
      return make_error(errc::invalid_argument,
                        "NOVA_STORE: " + describe(st.error()));
    cfg.store = *st;
  }
  if (auto v = get("NATS_URL"))
    cfg.nats_url = v;
  if (auto v = get("NATS_USER"))
    cfg.nats_user = v;
  if (auto v = get("NATS_PASSWORD"))
    cfg.nats_password = v;
  if (auto v = get("NATS_TOKEN"))
    cfg.nats_token = v;
  if (auto v = get("DRAGONFLY_URL"))
    cfg.dragonfly_url = v;
  if (auto v = get("NOVA_PREFIX"))
    cfg.prefix = v;
  if (auto v = get("NOVA_LOG_LEVEL"))
    cfg.log_level = v;
  if (auto v = get("NOVA_HTTP"))
    cfg.http.address = v;
  if (auto v = get("NOVA_HTTP_TOKEN"))
    cfg.http.token = v;
  if (auto v = get("NOVA_HEARTBEAT_MS")) {
    auto ms = parse_uint("NOVA_HEARTBEAT_MS", v);
    if (!ms)
      return ms.error();
    cfg.limits.heartbeat_interval = std::chrono::milliseconds(*ms);
  }
  if (auto v = get("NOVA_MAX_PAYLOAD")) {
    auto n = parse_uint("NOVA_MAX_PAYLOAD", v);
    if (!n)
      return n.error();
    cfg.limits.max_payload = *n;
  }
  if (auto err = cfg.validate())
    return err;
  return cfg;
}

void config::add_flags(CLI::App& app) {
  app.add_option("--node-id", node_id, "This node's id (env NOVA_NODE_ID)")
    ->capture_default_str();
  app
    .add_option_function<std::string>(
      "--bus",
      [this](const std::string& v) {
        auto b = parse_bus(v);
        if (!b)
          throw CLI::ValidationError("--bus", describe(b.error()));
        bus = *b;
      },
      "Message bus: memory|nats (env MESSAGE_BUS)")
    ->default_str(to_string(bus));
  app.add_option("--nats-url", nats_url, "NATS server URL(s), comma-separated "
                                         "(env NATS_URL)")
    ->capture_default_str();
  app.add_option("--nats-user", nats_user, "NATS user");
  app.add_option("--nats-password", nats_password, "NATS password");
  app.add_option("--nats-token", nats_token, "NATS token");
  app.add_option("--nats-ca", nats_ca_file, "CA certificate for NATS TLS");
  app.add_option("--nats-cert", nats_cert_file,
                 "Client certificate for NATS TLS");
  app.add_option("--nats-key", nats_key_file, "Client key for NATS TLS");
  app.add_flag_callback(
    "--nats-buffered", [this] { nats_send_asap = false; },
    "Let nats.c buffer publishes (throughput) instead of writing each at "
    "once (latency, the default)");
  app.add_option("--outbox", limits.outbox_capacity,
                 "Envelopes that may wait while NATS (or, for durable sends, "
                 "the store) is unreachable")
    ->capture_default_str();
  app.add_option("--stream-max-len", stream_max_len,
                 "Approximate bound of each durable stream (XADD MAXLEN ~)")
    ->capture_default_str();
  app
    .add_option_function<uint64_t>(
      "--stream-max-age-s",
      [this](uint64_t s) { stream_max_age = std::chrono::seconds(s); },
      "Also trim durable stream entries older than this, in seconds (0: "
      "only by length)")
    ->default_str("0");
  app.add_option("--dedup-window", limits.dedup_window,
                 "Envelope ids each Nova remembers to drop durable "
                 "redeliveries")
    ->capture_default_str();
  app
    .add_option_function<std::string>(
      "--store",
      [this](const std::string& v) {
        auto st = parse_store(v);
        if (!st)
          throw CLI::ValidationError("--store", describe(st.error()));
        store = *st;
      },
      "Store for tasks, presence and durable sends: memory (this process; "
      "no durable sends) | redis (DragonflyDB at --dragonfly-url, shared "
      "by the cluster) (env NOVA_STORE)")
    ->default_str(to_string(store));
  app.add_option("--dragonfly-url", dragonfly_url,
                 "redis://[:password@]host:port[/db] (env DRAGONFLY_URL)")
    ->capture_default_str();
  app.add_option("--prefix", prefix, "Subject and key prefix (env NOVA_PREFIX)")
    ->capture_default_str();
  app.add_option("--threads", threads, "Scheduler threads, 0 = one per core")
    ->capture_default_str();
  app
    .add_option_function<uint64_t>(
      "--heartbeat-ms",
      [this](uint64_t ms) {
        limits.heartbeat_interval = std::chrono::milliseconds(ms);
      },
      "Presence heartbeat interval in ms (env NOVA_HEARTBEAT_MS)")
    ->default_str(std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
        limits.heartbeat_interval)
        .count()));
  app.add_option("--max-payload", limits.max_payload,
                 "Largest payload in bytes (env NOVA_MAX_PAYLOAD)")
    ->capture_default_str();
  app.add_option("--delivery-limit", limits.delivery_limit,
                 "Deliveries of a task before it becomes a dead letter")
    ->capture_default_str();
  app
    .add_option_function<uint64_t>(
      "--task-timeout-ms",
      [this](uint64_t ms) {
        limits.task_timeout = std::chrono::milliseconds(ms);
      },
      "A claimed task not finished within this many ms is failed and "
      "retried; with --store redis, claims of a node that died are taken "
      "over after 1.5 times this")
    ->default_str(std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
        limits.task_timeout)
        .count()));
  app
    .add_option_function<uint64_t>(
      "--task-id-ttl-s",
      [this](uint64_t s) { limits.task_id_ttl = std::chrono::seconds(s); },
      "With --store redis: a task id stays taken this many seconds after "
      "its enqueue, done or not (one member of nova.tasks.known per id, "
      "about 150 bytes for a 36-character id: shorten it for high task "
      "rates)")
    ->default_str(std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(limits.task_id_ttl)
        .count()));
  app.add_option("--http", http.address,
                 "Serve JSON-RPC, /health, /metrics, /ws and the dashboard "
                 "on HOST:PORT (port 0: any free port; default for nova "
                 "node: "
                   + std::string{default_http_address}
                   + ", skipped with a warning when taken) (env NOVA_HTTP)");
  app.add_flag("--no-http", http.off,
               "Serve no HTTP at all (nova node serves on "
               + std::string{default_http_address} + " unless told)");
  app.add_option("--http-token", http.token,
                 "Require 'Authorization: Bearer TOKEN' on HTTP requests "
                 "(env NOVA_HTTP_TOKEN)");
  app.add_option("--http-max-body", http.max_body,
                 "Largest HTTP request body in bytes")
    ->capture_default_str();
  app.add_option("--rpc-max-batch", http.rpc_max_batch,
                 "Most calls in one JSON-RPC batch")
    ->capture_default_str();
  app.add_option("--rpc-max-depth", http.rpc_max_depth,
                 "Deepest JSON nesting accepted by /rpc")
    ->capture_default_str();
  app.add_option("--ws-queue", http.ws_queue,
                 "Frames queued per WebSocket client before drops")
    ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "trace|debug|info|warn|error|off (env NOVA_LOG_LEVEL)")
    ->capture_default_str();
}

caf::error config::validate() const {
  if (auto err = check_id(node_id, "node id"))
    return err;
  if (auto n = naming::make(prefix); !n)
    return n.error();
  if (limits.heartbeat_interval <= caf::timespan{0})
    return make_error(errc::invalid_argument,
                      "the heartbeat interval must be positive");
  if (limits.max_payload == 0)
    return make_error(errc::invalid_argument,
                      "the payload limit must be positive");
  if (limits.outbox_capacity == 0)
    return make_error(errc::invalid_argument,
                      "the outbox capacity must be at least 1");
  if (limits.task_timeout <= caf::timespan{0})
    return make_error(errc::invalid_argument,
                      "the task timeout must be positive");
  if (limits.task_id_ttl < std::chrono::seconds(1))
    return make_error(errc::invalid_argument,
                      "the task id TTL must be at least 1 s");
  if (limits.delivery_limit == 0)
    return make_error(errc::invalid_argument,
                      "the delivery limit must be at least 1");
  if (!http.address.empty()) {
    auto colon = http.address.rfind(':');
    if (colon == std::string::npos || colon == 0
        || colon + 1 == http.address.size()
        || http.address.find_first_not_of("0123456789", colon + 1)
             != std::string::npos
        || std::stoul(http.address.substr(colon + 1).substr(0, 6)) > 65535)
      return make_error(errc::invalid_argument,
                        "--http '" + http.address
                          + "' is not HOST:PORT (e.g. 127.0.0.1:8080)");
  }
  if (http.max_body == 0 || http.rpc_max_batch == 0 || http.rpc_max_depth == 0
      || http.ws_queue == 0 || http.workers == 0)
    return make_error(errc::invalid_argument,
                      "HTTP limits (--http-max-body, --rpc-max-batch, "
                      "--rpc-max-depth, --ws-queue) must be positive");
  return caf::none;
}

} // namespace nova
