#pragma once

#include <atomic>
#include <cstdint>
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
  /// What a tap wants to observe.
  enum class interest : uint8_t {
    none,
    /// Events only (e.g. to keep the last few for a late reader).
    events,
    all,
  };

  virtual ~envelope_tap();

  [[nodiscard]] bool active() const noexcept {
    return interest_.load(std::memory_order_relaxed) != interest::none;
  }

  /// Whether `observe` wants envelopes of kind `k` now.
  [[nodiscard]] bool wants(kind k) const noexcept {
    auto x = interest_.load(std::memory_order_relaxed);
    return x == interest::all || (x == interest::events && k == kind::event);
  }

  /// `inbound`: the envelope came from another node, on the NATS subject
  /// `wire_subject` (with the prefix); empty for what this node sends.
  virtual void observe(const envelope& env, bool inbound,
                       std::string_view wire_subject)
    = 0;

protected:
  std::atomic<interest> interest_{interest::none};
};

/// Where `env` travels on the bus, relative to the prefix (`inbox.bob`,
/// `events.orders.created`, `broadcast.all`, ...), as a `nova sub` pattern
/// would name it.
[[nodiscard]] std::string bus_subject(const envelope& env);

} // namespace nova
