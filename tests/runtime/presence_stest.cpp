// `nova node` processes with `--bus nats --store redis`: when one is killed,
// its Novas turn offline on the others within two heartbeat intervals.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster/presence_store.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::bin;
using nova::testing::eventually;
using nova::testing::fresh_prefix;
using nova::testing::nats_server;
using nova::testing::process;
using nova::testing::redis_server;

namespace {

using strings = std::vector<std::string>;
using steady = std::chrono::steady_clock;

constexpr auto interval = 1s;

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(describe(x.error()));
  return std::move(*x);
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

bool shows(node& n, const std::string& id, presence_status st) {
  auto xs = n.presence_list();
  return xs && std::any_of(xs->begin(), xs->end(), [&](const presence& p) {
           return p.nova_id == id && p.status == st;
         });
}

std::chrono::milliseconds until(steady::time_point deadline) {
  return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - steady::now()));
}

/// Entries of the updates stream for `id` with `reason`.
size_t updates(redis_pool& pool, const naming& names, const std::string& id,
               const std::string& reason) {
  auto r = must(pool.command({"XRANGE", names.presence_updates(), "-", "+"}));
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

} // namespace

TEST_CASE("the Novas of a killed node process turn offline on the other "
          "nodes within two heartbeat intervals",
          "[system][presence][store]") {
  NOVA_REQUIRE_NATS_SERVER();
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server store;
  nats_server bus;
  auto pfx = fresh_prefix();
  auto node_argv = [&](const std::string& id, strings extra) {
    strings args{bin("nova"),        "node",
                 "--bus",            "nats",
                 "--nats-url",       bus.url(),
                 "--store",          "redis",
                 "--dragonfly-url",  store.url(),
                 "--prefix",         pfx,
                 "--node-id",        id,
                 "--heartbeat-ms",   "1000",
                 "--threads",        "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  process na{node_argv("na", {"--spawn", "logger:watch"})};
  process nb{node_argv("nb", {"--spawn", "echo:b1", "--spawn", "echo:b2"})};
  REQUIRE(na.started());
  REQUIRE(nb.started());
  {
    INFO(na.output());
    REQUIRE(na.wait_for_output("running on the nats bus with 1 Novas", 15s));
  }
  {
    INFO(nb.output());
    REQUIRE(nb.wait_for_output("running on the nats bus with 2 Novas", 15s));
  }
  // A third node in this process, to ask the cluster as any node would.
  auto cfg = nova::testing::nats_config("nc", bus.url(), pfx);
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = store.url();
  cfg.limits.heartbeat_interval = interval;
  node nc{cfg};
  REQUIRE(eventually(
    [&] { return ids_of(nc.discover("echo")) == strings{"b1", "b2"}; }, 15s));
  REQUIRE(eventually([&] { return shows(nc, "b1", presence_status::online); },
                     15s));
  {
    INFO(na.output());
    REQUIRE(na.wait_for_output("[watch] presence b1 on nb: online", 15s));
  }

  // Alive, they stay online: the batched heartbeat writes keep them fresh
  // in the store through several sweeps.
  auto steady_until = steady::now() + 3 * interval;
  while (steady::now() < steady_until) {
    REQUIRE(ids_of(nc.discover("echo")) == strings{"b1", "b2"});
    REQUIRE(na.output().find("offline") == std::string::npos);
    std::this_thread::sleep_for(50ms);
  }

  nb.signal(SIGKILL);
  auto killed = steady::now();
  REQUIRE(nb.wait(5s) == std::optional<int>{128 + SIGKILL});
  // Offline 1.5 intervals after the last heartbeat written, swept every
  // quarter interval: within two intervals, plus slack for a loaded machine.
  auto deadline = killed + 2 * interval + 1s;
  {
    INFO(na.output());
    CHECK(na.wait_for_output("[watch] presence b1 on nb: offline",
                             until(deadline)));
    CHECK(na.wait_for_output("[watch] presence b2 on nb: offline",
                             until(deadline)));
  }
  CHECK(eventually([&] { return ids_of(nc.discover("echo")).empty(); },
                   until(deadline)));
  CHECK(eventually(
    [&] {
      return shows(nc, "b1", presence_status::offline)
             && shows(nc, "b2", presence_status::offline);
    },
    until(deadline)));

  // The store's sweep marked them offline: one timeout entry per Nova,
  // whichever node swept.
  auto names = must(naming::make(pfx));
  auto pool = std::make_shared<redis_pool>(
    must(redis_pool::make(must(redis_settings::from_url(store.url())))));
  presence_store::settings ps;
  ps.heartbeat_interval = interval;
  auto view = must(presence_store::make(pool, names, ps));
  auto swept = [&](const std::string& id) {
    auto p = must(view->get(id));
    return p && p->status == presence_status::offline
           && updates(*pool, names, id, "timeout") == 1;
  };
  CHECK(eventually([&] { return swept("b1") && swept("b2"); },
                   until(deadline)));

  na.signal(SIGTERM);
  auto code = na.wait(20s);
  INFO(na.output());
  CHECK(code == std::optional<int>{0});
}
