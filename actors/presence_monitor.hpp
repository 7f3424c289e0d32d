#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
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

class presence_store;

/// Presence of local Novas waiting to be written to the presence store: the
/// latest heartbeat per Nova and the Novas that left, taken out as one batch
/// per write. No I/O, no actors.
class presence_writes {
public:
  struct batch {
    std::vector<presence> heartbeats;
    std::vector<std::string> leaves;
  };

  /// Queues a heartbeat (it replaces an older one of the same Nova and
  /// cancels its leave). `news`: others wait for it (new Nova, other status
  /// or task), so it should not wait for the next periodic write.
  void heartbeat(presence p, bool news);

  /// Queues a leave (it drops a queued heartbeat of the same Nova).
  void leave(const std::string& nova_id);

  /// Everything queued, in one batch; clears the queue.
  [[nodiscard]] batch take();

  /// Queues again the leaves of a batch that failed, except those of Novas
  /// that heartbeat again since.
  void restore(std::vector<std::string> leaves);

  [[nodiscard]] bool empty() const noexcept {
    return heartbeats_.empty() && leaves_.empty();
  }

  /// True when something queued should be written now.
  [[nodiscard]] bool urgent() const noexcept {
    return urgent_ && !empty();
  }

private:
  std::map<std::string, presence> heartbeats_;
  std::set<std::string> leaves_;
  bool urgent_ = false;
};

/// Spawns the presence monitor of a node. It keeps a `presence_table`, marks
/// Novas offline once no heartbeat came for 1.5 heartbeat intervals (checked
/// every quarter interval), and sends each change as a `presence` message to
/// every watcher. A new watcher first gets the presence of every known Nova.
///
/// With a `store` (`--store redis`), the store is the cluster-wide truth:
/// - heartbeats of local Novas are written in one batch per quarter interval
///   (news such as a new Nova, another status or a leave at once);
/// - every quarter interval the monitor sweeps the store and tells watchers
///   and, with a bus, other nodes about the Novas it marked offline (each
///   such change goes to exactly one node's sweep);
/// - `discover` and `list` answer from the store (`list` adds the Novas this
///   node knows of that the store does not list, as offline).
/// Store calls run on a helper thread, in order, so the monitor never waits
/// for the store. While the store is unreachable the monitor answers from
/// memory, `runtime_context::presence_store_ok` is false, and the trouble is
/// logged once per outage.
///
/// Messages: `(presence_atom, presence)`, `(heartbeat_atom, presence)`,
/// `(leave_atom, nova_id)`, `(watch_atom, actor)`,
/// `(discover_atom, capability) -> std::vector<presence>`,
/// `(list_atom) -> std::vector<presence>`.
caf::actor spawn_presence_monitor(caf::actor_system& sys, context_ptr ctx,
                                  std::shared_ptr<presence_store> store
                                  = nullptr);

} // namespace nova
