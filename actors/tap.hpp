#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "messages/types.hpp"

namespace nova {

/// Live copies of the envelopes a node sends and receives, for observers
/// such as the HTTP server's WebSocket feed. While nobody watches, a send
/// costs one relaxed load; `observe` runs on the sending or receiving
/// thread and must only hand off.
class envelope_tap {
public:
  virtual ~envelope_tap();

  [[nodiscard]] bool active() const noexcept {
    return active_.load(std::memory_order_relaxed);
  }

  /// `inbound`: the envelope came from another node, on the NATS subject
  /// `wire_subject` (with the prefix); empty for what this node sends.
  virtual void observe(const envelope& env, bool inbound,
                       std::string_view wire_subject)
    = 0;

protected:
  std::atomic<bool> active_{false};
};

/// Where `env` travels on the bus, relative to the prefix (`inbox.bob`,
/// `events.orders.created`, `broadcast.all`, ...), as a `nova sub` pattern
/// would name it.
[[nodiscard]] std::string bus_subject(const envelope& env);

} // namespace nova
