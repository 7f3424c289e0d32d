// Nodes with `--store redis` keep presence in the store: in-process nodes
// sharing one redis-server (and one nats-server where a test says so).
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster/presence_store.hpp"
#include "messages/ids.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/redis_server.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::eventually;
using nova::testing::fresh_prefix;
using nova::testing::nats_server;
using nova::testing::redis_server;

namespace {

using strings = std::vector<std::string>;
using presence_sink = std::shared_ptr<nova::testing::sink<presence>>;

class watcher : public agent {
public:
  watcher(caf::actor_config& cfg, agent_init init, presence_sink out)
    : agent(cfg, std::move(init)), out_(std::move(out)) {
    // nop
  }

protected:
  void on_start() override {
    watch_presence();
  }

  void on_presence(const presence& p) override {
    out_->push(p);
  }

private:
  presence_sink out_;
};

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(describe(x.error()));
  return std::move(*x);
}

config store_config(const std::string& node_id, const std::string& url,
                    const std::string& prefix) {
  auto cfg = nova::testing::test_config();
  cfg.node_id = node_id;
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = url;
  cfg.prefix = prefix;
  return cfg;
}

config nats_store_config(const std::string& node_id, const std::string& nats,
                         const std::string& url, const std::string& prefix) {
  auto cfg = nova::testing::nats_config(node_id, nats, prefix);
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = url;
  return cfg;
}

agent_options with_caps(strings caps) {
  agent_options opts;
  opts.capabilities = std::move(caps);
  return opts;
}

strings ids_of(const caf::expected<std::vector<presence>>& xs) {
  strings out;
  if (!xs)
    return out;
  for (const auto& p : *xs)
    out.push_back(p.nova_id);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<presence> find(const caf::expected<std::vector<presence>>& xs,
                             const std::string& id) {
  if (!xs)
    return std::nullopt;
  for (const auto& p : *xs)
    if (p.nova_id == id)
      return p;
  return std::nullopt;
}

bool shows(node& n, const std::string& id, presence_status st) {
  auto p = find(n.presence_list(), id);
  return p && p->status == st;
}

bool has(const std::vector<presence>& xs, const std::string& id,
         presence_status st) {
  return std::any_of(xs.begin(), xs.end(), [&](const presence& p) {
    return p.nova_id == id && p.status == st;
  });
}

size_t count(const std::vector<presence>& xs, const std::string& id,
             presence_status st) {
  return static_cast<size_t>(
    std::count_if(xs.begin(), xs.end(), [&](const presence& p) {
      return p.nova_id == id && p.status == st;
    }));
}

/// A presence store of its own on the test's side, to look at and to write
/// what the nodes share.
struct store_view {
  std::shared_ptr<redis_pool> pool;
  std::shared_ptr<presence_store> store;

  store_view(const redis_server& srv, const std::string& prefix,
             caf::timespan interval) {
    auto rs = must(redis_settings::from_url(srv.url()));
    pool = std::make_shared<redis_pool>(must(redis_pool::make(rs)));
    presence_store::settings s;
    s.heartbeat_interval = interval;
    store = must(presence_store::make(pool, must(naming::make(prefix)), s));
  }

  std::optional<presence> get(const std::string& id) {
    return must(store->get(id));
  }

  /// Entries of the updates stream for `id` with `reason`.
  size_t updates(const std::string& id, const std::string& reason) {
    auto r = must(pool->command({"XRANGE", store->names().presence_updates(),
                                 "-", "+"}));
    size_t n = 0;
    for (const auto& entry : r.elements) {
      auto fields = must(entry[1].as_strings());
      bool id_matches = false;
      bool reason_matches = false;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i] == "id")
          id_matches = fields[i + 1] == id;
        if (fields[i] == "reason")
          reason_matches = fields[i + 1] == reason;
      }
      if (id_matches && reason_matches)
        ++n;
    }
    return n;
  }
};

} // namespace

TEST_CASE("with the redis store, nodes without a bus see each other's Novas "
          "through the store",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  node a{store_config("node-a", srv.url(), pfx)};
  node b{store_config("node-b", srv.url(), pfx)};
  REQUIRE(a.spawn("a1", with_caps({"translate"})));
  REQUIRE(b.spawn("b1", with_caps({"translate"})));
  REQUIRE(b.spawn("b2", with_caps({"cook"})));
  // Nothing but the store connects the two nodes.
  REQUIRE(eventually([&] {
    return ids_of(a.discover("translate")) == strings{"a1", "b1"};
  }));
  CHECK(ids_of(b.discover("translate")) == strings{"a1", "b1"});
  CHECK(ids_of(a.discover("cook")) == strings{"b2"});
  CHECK(ids_of(a.discover("")) == strings{"a1", "b1", "b2"});
  auto b1 = find(a.presence_list(), "b1");
  REQUIRE(b1);
  CHECK(b1->status == presence_status::online);
  CHECK(b1->node_id == "node-b");
  CHECK(b1->capabilities == strings{"translate"});
  CHECK(a.health().status == "healthy");

  REQUIRE(!b.stop("b1"));
  REQUIRE(eventually(
    [&] { return ids_of(a.discover("translate")) == strings{"a1"}; }));
  CHECK(!shows(a, "b1", presence_status::online));
  CHECK(shows(b, "b1", presence_status::offline));
  store_view view{srv, pfx, a.cfg().limits.heartbeat_interval};
  auto stored = view.get("b1");
  REQUIRE(stored);
  CHECK(stored->status == presence_status::offline);
  CHECK(view.updates("b1", "leave") == 1);
  CHECK(view.updates("b1", "timeout") == 0);
}

TEST_CASE("with the redis store and NATS, two nodes list each other's Novas "
          "and a stopped Nova turns offline everywhere",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  NOVA_REQUIRE_NATS_SERVER();
  redis_server srv;
  nats_server bus;
  auto pfx = fresh_prefix();
  node a{nats_store_config("node-a", bus.url(), srv.url(), pfx)};
  node b{nats_store_config("node-b", bus.url(), srv.url(), pfx)};
  auto seen = std::make_shared<nova::testing::sink<presence>>();
  REQUIRE(a.spawn<watcher>("w", {}, seen));
  REQUIRE(a.spawn("a1", with_caps({"translate"})));
  REQUIRE(b.spawn("b1", with_caps({"translate"})));
  REQUIRE(b.spawn("b2", with_caps({"cook"})));
  REQUIRE(eventually([&] {
    return ids_of(a.discover("translate")) == strings{"a1", "b1"}
           && ids_of(b.discover("translate")) == strings{"a1", "b1"};
  }));
  REQUIRE(eventually([&] {
    return shows(a, "b1", presence_status::online)
           && shows(a, "b2", presence_status::online)
           && shows(b, "a1", presence_status::online);
  }));
  REQUIRE(seen->wait_until(
    [](const auto& xs) { return has(xs, "b1", presence_status::online); }));

  REQUIRE(!b.stop("b1"));
  REQUIRE(eventually([&] {
    return ids_of(a.discover("translate")) == strings{"a1"}
           && shows(a, "b1", presence_status::offline);
  }));
  CHECK(ids_of(b.discover("translate")) == strings{"a1"});
  REQUIRE(seen->wait_until(
    [](const auto& xs) { return has(xs, "b1", presence_status::offline); }));
  CHECK(shows(a, "b2", presence_status::online));
  store_view view{srv, pfx, a.cfg().limits.heartbeat_interval};
  CHECK(view.updates("b1", "leave") == 1);
}

TEST_CASE("Novas whose heartbeats stop coming to the store are swept "
          "offline within two intervals, and each node's watchers hear it "
          "once",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  NOVA_REQUIRE_NATS_SERVER();
  redis_server srv;
  nats_server bus;
  auto pfx = fresh_prefix();
  auto cfg_a = nats_store_config("node-a", bus.url(), srv.url(), pfx);
  auto cfg_b = nats_store_config("node-b", bus.url(), srv.url(), pfx);
  auto interval = cfg_a.limits.heartbeat_interval;
  node a{cfg_a};
  node b{cfg_b};
  auto seen_a = std::make_shared<nova::testing::sink<presence>>();
  auto seen_b = std::make_shared<nova::testing::sink<presence>>();
  REQUIRE(a.spawn<watcher>("wa", {}, seen_a));
  REQUIRE(b.spawn<watcher>("wb", {}, seen_b));
  // A node that wrote its Novas' heartbeats once and died (no leave, no
  // NATS traffic): only the store knows of them.
  store_view ghost{srv, pfx, interval};
  strings ghosts{"g1", "g2", "g3"};
  std::vector<presence> beats;
  for (const auto& id : ghosts) {
    presence p;
    p.nova_id = id;
    p.node_id = "node-ghost";
    p.capabilities = {"haunt"};
    p.started_at = now_ms();
    beats.push_back(std::move(p));
  }
  auto last_beat = std::chrono::steady_clock::now();
  REQUIRE(must(ghost.store->heartbeat_batch(beats, now_ms())).size() == 3);
  CHECK(ids_of(a.discover("haunt")) == ghosts);
  // Offline 1.5 intervals after the last heartbeat, swept every quarter
  // interval: two intervals, plus slack for a loaded machine.
  auto deadline = last_beat + 2 * interval + 1s;
  auto gone = [&](node& n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    return eventually([&] { return ids_of(n.discover("haunt")).empty(); },
                      std::max(left, 0ms));
  };
  CHECK(gone(a));
  CHECK(gone(b));
  for (auto* seen : {&seen_a, &seen_b})
    REQUIRE((*seen)->wait_until([&](const auto& xs) {
      return std::all_of(ghosts.begin(), ghosts.end(), [&](auto& id) {
        return has(xs, id, presence_status::offline);
      });
    }));
  for (const auto& id : ghosts) {
    CHECK(shows(a, id, presence_status::offline));
    CHECK(shows(b, id, presence_status::offline));
    CHECK(ghost.updates(id, "timeout") == 1);
  }
  // Both nodes sweep every quarter interval; the store reports each change
  // to one of them, which tells the other over NATS: once per watcher.
  // Checking that nothing more happens: let eight more sweeps pass.
  std::this_thread::sleep_for(2 * interval);
  for (const auto& id : ghosts) {
    CHECK(count(seen_a->items(), id, presence_status::offline) == 1);
    CHECK(count(seen_b->items(), id, presence_status::offline) == 1);
    CHECK(ghost.updates(id, "timeout") == 1);
  }
}

TEST_CASE("a node shutting down writes its Novas' leaves to the store before "
          "it stops",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  // Offline by timeout only 1.5 s after the last heartbeat: what turns b's
  // Novas offline at once is their leave.
  auto cfg_a = store_config("node-a", srv.url(), pfx);
  cfg_a.limits.heartbeat_interval = 1s;
  auto cfg_b = store_config("node-b", srv.url(), pfx);
  cfg_b.limits.heartbeat_interval = 1s;
  node a{cfg_a};
  auto b = std::make_unique<node>(cfg_b);
  for (int i = 0; i < 20; ++i)
    REQUIRE(b->spawn("b" + std::to_string(i), with_caps({"cook"})));
  REQUIRE(eventually([&] { return a.discover("cook")->size() == 20; }));
  b->shutdown();
  CHECK(a.discover("cook")->empty());
  store_view view{srv, pfx, cfg_b.limits.heartbeat_interval};
  for (int i = 0; i < 20; ++i) {
    auto id = "b" + std::to_string(i);
    auto p = view.get(id);
    REQUIRE(p);
    CHECK(p->status == presence_status::offline);
    CHECK(view.updates(id, "leave") == 1);
  }
}

TEST_CASE("while the store is unreachable presence answers from memory and "
          "health is degraded; once it is back the store answers again",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv{{}, false};
  auto pfx = fresh_prefix();
  auto cfg = store_config("node-a", srv.url(), pfx);
  node a{cfg};
  REQUIRE(a.spawn("a1", with_caps({"translate"})));
  REQUIRE(eventually([&] { return a.health().status == "degraded"; }));
  CHECK(ids_of(a.discover("translate")) == strings{"a1"});
  CHECK(shows(a, "a1", presence_status::online));
  REQUIRE(!a.stop("a1"));
  REQUIRE(a.spawn("a2", with_caps({"translate"})));
  REQUIRE(eventually(
    [&] { return ids_of(a.discover("translate")) == strings{"a2"}; }));

  srv.start();
  // The pool reconnects with a backoff of up to 5 s.
  REQUIRE(eventually([&] { return a.health().status == "healthy"; }, 15s));
  store_view view{srv, pfx, cfg.limits.heartbeat_interval};
  // a2's heartbeats reach the store, and so does a1's leave, kept while the
  // store was down (a1 never made it into the store, so nothing changes).
  REQUIRE(eventually([&] {
    auto p = view.get("a2");
    return p && p->status == presence_status::online;
  }));
  CHECK(ids_of(a.discover("translate")) == strings{"a2"});
  CHECK(!view.get("a1"));
}

TEST_CASE("a hanging store does not stall presence: reads fall back to "
          "memory within the read timeout",
          "[presence][store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  auto cfg = store_config("node-a", srv.url(), pfx);
  cfg.limits.request_timeout = 2s;
  node a{cfg};
  REQUIRE(a.spawn("a1", with_caps({"translate"})));
  REQUIRE(eventually(
    [&] { return ids_of(a.discover("translate")) == strings{"a1"}; }));
  srv.pause();
  // The store call waits out its command timeout (5 s); the monitor answers
  // from memory after half the request timeout, well before the caller's
  // request times out.
  auto r = a.discover("translate");
  REQUIRE(r);
  CHECK(ids_of(r) == strings{"a1"});
  CHECK(a.health().status == "degraded");
  // From now on at once, without asking the hanging store.
  auto listed = a.presence_list();
  REQUIRE(listed);
  CHECK(ids_of(listed) == strings{"a1"});
  REQUIRE(a.spawn("a2", with_caps({"translate"})));
  REQUIRE(eventually([&] {
    return ids_of(a.discover("translate")) == strings{"a1", "a2"};
  }));
  srv.resume();
  REQUIRE(eventually([&] { return a.health().status == "healthy"; }, 20s));
  store_view view{srv, pfx, cfg.limits.heartbeat_interval};
  REQUIRE(eventually([&] {
    auto p = view.get("a2");
    return p && p->status == presence_status::online;
  }));
}
