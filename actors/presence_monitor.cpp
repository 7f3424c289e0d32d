#include "actors/presence_monitor.hpp"

#include <algorithm>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/quiet.hpp"

#include "messages/ids.hpp"

namespace nova {

// -- presence_table -----------------------------------------------------------

std::optional<presence> presence_table::update(presence p, time_point now) {
  auto i = entries_.find(p.nova_id);
  if (i == entries_.end()) {
    auto id = p.nova_id;
    entries_.emplace(id, entry{p, now});
    return p;
  }
  auto& e = i->second;
  bool changed = e.p.status != p.status || e.p.current_task != p.current_task
                 || e.p.node_id != p.node_id;
  e.p = std::move(p);
  e.last_heartbeat = now;
  if (changed)
    return e.p;
  return std::nullopt;
}

std::optional<presence> presence_table::leave(const std::string& nova_id) {
  auto i = entries_.find(nova_id);
  if (i == entries_.end() || i->second.p.status == presence_status::offline)
    return std::nullopt;
  i->second.p.status = presence_status::offline;
  i->second.p.current_task.clear();
  i->second.p.last_seen = now_ms();
  return i->second.p;
}

std::vector<presence> presence_table::sweep(time_point now) {
  std::vector<presence> out;
  for (auto& [id, e] : entries_) {
    if (e.p.status == presence_status::offline)
      continue;
    if (now - e.last_heartbeat > timeout_) {
      e.p.status = presence_status::offline;
      e.p.current_task.clear();
      out.push_back(e.p);
    }
  }
  return out;
}

std::vector<presence> presence_table::list() const {
  std::vector<presence> out;
  out.reserve(entries_.size());
  for (const auto& kvp : entries_)
    out.push_back(kvp.second.p);
  return out;
}

std::vector<presence>
presence_table::discover(const std::string& capability) const {
  std::vector<presence> out;
  for (const auto& kvp : entries_) {
    const auto& p = kvp.second.p;
    if (p.status == presence_status::offline)
      continue;
    if (capability.empty()
        || std::find(p.capabilities.begin(), p.capabilities.end(), capability)
             != p.capabilities.end())
      out.push_back(p);
  }
  return out;
}

std::optional<presence> presence_table::find(const std::string& id) const {
  auto i = entries_.find(id);
  if (i == entries_.end())
    return std::nullopt;
  return i->second.p;
}

std::vector<uint64_t> presence_table::counts() const {
  std::vector<uint64_t> out(4, 0);
  for (const auto& kvp : entries_)
    ++out[static_cast<size_t>(kvp.second.p.status) - 1];
  return out;
}

// -- presence monitor actor ---------------------------------------------------

namespace {

struct monitor_state {
  static inline const char* name = "nova.presence_monitor";

  presence_table table{caf::timespan{0}};
  std::vector<caf::actor> watchers;
  context_ptr ctx;
};

using monitor_actor = caf::stateful_actor<monitor_state>;

void announce(monitor_actor* self, const presence& p) {
  self->state.ctx->stats.add(counter::presence_changes);
  for (const auto& w : self->state.watchers)
    self->send(w, p);
}

} // namespace

caf::actor spawn_presence_monitor(caf::actor_system& sys, context_ptr ctx) {
  auto interval = ctx->limits.heartbeat_interval;
  auto timeout = interval + interval / 2;
  auto sweep_every = std::max(caf::timespan{std::chrono::milliseconds(10)},
                              interval / 4);
  auto f = [timeout, sweep_every](monitor_actor* self,
                                  context_ptr ctx) -> caf::behavior {
    self->state.ctx = std::move(ctx);
    make_quiet(self, "presence monitor");
    self->state.table = presence_table{timeout};
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& ws = self->state.watchers;
      ws.erase(std::remove_if(ws.begin(), ws.end(),
                              [&](const caf::actor& w) {
                                return w.address() == dm.source;
                              }),
               ws.end());
    });
    self->delayed_send(self, sweep_every, sweep_atom::value);
    auto on_update = [self](presence& p) {
      auto& st = self->state;
      auto now = presence_table::clock::now();
      bool local = p.node_id == st.ctx->node_id;
      bool known = st.table.find(p.nova_id).has_value();
      auto changed = st.table.update(p, now);
      // Other nodes hear heartbeats and changes of local Novas; a new one is
      // announced by the gateway once its inbox is subscribed.
      if (local && known && st.ctx->bus)
        st.ctx->bus->publish_presence(p);
      if (changed)
        announce(self, *changed);
    };
    return {
      [on_update](presence_atom, presence& p) { on_update(p); },
      [on_update](heartbeat_atom, presence& p) { on_update(p); },
      [self](leave_atom, std::string& id) {
        auto& st = self->state;
        if (auto changed = st.table.leave(id)) {
          if (st.ctx->bus && changed->node_id == st.ctx->node_id)
            st.ctx->bus->publish_presence(*changed);
          announce(self, *changed);
        }
      },
      [self](republish_atom) {
        auto& st = self->state;
        if (!st.ctx->bus)
          return;
        for (auto& p : st.table.list())
          if (p.node_id == st.ctx->node_id
              && p.status != presence_status::offline)
            st.ctx->bus->publish_presence(p);
      },
      [self](watch_atom, caf::actor& who) {
        // A new watcher first hears the current state, then every change.
        for (auto& p : self->state.table.list())
          self->send(who, std::move(p));
        self->monitor(who);
        self->state.watchers.push_back(std::move(who));
      },
      [self, sweep_every](sweep_atom) {
        for (auto& p : self->state.table.sweep(presence_table::clock::now()))
          announce(self, p);
        self->delayed_send(self, sweep_every, sweep_atom::value);
      },
      [self](discover_atom, std::string& capability) {
        return self->state.table.discover(capability);
      },
      [self](list_atom) { return self->state.table.list(); },
    };
  };
  return sys.spawn(f, std::move(ctx));
}

} // namespace nova
