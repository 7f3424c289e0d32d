// Tests of cluster-wide presence in the store against real redis-server
// processes. Times are passed in explicitly; nothing here sleeps.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/presence_store.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using nova::errc;
using nova::presence;
using nova::presence_status;
using nova::presence_store;
using nova::redis_pool;
using nova::redis_settings;
using nova::redis_value;
using nova::testing::redis_server;

namespace {

using strings = std::vector<std::string>;

// One heartbeat interval in these tests: offline after 1500 ms, TTL 3000 ms.
constexpr int64_t interval_ms = 1000;
constexpr int64_t t0 = 1'700'000'000'000;

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

redis_settings settings_for(const redis_server& srv) {
  auto s = must(redis_settings::from_url(srv.url()));
  s.connect_timeout = 1s;
  s.command_timeout = 2s;
  s.reconnect_base = 50ms;
  s.reconnect_max = 200ms;
  return s;
}

std::shared_ptr<redis_pool> make_pool(const redis_server& srv) {
  return std::make_shared<redis_pool>(must(redis_pool::make(settings_for(srv))));
}

std::shared_ptr<presence_store> make_store(std::shared_ptr<redis_pool> pool) {
  presence_store::settings s;
  s.heartbeat_interval = std::chrono::milliseconds(interval_ms);
  return must(presence_store::make(std::move(pool), must(nova::naming::make()),
                                   s));
}

presence nova_with(std::string id, strings caps = {},
                   presence_status st = presence_status::online) {
  presence p;
  p.nova_id = std::move(id);
  p.node_id = "node-1";
  p.status = st;
  p.capabilities = std::move(caps);
  p.started_at = t0 - 5000;
  p.groups = {"research"};
  return p;
}

strings ids_of(const std::vector<presence>& ps) {
  strings out;
  for (auto& p : ps)
    out.push_back(p.nova_id);
  std::sort(out.begin(), out.end());
  return out;
}

redis_value cmd(redis_pool& pool, const strings& argv) {
  return must(pool.command(argv));
}

int64_t stream_len(redis_pool& pool) {
  return must(cmd(pool, {"XLEN", "nova.presence.updates"}).as_int());
}

// Calls of `command` so far, from INFO commandstats ("evalsha").
int64_t calls_of(redis_pool& pool, const std::string& command) {
  auto info = must(cmd(pool, {"INFO", "commandstats"}).as_string());
  auto tag = "cmdstat_" + command + ":calls=";
  auto pos = info.find(tag);
  if (pos == std::string::npos)
    return 0;
  return std::stoll(info.substr(pos + tag.size()));
}

} // namespace

TEST_CASE("a new Nova is a change, the same heartbeat again is not, and a "
          "status change is") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(make_pool(srv));
  auto p = nova_with("alpha", {"search"});
  CHECK(must(store->heartbeat(p, t0)) == true);
  CHECK(must(store->heartbeat(p, t0 + 1000)) == false);
  p.capabilities.push_back("summarize"); // capabilities alone: no change
  CHECK(must(store->heartbeat(p, t0 + 2000)) == false);
  p.status = presence_status::busy;
  CHECK(must(store->heartbeat(p, t0 + 3000)) == true);
  p.current_task = "task-1";
  CHECK(must(store->heartbeat(p, t0 + 4000)) == true);
  p.node_id = "node-2";
  CHECK(must(store->heartbeat(p, t0 + 5000)) == true);
  CHECK(must(store->heartbeat(p, t0 + 6000)) == false);
  auto got = must(store->get("alpha"));
  REQUIRE(got);
  CHECK(got->status == presence_status::busy);
  CHECK(got->current_task == "task-1");
  CHECK(got->node_id == "node-2");
  CHECK(got->last_seen == t0 + 6000);
  CHECK(got->capabilities == strings{"search", "summarize"});
  CHECK_FALSE(must(store->get("nobody")));
}

TEST_CASE("a heartbeat writes the presence hash with a TTL of three "
          "intervals and indexes it") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  auto p = nova_with("alpha", {"search", "code"});
  p.current_task = "t-9";
  REQUIRE(must(store->heartbeat(p, t0)));
  auto pttl = must(cmd(*pool, {"PTTL", "nova.presence.alpha"}).as_int());
  CHECK(pttl > 3 * interval_ms - 500);
  CHECK(pttl <= 3 * interval_ms);
  auto f = cmd(*pool, {"HMGET", "nova.presence.alpha", "status", "node",
                       "capabilities", "current_task", "last_seen", "started",
                       "groups"});
  REQUIRE(f.size() == 7);
  CHECK(f[0].str == "online");
  CHECK(f[1].str == "node-1");
  CHECK(f[2].str == "search,code");
  CHECK(f[3].str == "t-9");
  CHECK(f[4].str == std::to_string(t0));
  CHECK(f[5].str == std::to_string(t0 - 5000));
  CHECK(f[6].str == "research");
  auto data = cmd(*pool, {"HGET", "nova.presence.alpha", "data"});
  auto decoded = must(nova::decode<presence>(data.str));
  CHECK(decoded.nova_id == "alpha");
  CHECK(decoded.last_seen == t0);
  CHECK(must(cmd(*pool, {"ZSCORE", "nova.index.presence", "alpha"}).as_double())
        == Approx(static_cast<double>(t0)));
  CHECK(must(cmd(*pool, {"ZSCORE", "nova.index.capability.code", "alpha"})
               .as_double())
        == Approx(static_cast<double>(t0)));
  // A later heartbeat renews the TTL.
  REQUIRE_FALSE(must(store->heartbeat(p, t0 + 1000)));
  CHECK(must(cmd(*pool, {"PTTL", "nova.presence.alpha"}).as_int())
        > 3 * interval_ms - 500);
}

TEST_CASE("discover finds Novas by capability and skips stale, offline and "
          "changed ones") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  REQUIRE(must(store->heartbeat(nova_with("a", {"search"}), t0)));
  REQUIRE(must(store->heartbeat(nova_with("b", {"search", "code"}), t0)));
  REQUIRE(must(store->heartbeat(nova_with("c", {"code"}), t0)));
  REQUIRE(must(store->heartbeat(nova_with("stale", {"search"}), t0 - 2000)));
  REQUIRE(must(store->heartbeat(nova_with("gone", {"search"}), t0)));
  REQUIRE(must(store->leave("gone", t0)));
  CHECK(ids_of(must(store->discover("search", t0 + 100)))
        == strings{"a", "b"});
  CHECK(ids_of(must(store->discover("code", t0 + 100))) == strings{"b", "c"});
  CHECK(ids_of(must(store->discover("", t0 + 100)))
        == strings{"a", "b", "c"});
  CHECK(must(store->discover("painting", t0 + 100)).empty());
  // b drops "search".
  REQUIRE_FALSE(must(store->heartbeat(nova_with("b", {"code"}), t0 + 1000)));
  CHECK(ids_of(must(store->discover("search", t0 + 1100))) == strings{"a"});
  CHECK(cmd(*pool, {"ZSCORE", "nova.index.capability.search", "b"}).is_nil());
  // 1.5 intervals after a's last heartbeat it is stale, before it is not.
  CHECK(ids_of(must(store->discover("search", t0 + 1500))) == strings{"a"});
  CHECK(must(store->discover("search", t0 + 1501)).empty());
  CHECK(must(store->discover("code", t0 + 2000)).size() == 1);
  // A Nova reporting itself offline is not discoverable.
  REQUIRE(must(store->heartbeat(nova_with("c", {"code"},
                                          presence_status::offline),
                                t0 + 1000)));
  CHECK(ids_of(must(store->discover("code", t0 + 1100))) == strings{"b"});
  auto listed = ids_of(must(store->list(10)));
  CHECK(listed == strings{"a", "b", "stale"});
  CHECK(must(store->list(1)).size() == 1);
  CHECK(store->malformed() == 0);
  auto bad = store->discover("no.dots", t0);
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
}

TEST_CASE("capabilities changed through another store are cleaned from the "
          "old capability index") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto one = make_store(pool);
  auto two = make_store(make_pool(srv));
  REQUIRE(must(one->heartbeat(nova_with("a", {"x", "y"}), t0)));
  REQUIRE_FALSE(must(two->heartbeat(nova_with("a", {"z"}), t0 + 1000)));
  CHECK(cmd(*pool, {"ZSCORE", "nova.index.capability.x", "a"}).is_nil());
  CHECK(cmd(*pool, {"ZSCORE", "nova.index.capability.y", "a"}).is_nil());
  CHECK(ids_of(must(one->discover("z", t0 + 1000))) == strings{"a"});
  CHECK(must(one->discover("x", t0 + 1000)).empty());
}

TEST_CASE("sweep marks a silent Nova offline once even when two stores sweep "
          "at the same time") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto one = make_store(pool);
  auto two = make_store(make_pool(srv));
  constexpr int n = 200;
  std::vector<presence> ps;
  for (int i = 0; i < n; ++i)
    ps.push_back(nova_with("silent-" + std::to_string(i), {"search"}));
  REQUIRE(must(one->heartbeat_batch(ps, t0)).size() == n);
  REQUIRE(must(one->heartbeat(nova_with("alive", {"search"}), t0 + 1000)));
  // Not yet: exactly 1.5 intervals is still online.
  CHECK(must(one->sweep(t0 + 1500)).empty());
  auto before = stream_len(*pool);
  for (int round = 0; round < 3; ++round) {
    auto a = std::async(std::launch::async, [&] { return two->sweep(t0 + 2000); });
    auto b = one->sweep(t0 + 2000);
    REQUIRE(a.wait_for(10s) == std::future_status::ready);
    auto x = must(a.get());
    auto y = must(std::move(b));
    if (round == 0) {
      CHECK(x.size() + y.size() == n);
      std::set<std::string> all;
      for (auto& p : x)
        all.insert(p.nova_id);
      for (auto& p : y) {
        all.insert(p.nova_id);
        CHECK(p.status == presence_status::offline);
      }
      CHECK(all.size() == n);
    } else {
      CHECK(x.empty());
      CHECK(y.empty());
    }
  }
  CHECK(stream_len(*pool) - before == n);
  auto s0 = must(one->get("silent-0"));
  REQUIRE(s0);
  CHECK(s0->status == presence_status::offline);
  CHECK(s0->last_seen == t0);
  CHECK(ids_of(must(one->discover("search", t0 + 2000)))
        == strings{"alive"});
  CHECK(must(cmd(*pool, {"ZCARD", "nova.index.capability.search"}).as_int())
        == 1);
  CHECK(must(cmd(*pool, {"ZCARD", "nova.index.presence"}).as_int()) == 1);
  // A swept Nova that heartbeats again is back, as a change.
  CHECK(must(one->heartbeat(nova_with("silent-0", {"search"}), t0 + 2500)));
  CHECK(ids_of(must(one->discover("search", t0 + 2500)))
        == strings{"alive", "silent-0"});
}

TEST_CASE("sweep reports a Nova whose hash already expired") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  REQUIRE(must(store->heartbeat(nova_with("ghost", {"search"}), t0)));
  cmd(*pool, {"DEL", "nova.presence.ghost"});
  auto changes = must(store->sweep(t0 + 5000));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].nova_id == "ghost");
  CHECK(changes[0].status == presence_status::offline);
  CHECK(changes[0].last_seen == t0);
  CHECK(cmd(*pool, {"EXISTS", "nova.presence.ghost"}).integer == 0);
  CHECK(must(cmd(*pool, {"ZCARD", "nova.index.capability.search"}).as_int())
        == 0);
}

TEST_CASE("leave marks a Nova offline, removes it from the indexes and "
          "reports it once") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  auto p = nova_with("alpha", {"search"});
  p.current_task = "t-1";
  REQUIRE(must(store->heartbeat(p, t0)));
  auto left = must(store->leave("alpha", t0 + 200));
  REQUIRE(left);
  CHECK(left->nova_id == "alpha");
  CHECK(left->status == presence_status::offline);
  CHECK(left->current_task.empty());
  CHECK(left->last_seen == t0 + 200);
  CHECK_FALSE(must(store->leave("alpha", t0 + 300)));
  CHECK_FALSE(must(store->leave("never-seen", t0 + 300)));
  auto got = must(store->get("alpha"));
  REQUIRE(got);
  CHECK(got->status == presence_status::offline);
  CHECK(got->current_task.empty());
  CHECK(must(store->discover("search", t0 + 300)).empty());
  CHECK(must(store->sweep(t0 + 10'000)).empty());
  CHECK(must(cmd(*pool, {"ZCARD", "nova.index.presence"}).as_int()) == 0);
  CHECK(stream_len(*pool) == 2);
  auto bad = store->leave("bad id", t0);
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
}

TEST_CASE("the updates stream gets exactly one entry per change") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  auto p = nova_with("alpha");
  REQUIRE(must(store->heartbeat(p, t0)));           // new
  REQUIRE_FALSE(must(store->heartbeat(p, t0 + 500)));
  p.status = presence_status::away;
  REQUIRE(must(store->heartbeat(p, t0 + 1000)));    // away
  REQUIRE_FALSE(must(store->heartbeat(p, t0 + 1500)));
  REQUIRE(must(store->sweep(t0 + 5000)).size() == 1); // timeout
  REQUIRE(must(store->heartbeat(p, t0 + 6000)));    // back
  REQUIRE(must(store->leave("alpha", t0 + 7000)));  // leave
  auto entries = cmd(*pool, {"XRANGE", "nova.presence.updates", "-", "+"});
  REQUIRE(entries.size() == 5);
  strings statuses;
  strings reasons;
  for (auto& e : entries.elements) {
    auto fields = must(e[1].as_strings());
    std::string status;
    std::string reason;
    std::string id;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i] == "status")
        status = fields[i + 1];
      else if (fields[i] == "reason")
        reason = fields[i + 1];
      else if (fields[i] == "id")
        id = fields[i + 1];
    }
    CHECK(id == "alpha");
    statuses.push_back(status);
    reasons.push_back(reason);
  }
  CHECK(statuses == strings{"online", "away", "offline", "away", "offline"});
  CHECK(reasons
        == strings{"heartbeat", "heartbeat", "timeout", "heartbeat", "leave"});
}

TEST_CASE("a batch heartbeat of 1000 Novas takes one round trip of a few "
          "scripts") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  std::vector<presence> ps;
  for (int i = 0; i < 1000; ++i)
    ps.push_back(nova_with("n" + std::to_string(i),
                           {i % 2 == 0 ? "even" : "odd", "any"}));
  auto evals_before = calls_of(*pool, "evalsha");
  auto changes = must(store->heartbeat_batch(ps, t0));
  CHECK(changes.size() == 1000);
  auto per_batch = (1000 + store->config().batch - 1) / store->config().batch;
  CHECK(calls_of(*pool, "evalsha") - evals_before
        == static_cast<int64_t>(per_batch));
  CHECK(must(store->heartbeat_batch(ps, t0 + 1000)).empty());
  CHECK(calls_of(*pool, "evalsha") - evals_before
        == static_cast<int64_t>(2 * per_batch));
  ps[7].status = presence_status::busy;
  auto one = must(store->heartbeat_batch(ps, t0 + 2000));
  REQUIRE(one.size() == 1);
  CHECK(one[0].nova_id == "n7");
  CHECK(must(store->discover("even", t0 + 2000)).size() == 500);
  CHECK(must(store->discover("any", t0 + 2000)).size() == 1000);
  CHECK(must(cmd(*pool, {"XLEN", "nova.presence.updates"}).as_int()) == 1001);
  // An invalid presence anywhere in the batch writes nothing.
  ps[3].capabilities.push_back("not valid");
  auto bad = store->heartbeat_batch(ps, t0 + 3000);
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
  CHECK(must(cmd(*pool, {"ZSCORE", "nova.index.presence", "n0"}).as_double())
        == Approx(static_cast<double>(t0 + 2000)));
}

TEST_CASE("a presence hash with garbage data is skipped and counted") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pool = make_pool(srv);
  auto store = make_store(pool);
  REQUIRE(must(store->heartbeat(nova_with("good", {"search"}), t0)));
  REQUIRE(must(store->heartbeat(nova_with("bad", {"search"}), t0)));
  cmd(*pool, {"HSET", "nova.presence.bad", "data",
              std::string("\xff\xff\xff\x01garbage", 11)});
  CHECK(ids_of(must(store->discover("search", t0))) == strings{"good"});
  CHECK(store->malformed() == 1);
  CHECK(ids_of(must(store->list(10))) == strings{"good"});
  CHECK(store->malformed() == 2);
  CHECK_FALSE(must(store->get("bad")));
  CHECK(store->malformed() == 3);
  // Sweeping it still works: the change is reported with what is known.
  auto changes = must(store->sweep(t0 + 5000));
  CHECK(ids_of(changes) == strings{"bad", "good"});
  CHECK(store->malformed() == 4);
}

TEST_CASE("a presence store refuses settings that cannot work") {
  auto names = must(nova::naming::make());
  presence_store::settings s;
  s.heartbeat_interval = 0ms;
  CHECK_FALSE(presence_store::make(nullptr, names));
  auto pool = std::make_shared<redis_pool>(
    must(redis_pool::make(must(redis_settings::from_url("redis://127.0.0.1:1")))));
  CHECK_FALSE(presence_store::make(pool, names, s));
  s.heartbeat_interval = 1s;
  s.batch = 0;
  CHECK_FALSE(presence_store::make(pool, names, s));
  s.batch = 10;
  auto store = must(presence_store::make(pool, names, s));
  CHECK(store->offline_after_ms() == 1500);
  CHECK(store->ttl_ms() == 3000);
}
