#include "actors/presence_monitor.hpp"

#include <algorithm>
#include <set>
#include <type_traits>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/quiet.hpp"
#include "cluster/presence_store.hpp"
#include "messages/errc.hpp"
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

// -- presence_writes ----------------------------------------------------------

void presence_writes::heartbeat(presence p, bool news) {
  leaves_.erase(p.nova_id);
  auto id = p.nova_id;
  heartbeats_[std::move(id)] = std::move(p);
  urgent_ = urgent_ || news;
}

void presence_writes::leave(const std::string& nova_id) {
  heartbeats_.erase(nova_id);
  leaves_.insert(nova_id);
  urgent_ = true;
}

presence_writes::batch presence_writes::take() {
  batch b;
  b.heartbeats.reserve(heartbeats_.size());
  for (auto& kvp : heartbeats_)
    b.heartbeats.push_back(std::move(kvp.second));
  b.leaves.assign(leaves_.begin(), leaves_.end());
  heartbeats_.clear();
  leaves_.clear();
  urgent_ = false;
  return b;
}

void presence_writes::restore(std::vector<std::string> leaves) {
  for (auto& id : leaves) {
    if (heartbeats_.count(id) > 0)
      continue;
    leaves_.insert(std::move(id));
    urgent_ = true;
  }
}

// -- presence monitor actor ---------------------------------------------------

namespace {

// Monitor -> store helper.
using store_write_atom = caf::atom_constant<caf::atom("pswrite")>;
using store_sweep_atom = caf::atom_constant<caf::atom("pssweep")>;
// Monitor -> itself: write queued news now.
using write_now_atom = caf::atom_constant<caf::atom("pswnow")>;

/// Most Novas `list` asks the store for.
constexpr size_t list_limit = 100'000;

bool transient(const caf::error& err) {
  return is(err, errc::backend_unavailable) || err == caf::sec::request_timeout
         || err == caf::sec::request_receiver_down;
}

// The helper thread never dies of a throwing store call (hiredis replies of
// an unexpected shape end up as std::out_of_range, allocation can fail).
template <class F>
auto guarded(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error(errc::backend_unavailable,
                      std::string{"a presence store call threw: "} + e.what());
  }
}

struct store_io_state {
  static inline const char* name = "nova.presence_store_io";

  std::shared_ptr<presence_store> store;
  // Novas whose presence the store refused (not for being unreachable):
  // logged once each.
  std::set<std::string> refused;
};

using store_io_actor = caf::stateful_actor<store_io_state>;

void refused(store_io_actor* self, const std::string& nova_id,
             const char* what, const caf::error& err) {
  if (self->state.refused.insert(nova_id).second)
    spdlog::warn("presence monitor: the presence store refused {} of Nova "
                 "'{}': {}",
                 what, nova_id, describe(err));
}

// Leaves, then heartbeats (one round trip for all of them). Stops at the
// first sign of an unreachable store; anything else concerns single Novas
// and is logged and skipped. Returns the number of changes.
caf::expected<uint64_t> write_batch(store_io_actor* self,
                                    std::vector<presence> beats,
                                    const std::vector<std::string>& leaves) {
  auto& store = *self->state.store;
  uint64_t changes = 0;
  for (auto& id : leaves) {
    auto r = store.leave(id, now_ms());
    if (!r) {
      if (transient(r.error()))
        return std::move(r.error());
      refused(self, id, "the leave", r.error());
      continue;
    }
    if (*r)
      ++changes;
  }
  if (beats.empty())
    return changes;
  auto now = now_ms();
  auto r = store.heartbeat_batch(beats, now);
  if (r)
    return changes + r->size();
  if (transient(r.error()))
    return std::move(r.error());
  // One bad Nova must not keep the others out of the store.
  for (auto& p : beats) {
    auto one = store.heartbeat(p, now);
    if (!one) {
      if (transient(one.error()))
        return std::move(one.error());
      refused(self, p.nova_id, "a heartbeat", one.error());
      continue;
    }
    if (*one)
      ++changes;
  }
  return changes;
}

// Runs the monitor's store calls one at a time, in the order asked, so a
// read sees the writes asked for before it. Detached: a call blocks for a
// round trip, and longer while the store is unreachable.
caf::behavior store_io(store_io_actor* self,
                       std::shared_ptr<presence_store> store) {
  self->state.store = std::move(store);
  make_quiet(self, "presence store");
  return {
    [self](store_write_atom, std::vector<presence>& beats,
           std::vector<std::string>& leaves) -> caf::result<uint64_t> {
      return guarded(
        [&] { return write_batch(self, std::move(beats), leaves); });
    },
    [self](store_sweep_atom) -> caf::result<std::vector<presence>> {
      return guarded([&] { return self->state.store->sweep(now_ms()); });
    },
    [self](discover_atom,
           std::string& capability) -> caf::result<std::vector<presence>> {
      return guarded(
        [&] { return self->state.store->discover(capability, now_ms()); });
    },
    [self](list_atom) -> caf::result<std::vector<presence>> {
      return guarded([&] { return self->state.store->list(list_limit); });
    },
  };
}

struct monitor_state {
  static inline const char* name = "nova.presence_monitor";

  presence_table table{caf::timespan{0}};
  std::vector<caf::actor> watchers;
  context_ptr ctx;

  // -- with a presence store ------------------------------------------------

  std::shared_ptr<presence_store> store;
  /// Runs the store calls (`store_io`).
  caf::actor io;
  presence_writes writes;
  size_t writes_in_flight = 0;
  bool write_scheduled = false;
  bool sweeping = false;
  /// False from a failed store call until the next one that succeeds.
  bool store_ok = true;
  /// Store calls that failed in the current outage.
  uint64_t failures = 0;
  /// How long `discover` and `list` wait for the store before they answer
  /// from memory.
  caf::timespan read_timeout{0};
};

using monitor_actor = caf::stateful_actor<monitor_state>;

void announce(monitor_actor* self, const presence& p) {
  self->state.ctx->stats.add(counter::presence_changes);
  for (const auto& w : self->state.watchers)
    self->send(w, p);
}

void store_answered(monitor_actor* self) {
  auto& st = self->state;
  if (st.store_ok)
    return;
  spdlog::info("presence monitor: the presence store answers again ({} "
               "calls failed meanwhile)",
               st.failures);
  st.store_ok = true;
  st.failures = 0;
  st.ctx->presence_store_ok.store(true);
}

// Logs once per outage, not once per call.
void store_failed(monitor_actor* self, const char* what,
                  const caf::error& err) {
  auto& st = self->state;
  ++st.failures;
  if (!st.store_ok) {
    spdlog::debug("presence monitor: {} failed: {}", what, describe(err));
    return;
  }
  spdlog::warn("presence monitor: {} failed: {}; answering from memory until "
               "the presence store is back",
               what, describe(err));
  st.store_ok = false;
  st.ctx->presence_store_ok.store(false);
}

// Writes what is queued; `force`: even while another write is in flight
// (a read must see it).
void write(monitor_actor* self, bool force = false) {
  auto& st = self->state;
  if (st.writes.empty() || (st.writes_in_flight > 0 && !force))
    return;
  auto b = st.writes.take();
  ++st.writes_in_flight;
  auto leaves = b.leaves; // put back if the write fails
  self
    ->request(st.io, caf::infinite, store_write_atom::value,
              std::move(b.heartbeats), std::move(b.leaves))
    .then(
      [self](uint64_t) {
        auto& st = self->state;
        --st.writes_in_flight;
        store_answered(self);
        if (st.writes.urgent())
          write(self);
      },
      [self, leaves](caf::error& err) mutable {
        auto& st = self->state;
        --st.writes_in_flight;
        store_failed(self, "writing presence to the store", err);
        // Heartbeats come again anyway; leaves do not.
        st.writes.restore(std::move(leaves));
      });
}

// News goes out without waiting for the next tick, after whatever else is in
// the mailbox now (a burst of new Novas becomes one write). While the store
// is unreachable only the ticks try again.
void write_soon(monitor_actor* self) {
  auto& st = self->state;
  if (!st.store || !st.store_ok || st.write_scheduled
      || st.writes_in_flight > 0 || !st.writes.urgent())
    return;
  st.write_scheduled = true;
  self->send(self, write_now_atom::value);
}

// A Nova the store sweep marked offline; only this node got the change, so
// it also goes to the other nodes. Unless a newer heartbeat arrived here.
void apply_swept(monitor_actor* self, presence p) {
  auto& st = self->state;
  if (auto known = st.table.find(p.nova_id);
      known && known->status != presence_status::offline
      && known->last_seen > p.last_seen)
    return;
  if (st.ctx->bus)
    st.ctx->bus->publish_presence(p);
  if (auto changed = st.table.update(std::move(p),
                                     presence_table::clock::now()))
    announce(self, *changed);
}

void sweep_store(monitor_actor* self) {
  auto& st = self->state;
  if (st.sweeping)
    return;
  st.sweeping = true;
  self->request(st.io, caf::infinite, store_sweep_atom::value)
    .then(
      [self](std::vector<presence>& changes) {
        self->state.sweeping = false;
        store_answered(self);
        for (auto& p : changes)
          apply_swept(self, std::move(p));
      },
      [self](caf::error& err) {
        self->state.sweeping = false;
        store_failed(self, "sweeping the presence store", err);
      });
}

// The store's Novas (none offline), plus the ones the table knows that the
// store does not list: offline as far as the cluster is concerned. Sorted
// by id, as the table lists them.
std::vector<presence> merge_list(const presence_table& table,
                                 std::vector<presence> xs) {
  std::set<std::string> listed;
  for (const auto& p : xs)
    listed.insert(p.nova_id);
  for (auto& p : table.list()) {
    if (listed.count(p.nova_id) > 0)
      continue;
    p.status = presence_status::offline;
    p.current_task.clear();
    xs.push_back(std::move(p));
  }
  std::sort(xs.begin(), xs.end(), [](const presence& x, const presence& y) {
    return x.nova_id < y.nova_id;
  });
  return xs;
}

// Answers a read from the store, after the writes queued so far; from the
// table when the store fails or takes longer than the read timeout.
template <class Atom, class Arg, class OnValue, class OnFallback>
caf::result<std::vector<presence>>
read_store(monitor_actor* self, const char* what, Atom atom, Arg arg,
           OnValue on_value, OnFallback fallback) {
  auto& st = self->state;
  write(self, true);
  auto rp = self->make_response_promise<std::vector<presence>>();
  auto on_error = [self, rp, what, fallback](caf::error& err) mutable {
    store_failed(self, what, err);
    rp.deliver(fallback());
  };
  auto on_ok = [self, rp, on_value](std::vector<presence>& xs) mutable {
    store_answered(self);
    rp.deliver(on_value(std::move(xs)));
  };
  if constexpr (std::is_same_v<Arg, caf::unit_t>)
    self->request(st.io, st.read_timeout, atom).then(on_ok, on_error);
  else
    self->request(st.io, st.read_timeout, atom, std::move(arg))
      .then(on_ok, on_error);
  return rp;
}

} // namespace

caf::actor spawn_presence_monitor(caf::actor_system& sys, context_ptr ctx,
                                  std::shared_ptr<presence_store> store) {
  auto interval = ctx->limits.heartbeat_interval;
  auto timeout = interval + interval / 2;
  auto sweep_every = std::max(caf::timespan{std::chrono::milliseconds(10)},
                              interval / 4);
  auto f = [timeout, sweep_every](monitor_actor* self, context_ptr ctx,
                                  std::shared_ptr<presence_store> store)
    -> caf::behavior {
    auto& st = self->state;
    st.ctx = std::move(ctx);
    make_quiet(self, "presence monitor");
    st.table = presence_table{timeout};
    if (store) {
      st.store = std::move(store);
      st.read_timeout = std::max(caf::timespan{std::chrono::milliseconds(10)},
                                 st.ctx->limits.request_timeout / 2);
      st.io = self->home_system().spawn<caf::detached>(store_io, st.store);
      self->attach_functor([io = st.io](const caf::error&) {
        caf::anon_send_exit(io, caf::exit_reason::user_shutdown);
      });
    }
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
      // The store gets what local Novas say themselves; what the gateway
      // forwards (sent anonymously) comes from other nodes, which write it.
      if (st.store && local && self->current_sender() != nullptr) {
        st.writes.heartbeat(std::move(p), changed.has_value());
        write_soon(self);
      }
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
        if (st.store) {
          st.writes.leave(id);
          write_soon(self);
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
        auto& st = self->state;
        for (auto& p : st.table.sweep(presence_table::clock::now()))
          announce(self, p);
        if (st.store) {
          write(self);
          sweep_store(self);
        }
        self->delayed_send(self, sweep_every, sweep_atom::value);
      },
      [self](write_now_atom) {
        self->state.write_scheduled = false;
        write(self);
      },
      [self](discover_atom,
             std::string& capability) -> caf::result<std::vector<presence>> {
        auto& st = self->state;
        if (!st.store || !st.store_ok
            || (!capability.empty() && !is_valid_id(capability)))
          return st.table.discover(capability);
        return read_store(
          self, "discovering Novas in the store", discover_atom::value,
          capability, [](std::vector<presence> xs) { return xs; },
          [self, capability] {
            return self->state.table.discover(capability);
          });
      },
      [self](list_atom) -> caf::result<std::vector<presence>> {
        auto& st = self->state;
        if (!st.store || !st.store_ok)
          return st.table.list();
        return read_store(
          self, "listing Novas in the store", list_atom::value, caf::unit,
          [self](std::vector<presence> xs) {
            return merge_list(self->state.table, std::move(xs));
          },
          [self] { return self->state.table.list(); });
      },
    };
  };
  return sys.spawn(f, std::move(ctx), std::move(store));
}

} // namespace nova
