#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "messages/types.hpp"

namespace nova {

/// How to reach and talk to a NATS server or cluster.
struct nats_settings {
  /// One URL per server; several URLs name the members of one NATS cluster.
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  /// Connection name, shown by the server's monitoring.
  std::string name = "nova";
  /// Optional credentials; URLs may carry `user:pass@` as well.
  std::string user;
  std::string password;
  std::string token;
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool tls_skip_verify = false;
  caf::timespan connect_timeout = std::chrono::seconds(2);
  caf::timespan reconnect_wait = std::chrono::milliseconds(250);
  /// Upper bound of a random delay added to `reconnect_wait`.
  caf::timespan reconnect_jitter = std::chrono::milliseconds(100);
  /// -1: reconnect forever.
  int max_reconnects = -1;
  /// Write every publish to the socket at once: lowest latency.
  bool send_asap = true;
  /// Return from `connect` while the server is down and connect later.
  bool retry_on_failed_connect = true;
  /// Publishes buffered while reconnecting; beyond it publish is `queue_full`.
  int64_t reconnect_buffer_bytes = 8 << 20;
  /// Per subscription. Raised well above nats.c's defaults on purpose: a
  /// gateway subscription fans in a whole cluster's traffic.
  int pending_msgs_limit = 1'000'000;
  int64_t pending_bytes_limit = int64_t{1} << 30;
  /// The NATS headers copied into each `nats_message` (received messages and
  /// request replies); empty copies them all. Naming the few a handler reads
  /// saves copying the rest on every message.
  std::vector<std::string> header_keys;
  /// How long the destructor lets subscriptions drain before closing.
  caf::timespan drain_timeout = std::chrono::seconds(2);

  /// Parses "nats://a:4222,nats://b:4223" (comma-separated) into `servers`;
  /// a `tls://` URL turns on `tls`.
  [[nodiscard]] static caf::expected<nats_settings>
  from_url(const std::string& urls);
};

/// One received message, copied out of nats.c.
struct nats_message {
  std::string subject;
  /// Empty when the sender expects no reply.
  std::string reply;
  /// Bytes; may hold NULs. Empty on a `subscribe_borrowed` subscription:
  /// see `borrowed` and `bytes()`.
  std::string data;
  /// On a `subscribe_borrowed` subscription: the bytes in nats.c's buffer,
  /// valid only until the handler returns.
  std::string_view borrowed;
  /// First value of each NATS header (a no-responders reply carries
  /// `Status: 503`).
  nova::headers headers;
  /// The bytes, owned or borrowed.
  [[nodiscard]] std::string_view bytes() const noexcept {
    return borrowed.data() != nullptr ? borrowed : std::string_view{data};
  }
  /// The server's "no responders" status for a request sent with `reply`
  /// set to a subscribed inbox.
  bool no_responders = false;
  /// Messages still queued for the same subscription after this one, so a
  /// handler can batch its hand-offs.
  uint64_t pending = 0;
};

enum class nats_event {
  /// The first connection came up after `connect` returned (only with
  /// `retry_on_failed_connect` while the server was down).
  connected,
  /// The connection to the current server broke; nats.c is reconnecting.
  disconnected,
  /// Connected again, subscriptions re-established.
  reconnected,
  /// Closed for good: by the destructor or after `max_reconnects`.
  closed,
};

[[nodiscard]] const char* to_string(nats_event x) noexcept;

/// Pending limits for one subscription: beyond either, messages are dropped
/// and reported as a slow consumer. Both must be positive.
struct nats_pending_limits {
  int msgs = 0;
  int64_t bytes = 0;
};

/// An active subscription. Its destructor unsubscribes and waits for a
/// running handler to return, so the handler never runs afterwards (it does
/// not wait when the handler itself destroys its subscription).
class nats_subscription {
public:
  struct impl;

  explicit nats_subscription(std::unique_ptr<impl> x) noexcept;
  nats_subscription(const nats_subscription&) = delete;
  nats_subscription& operator=(const nats_subscription&) = delete;
  ~nats_subscription();

  [[nodiscard]] const std::string& subject() const noexcept;
  /// Messages nats.c dropped so far because the handler fell behind.
  [[nodiscard]] uint64_t dropped() const;

private:
  std::unique_ptr<impl> impl_;
};

/// A connection to NATS (the RAII adapter over nats.c). Every member
/// function is thread-safe. Handlers run on nats.c threads: they hand off
/// (e.g. `anon_send`) and return, and they must not destroy the client.
class nats_client {
public:
  struct impl;

  /// Runs on a nats.c thread, one message at a time per subscription.
  using message_handler = std::function<void(nats_message&&)>;
  /// Runs on nats.c's callback thread.
  using event_handler = std::function<void(nats_event)>;
  /// A subscription dropped messages because its handler fell behind:
  /// `dropped` is the number not reported before. Runs on nats.c's callback
  /// thread, or in `~nats_subscription` for drops not yet reported.
  using error_handler
    = std::function<void(const std::string& subject, uint64_t dropped)>;

  /// `backend_unavailable` when no server answers (unless
  /// `retry_on_failed_connect`), `invalid_argument` for malformed settings.
  [[nodiscard]] static caf::expected<std::unique_ptr<nats_client>>
  connect(nats_settings s, event_handler on_event = {},
          error_handler on_slow = {});

  explicit nats_client(std::unique_ptr<impl> x) noexcept;
  nats_client(const nats_client&) = delete;
  nats_client& operator=(const nats_client&) = delete;

  /// Drains subscriptions (bounded by `drain_timeout`), closes and destroys
  /// the connection. No handler runs after it returns.
  ~nats_client();

  /// `invalid_argument` for a bad subject, reply or header;
  /// `payload_too_large` beyond `max_payload()`; `queue_full` when the
  /// reconnect buffer is full; `backend_unavailable` when closed.
  caf::error publish(const std::string& subject, std::string_view data,
                     const nova::headers& hdrs = {},
                     const std::string& reply = {});

  /// One NATS header as NUL-terminated strings the caller keeps alive for
  /// the call; for hot paths that should not build a `nova::headers` map.
  struct header_ref {
    const char* key;
    const char* value;
  };

  /// As `publish`, with a subject, reply subject and headers the caller
  /// vouches for (subjects built by `naming`; printable header keys, values
  /// without CR, LF or NUL): they are not checked again.
  caf::error publish_trusted(const std::string& subject, std::string_view data,
                             const header_ref* hdrs, size_t count,
                             const std::string& reply = {});

  /// `subject` may use `*` and `>` wildcards. The server knows about the
  /// subscription once a later `flush` returns.
  [[nodiscard]] caf::expected<std::unique_ptr<nats_subscription>>
  subscribe(const std::string& subject, message_handler f,
            const std::string& queue_group = {});

  /// As above with pending limits other than the settings' ones.
  [[nodiscard]] caf::expected<std::unique_ptr<nats_subscription>>
  subscribe(const std::string& subject, message_handler f,
            const std::string& queue_group, nats_pending_limits limits);

  /// As `subscribe`, but without copying each message's bytes: the handler
  /// reads them through `bytes()` (`borrowed`), valid only until it returns.
  [[nodiscard]] caf::expected<std::unique_ptr<nats_subscription>>
  subscribe_borrowed(const std::string& subject, message_handler f,
                     const std::string& queue_group = {});

  /// Blocking request (for CLIs and benchmarks): `request_timeout` on
  /// timeout, `unknown_nova` when the server reports no responders.
  [[nodiscard]] caf::expected<nats_message>
  request(const std::string& subject, std::string_view data,
          const nova::headers& hdrs, caf::timespan timeout);

  /// Round trip to the server: everything published before has reached it.
  /// `backend_unavailable` when disconnected or without a PONG in time.
  caf::error flush(caf::timespan timeout);

  [[nodiscard]] bool connected() const;
  /// Empty if unknown.
  [[nodiscard]] std::string server_id() const;
  /// Empty while disconnected.
  [[nodiscard]] std::string connected_url() const;
  [[nodiscard]] caf::expected<caf::timespan> rtt();
  /// Count of reconnected events.
  [[nodiscard]] uint64_t reconnects() const;
  /// Sum of the drops reported through the error handler.
  [[nodiscard]] uint64_t slow_consumer_drops() const;
  /// A unique inbox subject.
  [[nodiscard]] std::string new_inbox() const;
  /// The server's max payload in bytes (0 before the first connection).
  [[nodiscard]] int64_t max_payload() const;

private:
  caf::expected<std::unique_ptr<nats_subscription>>
  subscribe_impl(const std::string& subject, message_handler f,
                 const std::string& queue_group, nats_pending_limits limits,
                 bool borrow);

  std::unique_ptr<impl> impl_;
};

static_assert(std::is_nothrow_move_constructible_v<nats_message>);
static_assert(!std::is_copy_constructible_v<nats_client>);
static_assert(!std::is_copy_constructible_v<nats_subscription>);

} // namespace nova
