#pragma once

#include <chrono>
#include <cstddef>
#include <ostream>
#include <string>

namespace nova {

/// Exit codes of the client subcommands (`nova send`, `request`, `pub`, ...).
namespace client_exit {
/// Sent, or the reply printed.
constexpr int ok = 0;
/// A runtime failure: NATS unreachable, no responder, a timeout, an error
/// reply.
constexpr int failure = 1;
/// Bad input (an invalid id, group, subject, URL, priority or JSON payload);
/// nothing was sent.
constexpr int usage = 2;
} // namespace client_exit

/// What every client subcommand shares. The CLI talks to NATS directly, as
/// any other NATS client would, without starting a node.
struct client_options {
  /// One URL or a comma-separated list of a cluster's servers.
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string prefix = "nova";
  /// The sender id in the envelope.
  std::string from = "cli";
  /// The payload is JSON: it travels as the message body with
  /// `Content-Type: application/json` (the JSON interop of the wire
  /// contract), so the receiver sees it from `anonymous`.
  bool json = false;
  /// low|normal|high|urgent.
  std::string priority = "normal";
  /// How long `request` waits for the reply.
  std::chrono::milliseconds timeout{5000};
  /// The CLI fails fast: one attempt per server, each bounded by this.
  std::chrono::milliseconds connect_timeout{2000};
  /// Also print (to the error stream) what was sent, and for requests who
  /// replied, the correlation id and the latency.
  bool verbose = false;
};

/// Where `send` and `request` go: one Nova by id, or exactly one of the Novas
/// with a capability (the NATS queue group `<prefix>.capability.<id>`).
struct recipient {
  std::string id;
  bool any = false;
};

/// What `nova sub` tails.
struct sub_options {
  /// Relative to the prefix (`>`, `events.orders.*`, `inbox.bob`,
  /// `presence.*`); NATS wildcards allowed.
  std::string pattern = ">";
  /// Exit after this many messages; 0: never.
  size_t count = 0;
  /// Exit (with 0) after this long, however many messages arrived; 0: never.
  std::chrono::milliseconds timeout{0};
  /// One JSON object per line: `{"subject": ..., "envelope": ...}`.
  bool json = false;
};

// Each function checks its input, connects, does its one thing and returns
// an exit code (`client_exit`). Results go to `out`; diagnostics, prefixed
// with the command name, go to `err`.

/// A direct message (kind direct) to `<prefix>.inbox.<id>`, or to
/// `<prefix>.capability.<id>` for `any`.
[[nodiscard]] int client_send(const client_options& opts, const recipient& to,
                              const std::string& payload, std::ostream& out,
                              std::ostream& err);

/// A request; prints the reply's payload (with `json`, the JSON reply body)
/// and a newline to `out`.
[[nodiscard]] int client_request(const client_options& opts,
                                 const recipient& to,
                                 const std::string& payload, std::ostream& out,
                                 std::ostream& err);

/// An event on `<prefix>.events.<subject>`; `subject` is
/// `<domain>.<action>[.<more>]`.
[[nodiscard]] int client_publish(const client_options& opts,
                                 const std::string& subject,
                                 const std::string& payload, std::ostream& out,
                                 std::ostream& err);

[[nodiscard]] int client_broadcast(const client_options& opts,
                                   const std::string& payload,
                                   std::ostream& out, std::ostream& err);

[[nodiscard]] int client_multicast(const client_options& opts,
                                   const std::string& group,
                                   const std::string& payload,
                                   std::ostream& out, std::ostream& err);

/// On `<prefix>.emergency`, always with priority urgent.
[[nodiscard]] int client_emergency(const client_options& opts,
                                   const std::string& payload,
                                   std::ostream& out, std::ostream& err);

/// Prints one line per message on `<prefix>.<pattern>` until `count`
/// messages, `timeout`, SIGINT or SIGTERM. Writes "listening on <subject>" to
/// `err` once the server knows the subscription.
[[nodiscard]] int client_sub(const client_options& opts,
                             const sub_options& sub, std::ostream& out,
                             std::ostream& err);

} // namespace nova
