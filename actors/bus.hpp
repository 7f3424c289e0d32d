#pragma once

#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message_id.hpp>
#include <caf/timespan.hpp>

#include "messages/types.hpp"

namespace nova {

/// How a node reaches other nodes. Embedded nodes have none; clustered nodes
/// get one from their gateway. Thread safe: agents call it from their own
/// threads, so a remote send costs no extra actor hop.
class remote_bus {
public:
  virtual ~remote_bus();

  /// Sends an envelope to other nodes: direct (`to`), broadcast, multicast,
  /// event or emergency. Never blocks: while disconnected the envelope waits
  /// in a bounded outbox; `errc::queue_full` when that is full.
  virtual caf::error publish(const envelope& env) = 0;

  /// Sends an envelope to exactly one Nova with `capability`, on any node.
  virtual caf::error publish_any(const std::string& capability,
                                 const envelope& env) = 0;

  /// Sends the request `env` to another node: to `env.to`, or to one Nova
  /// with the capability named in its `capability_header`. The reply (an
  /// envelope of kind `response`, or an error) goes straight to
  /// `requester` as the response `response_id` of a request it made, with
  /// no actor hop in between; the requester keeps its own timeout. An error
  /// here means nothing was sent.
  virtual caf::error request(const envelope& env, caf::timespan timeout,
                             caf::strong_actor_ptr requester,
                             caf::message_id response_id)
    = 0;

  /// Answers a request that came from another node (see
  /// `wire_request_atom`): publishes `r` to the reply subject `reply_to`, as
  /// JSON when the request was JSON.
  virtual void reply(const std::string& reply_to,
                     const caf::expected<envelope>& r, bool json)
    = 0;

  /// True if a Nova with this id runs on another node, as far as presence
  /// heartbeats tell.
  [[nodiscard]] virtual bool knows(const std::string& nova_id) const = 0;

  /// True if a Nova on any node (this one included) has `capability`.
  [[nodiscard]] virtual bool
  knows_capability(const std::string& capability) const = 0;

  /// Tells other nodes about a local Nova's presence (changes and heartbeats).
  virtual void publish_presence(const presence& p) = 0;

  /// True while connected to the message bus.
  [[nodiscard]] virtual bool connected() const = 0;

  /// Envelopes waiting in the outbox.
  [[nodiscard]] virtual size_t outbox_depth() const = 0;
};

} // namespace nova
