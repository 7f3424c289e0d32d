#include "actors/directory.hpp"

#include <algorithm>
#include <mutex>

#include "cluster/naming.hpp"
#include "messages/errc.hpp"

namespace nova {

caf::error directory::reserve(const std::string& id,
                              std::vector<std::string> capabilities,
                              const std::vector<std::string>& groups) {
  std::unique_lock guard{mtx_};
  auto [i, added] = novas_.try_emplace(id);
  if (!added)
    return make_error(errc::duplicate_id,
                      "a Nova named '" + id + "' already runs on this node");
  i->second.capabilities = std::move(capabilities);
  for (const auto& g : groups) {
    i->second.groups.insert(g);
    groups_[g].insert(id);
  }
  return caf::none;
}

void directory::bind(const std::string& id, caf::actor handle) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i == novas_.end())
    return;
  i->second.handle = std::move(handle);
  version_.fetch_add(1, std::memory_order_release);
}

void directory::release(const std::string& id) {
  auto i = novas_.end();
  {
    std::shared_lock guard{mtx_};
    i = novas_.find(id);
    if (i == novas_.end() || i->second.handle)
      return;
  }
  remove(id, caf::actor_addr{});
}

void directory::remove(const std::string& id, const caf::actor_addr& handle) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i == novas_.end() || i->second.handle.address() != handle)
    return;
  for (const auto& g : i->second.groups) {
    auto j = groups_.find(g);
    if (j != groups_.end()) {
      j->second.erase(id);
      if (j->second.empty())
        groups_.erase(j);
    }
  }
  for (const auto& p : i->second.patterns) {
    auto j = patterns_.find(p);
    if (j != patterns_.end()) {
      j->second.erase(id);
      if (j->second.empty())
        patterns_.erase(j);
    }
  }
  novas_.erase(i);
  version_.fetch_add(1, std::memory_order_release);
}

caf::actor directory::find(const std::string& id) const {
  std::shared_lock guard{mtx_};
  auto i = novas_.find(id);
  return i != novas_.end() ? i->second.handle : caf::actor{};
}

bool directory::contains(const std::string& id) const {
  std::shared_lock guard{mtx_};
  return novas_.count(id) > 0;
}

std::vector<std::string> directory::ids() const {
  std::shared_lock guard{mtx_};
  std::vector<std::string> out;
  out.reserve(novas_.size());
  for (const auto& kvp : novas_)
    out.push_back(kvp.first);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<caf::actor> directory::all() const {
  std::shared_lock guard{mtx_};
  std::vector<caf::actor> out;
  out.reserve(novas_.size());
  for (const auto& kvp : novas_)
    if (kvp.second.handle)
      out.push_back(kvp.second.handle);
  return out;
}

size_t directory::size() const {
  std::shared_lock guard{mtx_};
  return novas_.size();
}

void directory::join(const std::string& id, const std::string& group) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i == novas_.end())
    return;
  i->second.groups.insert(group);
  groups_[group].insert(id);
}

void directory::leave(const std::string& id, const std::string& group) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i != novas_.end())
    i->second.groups.erase(group);
  auto j = groups_.find(group);
  if (j != groups_.end()) {
    j->second.erase(id);
    if (j->second.empty())
      groups_.erase(j);
  }
}

std::vector<caf::actor>
directory::group_members(const std::string& group) const {
  std::shared_lock guard{mtx_};
  std::vector<caf::actor> out;
  auto j = groups_.find(group);
  if (j == groups_.end())
    return out;
  out.reserve(j->second.size());
  for (const auto& id : j->second)
    if (auto i = novas_.find(id); i != novas_.end() && i->second.handle)
      out.push_back(i->second.handle);
  return out;
}

void directory::subscribe(const std::string& id, const std::string& pattern) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i == novas_.end())
    return;
  i->second.patterns.insert(pattern);
  patterns_[pattern].insert(id);
}

void directory::unsubscribe(const std::string& id,
                            const std::string& pattern) {
  std::unique_lock guard{mtx_};
  auto i = novas_.find(id);
  if (i != novas_.end())
    i->second.patterns.erase(pattern);
  auto j = patterns_.find(pattern);
  if (j != patterns_.end()) {
    j->second.erase(id);
    if (j->second.empty())
      patterns_.erase(j);
  }
}

std::vector<caf::actor>
directory::subscribers(std::string_view subject) const {
  std::shared_lock guard{mtx_};
  std::unordered_set<std::string_view> ids;
  for (const auto& [pattern, members] : patterns_)
    if (subject_matches(pattern, subject))
      for (const auto& id : members)
        ids.insert(id);
  std::vector<caf::actor> out;
  out.reserve(ids.size());
  for (auto id : ids)
    if (auto i = novas_.find(std::string{id});
        i != novas_.end() && i->second.handle)
      out.push_back(i->second.handle);
  return out;
}

std::vector<std::string>
directory::with_capability(const std::string& capability) const {
  std::shared_lock guard{mtx_};
  std::vector<std::string> out;
  for (const auto& [id, e] : novas_)
    if (std::find(e.capabilities.begin(), e.capabilities.end(), capability)
        != e.capabilities.end())
      out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace nova
