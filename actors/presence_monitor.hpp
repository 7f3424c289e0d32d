#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/timespan.hpp>

#include "actors/context.hpp"
#include "messages/types.hpp"

namespace nova {

/// Presence bookkeeping without actors: the last known presence of every
/// Nova, heartbeat times, and which Novas went quiet. Time is passed in.
class presence_table {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// A Nova whose last heartbeat is older than `timeout` counts as offline.
  explicit presence_table(caf::timespan timeout) : timeout_(timeout) {
    // nop
  }

  /// Records a presence update or heartbeat. Returns the new presence when
  /// it is a change others should hear of (new Nova, other status or task).
  std::optional<presence> update(presence p, time_point now);

  /// Marks a Nova offline because it stopped; returns the change, if any.
  std::optional<presence> leave(const std::string& nova_id);

  /// Marks Novas whose heartbeats stopped as offline; returns the changes.
  std::vector<presence> sweep(time_point now);

  [[nodiscard]] std::vector<presence> list() const;

  /// Novas not offline with `capability` (all of them when empty).
  [[nodiscard]] std::vector<presence>
  discover(const std::string& capability) const;

  [[nodiscard]] std::optional<presence> find(const std::string& id) const;

  /// How many Novas are in each status (index: status value - 1).
  [[nodiscard]] std::vector<uint64_t> counts() const;

private:
  struct entry {
    presence p;
    time_point last_heartbeat;
  };

  caf::timespan timeout_;
  std::map<std::string, entry> entries_;
};

/// Spawns the presence monitor of a node. It keeps a `presence_table`, marks
/// Novas offline once no heartbeat came for 1.5 heartbeat intervals (checked
/// every quarter interval), and sends each change as a `presence` message to
/// every watcher. A new watcher first gets the presence of every known Nova.
///
/// Messages: `(presence_atom, presence)`, `(heartbeat_atom, presence)`,
/// `(leave_atom, nova_id)`, `(watch_atom, actor)`,
/// `(discover_atom, capability) -> std::vector<presence>`,
/// `(list_atom) -> std::vector<presence>`.
caf::actor spawn_presence_monitor(caf::actor_system& sys, context_ptr ctx);

} // namespace nova
