#pragma once

#include <atomic>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/error.hpp>

namespace nova {

/// The node's local directory: which Novas run here, their groups and event
/// subscriptions. Thread safe; any thread may read it, so a send can tell at
/// once whether its target is local. Readers that cache lookups compare
/// `version()`, which changes whenever a Nova comes or goes.
class directory {
public:
  /// Reserves `id` for a Nova about to be spawned, with its capabilities
  /// and groups; `errc::duplicate_id` if the id is taken. Until `bind`, the
  /// id is taken but `find` returns an invalid handle.
  [[nodiscard]] caf::error reserve(const std::string& id,
                                   std::vector<std::string> capabilities,
                                   const std::vector<std::string>& groups);

  /// Makes a reserved id reachable.
  void bind(const std::string& id, caf::actor handle);

  /// Drops a reservation that was never bound.
  void release(const std::string& id);

  /// Removes `id` if it still maps to `handle` (a newer Nova that reused the
  /// id stays).
  void remove(const std::string& id, const caf::actor_addr& handle);

  [[nodiscard]] caf::actor find(const std::string& id) const;
  [[nodiscard]] bool contains(const std::string& id) const;
  [[nodiscard]] std::vector<std::string> ids() const;
  [[nodiscard]] std::vector<caf::actor> all() const;
  [[nodiscard]] size_t size() const;

  void join(const std::string& id, const std::string& group);
  void leave(const std::string& id, const std::string& group);
  [[nodiscard]] std::vector<caf::actor>
  group_members(const std::string& group) const;

  void subscribe(const std::string& id, const std::string& pattern);
  void unsubscribe(const std::string& id, const std::string& pattern);
  /// Each local Nova with at least one pattern matching `subject`, once.
  [[nodiscard]] std::vector<caf::actor>
  subscribers(std::string_view subject) const;

  /// Local Novas that declared `capability`.
  [[nodiscard]] std::vector<std::string>
  with_capability(const std::string& capability) const;

  [[nodiscard]] uint64_t version() const noexcept {
    return version_.load(std::memory_order_acquire);
  }

private:
  struct entry {
    caf::actor handle;
    std::vector<std::string> capabilities;
    std::unordered_set<std::string> groups;
    std::unordered_set<std::string> patterns;
  };

  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, entry> novas_;
  std::unordered_map<std::string, std::unordered_set<std::string>> groups_;
  // pattern -> subscribed nova ids
  std::unordered_map<std::string, std::unordered_set<std::string>> patterns_;
  std::atomic<uint64_t> version_{0};
};

} // namespace nova
