// The cluster-wide task queue with real servers: `nova node --bus nats
// --store redis` processes run the worker Novas, an in-process node enqueues
// and collects, and the test kills nodes and restarts the store under load.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/stream_task_queue_actor.hpp"
#include "cluster/task_store.hpp"
#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"
#include "support/test_node.hpp"

using namespace std::chrono_literals;
using nova::testing::bin;
using nova::testing::eventually;
using nova::testing::nats_server;
using nova::testing::process;
using nova::testing::redis_server;

namespace {

/// Claims not finished within this are failed; claims of a node that died
/// are taken over after 1.5 times this.
constexpr auto task_timeout = 1000ms;

/// One nats-server, one redis-server, worker node processes and an
/// in-process node (`client`) that enqueues and collects.
class task_cluster {
public:
  /// A persistent store keeps its data over a restart (append-only file,
  /// fsync on every write), as a production Dragonfly with snapshots would.
  explicit task_cluster(bool persistent = false)
    : redis_(persistent ? std::vector<std::string>{"--appendonly", "yes",
                                                   "--appendfsync", "always"}
                        : std::vector<std::string>{}),
      prefix_(nova::testing::fresh_prefix()) {
    auto cfg = nova::testing::nats_config("client", nats_.url(), prefix_);
    cfg.store = nova::store_kind::redis;
    cfg.dragonfly_url = redis_.url();
    cfg.limits.task_timeout = task_timeout;
    cfg.log_level = "warn";
    client_ = std::make_unique<nova::node>(cfg);
    auto rs = nova::redis_settings::from_url(redis_.url());
    REQUIRE(rs);
    rs->reconnect_max = 200ms;
    auto pool = nova::redis_pool::make(*rs);
    REQUIRE(pool);
    auto store = nova::task_store::make(
      std::make_shared<nova::redis_pool>(std::move(*pool)),
      *nova::naming::make(prefix_));
    REQUIRE(store);
    store_ = std::move(*store);
  }

  task_cluster(const task_cluster&) = delete;
  task_cluster& operator=(const task_cluster&) = delete;

  ~task_cluster() {
    client_.reset();
    for (auto& n : nodes_)
      n->signal(SIGKILL);
  }

  /// Starts `nova node` with `workers` built-in worker Novas named
  /// `<id>-w<i>` and waits until it runs.
  process& start_node(const std::string& id, int workers) {
    std::vector<std::string> args{bin("nova"),
                                  "node",
                                  "--bus",
                                  "nats",
                                  "--nats-url",
                                  nats_.url(),
                                  "--store",
                                  "redis",
                                  "--dragonfly-url",
                                  redis_.url(),
                                  "--prefix",
                                  prefix_,
                                  "--node-id",
                                  id,
                                  "--threads",
                                  "2",
                                  "--task-timeout-ms",
                                  std::to_string(task_timeout.count())};
    for (int i = 0; i < workers; ++i) {
      args.push_back("--spawn");
      args.push_back("worker:" + id + "-w" + std::to_string(i));
    }
    nodes_.push_back(std::make_unique<process>(std::move(args)));
    auto& p = *nodes_.back();
    REQUIRE(p.started());
    INFO(p.output());
    REQUIRE(p.wait_for_output("running on the nats bus with "
                                + std::to_string(workers) + " Novas",
                              15s));
    return p;
  }

  nova::node& client() {
    return *client_;
  }

  /// A store of its own on the same server, for looking inside.
  nova::task_store& store() {
    return *store_;
  }

  redis_server& redis() {
    return redis_;
  }

  /// Enqueues `n` tasks of `type` with `payload` for `session`, ids
  /// `<session>-<first + i>`; returns the ids.
  std::vector<std::string> enqueue(const std::string& session, int first,
                                   int n, const std::string& type,
                                   const std::string& payload) {
    std::vector<std::string> ids;
    for (int i = first; i < first + n; ++i) {
      nova::task t;
      t.id = session + "-" + std::to_string(i);
      t.type = type;
      t.payload = payload;
      t.session = session;
      auto id = client_->enqueue(t);
      if (!id)
        FAIL("enqueue " << t.id << ": " << nova::describe(id.error()));
      ids.push_back(*id);
    }
    return ids;
  }

  /// Collects until `n` results of `session` arrived or `timeout` passed.
  std::vector<nova::task_result>
  collect(const std::string& session, size_t n, caf::timespan timeout) {
    std::vector<nova::task_result> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto xs = client_->collect(session, n - out.size(), 1s);
      if (!xs)
        continue; // the store is down: try again
      out.insert(out.end(), xs->begin(), xs->end());
    }
    return out;
  }

  /// True once nothing is pending in the consumer group and no lane holds
  /// a task.
  bool drained(std::chrono::milliseconds timeout) {
    return eventually(
      [&] {
        auto pending = store_->pending_per_consumer();
        auto s = store_->stats();
        return pending && pending->empty() && s && s->in_flight == 0
               && std::all_of(s->depth.begin(), s->depth.end(),
                              [](uint64_t d) { return d == 0; });
      },
      timeout);
  }

  /// (store reachable, outbox depth) as the client node's queue sees it.
  std::pair<bool, uint64_t> client_store_health() {
    std::pair<bool, uint64_t> out{true, UINT64_MAX};
    caf::scoped_actor self{client_->system()};
    self->request(client_->context().tasks, 5s,
                  nova::store_health_atom::value)
      .receive([&](bool up, uint64_t depth) { out = {up, depth}; },
               [&](caf::error&) {});
    return out;
  }

private:
  nats_server nats_;
  redis_server redis_;
  std::string prefix_;
  std::unique_ptr<nova::node> client_;
  std::shared_ptr<nova::task_store> store_;
  std::vector<std::unique_ptr<process>> nodes_;
};

/// Task id -> how many results it got.
std::map<std::string, int> count_ids(const std::vector<nova::task_result>& rs) {
  std::map<std::string, int> out;
  for (const auto& r : rs)
    ++out[r.task_id];
  return out;
}

/// The ids that did not get exactly one result.
std::vector<std::string> not_once(const std::vector<std::string>& ids,
                                  const std::map<std::string, int>& got) {
  std::vector<std::string> out;
  for (const auto& id : ids) {
    auto i = got.find(id);
    if (i == got.end() || i->second != 1)
      out.push_back(id + "x" + std::to_string(i == got.end() ? 0 : i->second));
  }
  return out;
}

bool alive(process& p) {
  return !p.wait(0ms);
}

} // namespace

TEST_CASE("tasks enqueued on one node run exactly once across the worker "
          "Novas of two other node processes",
          "[system][tasks]") {
  NOVA_REQUIRE_NATS_SERVER();
  NOVA_REQUIRE_REDIS_SERVER();
  task_cluster c;
  auto& a = c.start_node("na", 4);
  auto& b = c.start_node("nb", 4);
  constexpr int n = 400;
  // 2 ms each: both nodes stay busy, neither can claim the whole batch.
  auto ids = c.enqueue("once", 0, n, "sleep", "2");
  auto results = c.collect("once", n, 60s);
  INFO(a.output() + b.output());
  REQUIRE(results.size() == n);
  auto got = count_ids(results);
  CHECK(not_once(ids, got).empty());
  size_t on_a = 0;
  size_t on_b = 0;
  for (const auto& r : results) {
    CHECK(r.status == nova::task_status::done);
    CHECK(r.attempts == 1);
    if (r.worker.rfind("na-w", 0) == 0)
      ++on_a;
    else if (r.worker.rfind("nb-w", 0) == 0)
      ++on_b;
  }
  CHECK(on_a + on_b == n);
  CHECK(on_a > 0);
  CHECK(on_b > 0);
  // Nothing more arrives: no task ran twice.
  auto more = c.client().collect("once", 1, 500ms);
  REQUIRE(more);
  CHECK(more->empty());
  CHECK(c.drained(10s));
  auto s = c.client().task_stats();
  REQUIRE(s);
  CHECK(s->done == n);
  CHECK(s->enqueued == n);
  CHECK(s->dead == 0);
}

TEST_CASE("a worker node killed with SIGKILL mid-batch loses no task: the "
          "others take its claims over, every task is done once and the "
          "pending list drains",
          "[system][tasks]") {
  NOVA_REQUIRE_NATS_SERVER();
  NOVA_REQUIRE_REDIS_SERVER();
  task_cluster c;
  auto& a = c.start_node("na", 4);
  auto& b = c.start_node("nb", 4);
  constexpr int n = 300;
  auto ids = c.enqueue("crash", 0, n, "sleep", "20");
  // Let both nodes get going, then kill one while it holds claims.
  REQUIRE(eventually(
    [&] {
      auto p = c.store().pending_per_consumer();
      return p && p->count("nb") > 0 && p->count("na") > 0;
    },
    10s));
  auto first = c.collect("crash", 40, 20s);
  REQUIRE(first.size() == 40);
  b.signal(SIGKILL);
  REQUIRE(b.wait(5s));
  auto before = c.store().pending_per_consumer();
  REQUIRE(before);
  INFO("pending of the killed node: " << (*before)["nb"]);
  CHECK((*before)["nb"] > 0);
  auto rest = c.collect("crash", n - first.size(), 60s);
  INFO(a.output());
  auto results = first;
  results.insert(results.end(), rest.begin(), rest.end());
  CHECK(results.size() == n);
  auto got = count_ids(results);
  CHECK(not_once(ids, got).empty());
  // The claims of the killed node came back as second deliveries.
  CHECK(std::any_of(results.begin(), results.end(),
                    [](const nova::task_result& r) {
                      return r.attempts > 1 && r.worker.rfind("na-w", 0) == 0;
                    }));
  for (const auto& r : results)
    CHECK(r.status == nova::task_status::done);
  // Past the reclaim idle time, nothing is left pending, not even the
  // killed node's claims.
  CHECK(c.drained(15s));
  auto more = c.client().collect("crash", 1, 2 * task_timeout);
  REQUIRE(more);
  CHECK(more->empty());
  CHECK(alive(a));
  auto s = c.client().task_stats();
  REQUIRE(s);
  CHECK(s->done == n);
  CHECK(s->dead == 0);
}

TEST_CASE("the store stopped and restarted during work: nodes stay up, the "
          "client accepts tasks into its outbox meanwhile and no task is "
          "lost",
          "[system][tasks]") {
  NOVA_REQUIRE_NATS_SERVER();
  NOVA_REQUIRE_REDIS_SERVER();
  task_cluster c{true};
  auto& a = c.start_node("na", 4);
  auto& b = c.start_node("nb", 4);
  auto ids = c.enqueue("restart", 0, 200, "sleep", "10");
  auto first = c.collect("restart", 20, 20s);
  REQUIRE(first.size() == 20);
  CHECK(c.client_store_health() == std::make_pair(true, uint64_t{0}));
  c.redis().stop();
  // Accepted while the store is down: the client holds them.
  auto during = c.enqueue("restart", 200, 100, "sleep", "10");
  ids.insert(ids.end(), during.begin(), during.end());
  auto h = c.client_store_health();
  CHECK_FALSE(h.first);
  CHECK(h.second == 100);
  auto nh = c.client().health();
  CHECK(nh.status == "degraded");
  CHECK_FALSE(nh.store_reachable);
  CHECK(nh.store_backlog == 100);
  std::this_thread::sleep_for(2s);
  CHECK(alive(a));
  CHECK(alive(b));
  c.redis().start();
  auto after = c.enqueue("restart", 300, 100, "sleep", "10");
  ids.insert(ids.end(), after.begin(), after.end());
  auto rest = c.collect("restart", ids.size() - first.size(), 90s);
  INFO(a.output() + b.output());
  auto results = first;
  results.insert(results.end(), rest.begin(), rest.end());
  CHECK(results.size() == ids.size());
  auto got = count_ids(results);
  CHECK(not_once(ids, got).empty());
  CHECK(c.drained(15s));
  CHECK(eventually(
    [&] { return c.client_store_health() == std::make_pair(true, uint64_t{0}); },
    10s));
  CHECK(eventually([&] { return c.client().health().status == "healthy"; },
                   10s));
  CHECK(alive(a));
  CHECK(alive(b));
  auto more = c.client().collect("restart", 1, 2 * task_timeout);
  REQUIRE(more);
  CHECK(more->empty());
}
