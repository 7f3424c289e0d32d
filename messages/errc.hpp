#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace nova {

/// Every error Nova reports. Values are stable: they cross the wire.
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  /// An id (nova, node, group, session, domain, action) is not [A-Za-z0-9_-]{1,64}.
  invalid_id,
  /// No Nova with that id is known to this node or the cluster.
  unknown_nova,
  /// A Nova with that id already runs on this node.
  duplicate_id,
  /// The payload is larger than the configured limit.
  payload_too_large,
  /// A request got no reply within its timeout.
  request_timeout,
  /// The receiving Nova has no handler for this kind of message.
  no_handler,
  /// A handler threw or returned an error.
  handler_failed,
  /// A bounded queue (outbox, mailbox, task lane) is full.
  queue_full,
  /// No task, dead letter or record with that id.
  not_found,
  /// The node is shutting down and takes no new work.
  shutting_down,
  /// Bytes from the wire or the store could not be decoded.
  decode_failed,
  /// An argument is malformed (a subject pattern, a priority name, ...).
  invalid_argument,
  /// A backend (NATS, the store) is not reachable right now.
  backend_unavailable,
  /// A feature is not available with the configured backend.
  unsupported,
  /// An error code this build does not know (from a newer peer).
  unknown = 255,
};

[[nodiscard]] const char* to_string(errc x) noexcept;

/// The inverse of `to_string`; `errc::unknown` for names this build does not
/// know (a newer peer's).
[[nodiscard]] errc parse_errc(std::string_view name) noexcept;

/// The Nova error code carried by `err`: its own for Nova errors, the
/// closest one for CAF's (a timeout is `request_timeout`), else
/// `handler_failed`.
[[nodiscard]] errc code_of(const caf::error& err) noexcept;

/// The category atom under which Nova errors travel in `caf::error`.
constexpr caf::atom_value errc_category = caf::atom("nova");

[[nodiscard]] caf::error make_error(errc x);
[[nodiscard]] caf::error make_error(errc x, std::string context);

/// Renders any `caf::error` (Nova's, CAF's or none) for humans.
[[nodiscard]] std::string describe(const caf::error& err);

/// True when `err` is the Nova error `x`.
[[nodiscard]] bool is(const caf::error& err, errc x) noexcept;

} // namespace nova
