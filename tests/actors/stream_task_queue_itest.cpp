// Tests of the clustered task queue service against a real redis-server: each
// "node" is a queue actor with its own context and store, all of them in one
// actor system, sharing one server.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "actors/stream_task_queue_actor.hpp"
#include "cluster/task_store.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "messages/registry.hpp"
#include "support/redis_server.hpp"
#include "support/test_node.hpp"

using namespace std::chrono_literals;
using nova::counter;
using nova::errc;
using nova::priority;
using nova::queue_stats;
using nova::task;
using nova::task_result;
using nova::task_status;
using nova::task_store;
using nova::testing::eventually;
using nova::testing::redis_server;

namespace {

using strings = std::vector<std::string>;

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

caf::actor_system_config& prepared(caf::actor_system_config& cfg) {
  nova::register_types(cfg);
  cfg.set("scheduler.max-threads", 2);
  return cfg;
}

// One actor system per test; the queues it holds stop before it does.
struct cluster {
  explicit cluster(const redis_server& srv) : srv(srv) {
    spdlog::set_level(spdlog::level::err);
  }

  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  ~cluster() {
    for (auto& q : queues)
      caf::anon_send_exit(q, caf::exit_reason::user_shutdown);
  }

  struct node {
    nova::context_ptr ctx;
    std::shared_ptr<task_store> store;
    caf::actor queue;
  };

  node start(const std::string& id, caf::timespan task_timeout = 5s,
             uint32_t delivery_limit = 3, size_t outbox_capacity = 0) {
    node n;
    n.ctx = std::make_shared<nova::runtime_context>();
    n.ctx->node_id = id;
    n.ctx->limits.task_timeout = task_timeout;
    n.ctx->limits.delivery_limit = delivery_limit;
    auto rs = must(nova::redis_settings::from_url(srv.url()));
    rs.connect_timeout = 1s;
    rs.command_timeout = 2s;
    rs.reconnect_base = 50ms;
    rs.reconnect_max = 200ms;
    auto pool = std::make_shared<nova::redis_pool>(
      must(nova::redis_pool::make(rs)));
    n.ctx->limits.retry_base = 50ms;
    n.ctx->limits.retry_max = 200ms;
    auto s = nova::task_store_settings(n.ctx->limits);
    n.store = must(task_store::make(pool, must(nova::naming::make()), s));
    nova::stream_task_queue_settings cfg;
    cfg.claim_slice = 300ms;
    cfg.store_retry_max = 200ms;
    cfg.outbox_capacity = outbox_capacity;
    n.queue = nova::spawn_stream_task_queue(sys, n.ctx, n.store, cfg);
    queues.push_back(n.queue);
    return n;
  }

  const redis_server& srv;
  caf::actor_system_config cfg;
  caf::actor_system sys{prepared(cfg)};
  std::vector<caf::actor> queues;
};

template <class T, class... Ts>
caf::expected<T> ask(caf::scoped_actor& self, const caf::actor& dest,
                     caf::timespan timeout, Ts&&... xs) {
  caf::expected<T> out{nova::make_error(errc::request_timeout)};
  self->request(dest, timeout, std::forward<Ts>(xs)...)
    .receive([&](T& x) { out = std::move(x); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

task make_task(std::string id, priority p = priority::normal,
               std::string session = "s1", std::string type = "work") {
  task t;
  t.id = std::move(id);
  t.session = std::move(session);
  t.type = std::move(type);
  t.priority = p;
  t.payload = "input of " + t.id;
  t.created_by = "tester";
  t.created_at = nova::now_ms();
  return t;
}

std::string enqueue(caf::scoped_actor& self, const caf::actor& q, task t) {
  return must(ask<std::string>(self, q, 5s, nova::enqueue_atom::value,
                               std::move(t)));
}

task claim(caf::scoped_actor& worker, const caf::actor& q,
           const std::string& worker_id, caf::timespan timeout = 5s) {
  return must(ask<task>(worker, q, timeout, nova::claim_atom::value,
                        worker_id));
}

void complete(caf::scoped_actor& worker, const caf::actor& q,
              const std::string& task_id, const std::string& worker_id,
              std::string payload) {
  worker->send(q, nova::complete_atom::value, task_id, worker_id,
               std::move(payload));
}

void fail(caf::scoped_actor& worker, const caf::actor& q,
          const std::string& task_id, const std::string& worker_id,
          std::string reason) {
  worker->send(q, nova::fail_atom::value, task_id, worker_id,
               std::move(reason));
}

std::vector<task_result> collect(caf::scoped_actor& self, const caf::actor& q,
                                 const std::string& session, uint64_t n,
                                 caf::timespan timeout) {
  return must(ask<std::vector<task_result>>(self, q, timeout + 5s,
                                            nova::collect_atom::value, session,
                                            n, timeout));
}

queue_stats stats(caf::scoped_actor& self, const caf::actor& q) {
  return must(ask<queue_stats>(self, q, 5s, nova::stats_atom::value));
}

// (store reachable, tasks waiting in the outbox)
std::pair<bool, uint64_t> health(caf::scoped_actor& self,
                                 const caf::actor& q) {
  std::pair<bool, uint64_t> out{true, UINT64_MAX};
  self->request(q, 5s, nova::store_health_atom::value)
    .receive([&](bool up, uint64_t depth) { out = {up, depth}; },
             [&](caf::error& err) { FAIL(nova::describe(err)); });
  return out;
}

} // namespace

TEST_CASE("tasks enqueued on one node are claimed on the other exactly once",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  auto b = c.start("node-b");
  caf::scoped_actor self{c.sys};
  constexpr int n = 40;
  for (int i = 0; i < n; ++i)
    enqueue(self, a.queue,
            make_task("t" + std::to_string(i),
                      static_cast<priority>(1 + i % 4), "many"));
  // Four workers, two per node, each takes exactly a quarter of the tasks
  // at the same time as the others. Catch2 is not thread-safe: the threads
  // only record.
  std::mutex mtx;
  std::map<std::string, std::string> taken; // task id -> worker
  std::vector<std::string> duplicates;
  int errors = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      auto& node = w % 2 == 0 ? a : b;
      auto worker_id = "w" + std::to_string(w);
      caf::scoped_actor worker{c.sys};
      for (int k = 0; k < n / 4; ++k) {
        auto t = ask<task>(worker, node.queue, 10s, nova::claim_atom::value,
                           worker_id);
        std::lock_guard<std::mutex> guard{mtx};
        if (!t) {
          ++errors;
          continue;
        }
        if (!taken.emplace(t->id, worker_id).second)
          duplicates.push_back(t->id);
        complete(worker, node.queue, t->id, worker_id, "by " + worker_id);
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(errors == 0);
  CHECK(duplicates.empty());
  CHECK(taken.size() == n);
  auto results = collect(self, a.queue, "many", n, 5s);
  CHECK(results.size() == n);
  std::set<std::string> ids;
  std::set<std::string> by_node_b;
  for (auto& r : results) {
    ids.insert(r.task_id);
    CHECK(r.status == task_status::done);
    CHECK(r.attempts == 1);
    CHECK(r.payload == "by " + taken[r.task_id]);
    if (r.worker == "w1" || r.worker == "w3")
      by_node_b.insert(r.task_id);
  }
  CHECK(ids.size() == n);
  CHECK(by_node_b.size() == n / 2);
  auto s = stats(self, b.queue);
  CHECK(s.done == n);
  CHECK(s.enqueued == n);
  CHECK(s.in_flight == 0);
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(a.ctx->stats.get(counter::tasks_enqueued) == n);
  CHECK(eventually([&] {
    return a.ctx->stats.get(counter::tasks_done)
             + b.ctx->stats.get(counter::tasks_done)
           == n;
  }));
}

TEST_CASE("a worker waiting on one node gets a task enqueued on the other",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  auto b = c.start("node-b");
  caf::scoped_actor self{c.sys};
  caf::scoped_actor worker{c.sys};
  // The claim waits on node b before anything is queued.
  auto pending = worker->request(b.queue, 10s, nova::claim_atom::value,
                                 std::string{"wb"});
  std::this_thread::sleep_for(100ms);
  enqueue(self, a.queue, make_task("remote", priority::low));
  std::string got;
  pending.receive([&](task& t) { got = t.id; },
                  [&](caf::error& err) { FAIL(nova::describe(err)); });
  CHECK(got == "remote");
  complete(worker, b.queue, "remote", "wb", "ok");
  auto rs = collect(self, a.queue, "s1", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].worker == "wb");
}

TEST_CASE("claims through the queue follow priority order and FIFO within a "
          "lane",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  caf::scoped_actor self{c.sys};
  enqueue(self, a.queue, make_task("low", priority::low));
  enqueue(self, a.queue, make_task("normal-1", priority::normal));
  enqueue(self, a.queue, make_task("urgent", priority::urgent));
  enqueue(self, a.queue, make_task("normal-2", priority::normal));
  enqueue(self, a.queue, make_task("high", priority::high));
  strings order;
  for (int i = 0; i < 5; ++i) {
    auto t = claim(self, a.queue, "w");
    order.push_back(t.id);
    complete(self, a.queue, t.id, "w", "");
  }
  CHECK(order == strings{"urgent", "high", "normal-1", "normal-2", "low"});
  auto dup = ask<std::string>(self, a.queue, 5s, nova::enqueue_atom::value,
                              make_task("low"));
  REQUIRE_FALSE(dup);
  CHECK(nova::is(dup.error(), errc::duplicate_id));
}

TEST_CASE("a failing task is retried after its backoff, becomes a dead "
          "letter at the limit and can be redriven",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  auto b = c.start("node-b");
  caf::scoped_actor self{c.sys};
  caf::scoped_actor worker{c.sys};
  enqueue(self, a.queue, make_task("flaky", priority::high, "retry"));
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    // Retries are promoted by the node that scheduled them; any node's
    // workers may take them.
    auto& node = attempt % 2 == 1 ? a : b;
    auto t = claim(worker, node.queue, "w");
    CHECK(t.id == "flaky");
    CHECK(t.attempts == attempt);
    if (attempt > 1)
      CHECK(t.last_error == "boom " + std::to_string(attempt - 1));
    fail(worker, node.queue, t.id, "w", "boom " + std::to_string(attempt));
  }
  auto rs = collect(self, b.queue, "retry", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].status == task_status::dead);
  CHECK(rs[0].attempts == 3);
  CHECK(rs[0].error == "boom 3");
  // The counters follow the store's answer, a moment after the result.
  auto counted = [&](counter x) {
    return a.ctx->stats.get(x) + b.ctx->stats.get(x);
  };
  CHECK(eventually([&] { return counted(counter::tasks_dead) == 1; }));
  CHECK(counted(counter::tasks_retried) == 2);
  auto dead = must(ask<std::vector<task>>(self, b.queue, 5s,
                                          nova::dead_atom::value,
                                          uint64_t{10}));
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == "flaky");
  CHECK(dead[0].attempts == 3);
  auto s = stats(self, a.queue);
  CHECK(s.dead == 1);
  CHECK(s.retried == 2);
  CHECK(s.in_flight == 0);
  CHECK(s.delayed == 0);
  auto none = ask<uint64_t>(self, a.queue, 5s, nova::redrive_atom::value,
                            std::string{"unknown"});
  REQUIRE_FALSE(none);
  CHECK(nova::is(none.error(), errc::not_found));
  CHECK(must(ask<uint64_t>(self, a.queue, 5s, nova::redrive_atom::value,
                           std::string{}))
        == 1);
  auto again = claim(worker, a.queue, "w");
  CHECK(again.id == "flaky");
  CHECK(again.attempts == 1);
  complete(worker, a.queue, again.id, "w", "finally");
  rs = collect(self, b.queue, "retry", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].status == task_status::done);
  CHECK(rs[0].payload == "finally");
  CHECK(stats(self, a.queue).dead == 0);
}

TEST_CASE("a worker that stops has its tasks failed and retried on another "
          "worker",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  caf::scoped_actor self{c.sys};
  enqueue(self, a.queue, make_task("orphan"));
  {
    caf::scoped_actor quitter{c.sys};
    auto t = claim(quitter, a.queue, "quitter");
    CHECK(t.id == "orphan");
    CHECK(stats(self, a.queue).in_flight == 1);
  } // The worker stops without completing.
  caf::scoped_actor heir{c.sys};
  auto t = claim(heir, a.queue, "heir");
  CHECK(t.id == "orphan");
  CHECK(t.attempts == 2);
  CHECK(t.last_error == "worker 'quitter' stopped");
  complete(heir, a.queue, t.id, "heir", "rescued");
  auto rs = collect(self, a.queue, "s1", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].worker == "heir");
  CHECK(rs[0].attempts == 2);
}

TEST_CASE("a task not finished within the task timeout is failed and a late "
          "completion is ignored",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a", 300ms);
  caf::scoped_actor self{c.sys};
  caf::scoped_actor slow{c.sys};
  caf::scoped_actor fast{c.sys};
  enqueue(self, a.queue, make_task("slow-task"));
  auto first = claim(slow, a.queue, "slow");
  CHECK(first.attempts == 1);
  auto second = claim(fast, a.queue, "fast");
  CHECK(second.id == "slow-task");
  CHECK(second.attempts == 2);
  CHECK(second.last_error == "task timed out on worker 'slow'");
  complete(slow, a.queue, first.id, "slow", "too late");
  complete(fast, a.queue, second.id, "fast", "in time");
  auto rs = collect(self, a.queue, "s1", 2, 500ms);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].worker == "fast");
  CHECK(rs[0].payload == "in time");
}

TEST_CASE("claims of a node that died are reclaimed by another node",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  // The dead node: it claimed through the store and then vanished.
  auto a = c.start("node-a");
  caf::scoped_actor self{c.sys};
  enqueue(self, a.queue, make_task("abandoned", priority::urgent));
  REQUIRE(must(a.store->claim("crashed-node")));
  auto b = c.start("node-b", 500ms);
  caf::scoped_actor worker{c.sys};
  auto t = claim(worker, b.queue, "wb");
  complete(worker, b.queue, t.id, "wb", "saved");
  CHECK(t.id == "abandoned");
  CHECK(t.attempts == 2);
  auto rs = collect(self, a.queue, "s1", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].payload == "saved");
  CHECK(rs[0].worker == "wb");
  CHECK(rs[0].attempts == 2);
  CHECK(must(b.store->pending_per_consumer()).empty());
}

TEST_CASE("a node thought dead that completes its claim after all writes "
          "no second result",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  caf::scoped_actor self{c.sys};
  enqueue(self, a.queue, make_task("twice", priority::normal, "s2"));
  auto late = must(a.store->claim("slow-node"));
  REQUIRE(late);
  auto b = c.start("node-b", 200ms);
  caf::scoped_actor worker{c.sys};
  auto t = claim(worker, b.queue, "wb");
  CHECK(t.id == "twice");
  CHECK(t.attempts == 2);
  complete(worker, b.queue, t.id, "wb", "from b");
  auto rs = collect(self, a.queue, "s2", 1, 5s);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].payload == "from b");
  // The slow node finishes too: its entry is acked already.
  CHECK(must(a.store->complete(*late, "from the slow node", "slow"))
        == nova::task_store::completion::stale);
  CHECK(collect(self, a.queue, "s2", 1, 200ms).empty());
  CHECK(must(a.store->stats()).done == 1);
}

TEST_CASE("collect hands each result out once per node and waits for "
          "results that arrive later",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  auto b = c.start("node-b");
  caf::scoped_actor self{c.sys};
  caf::scoped_actor worker{c.sys};
  for (auto id : {"r1", "r2", "r3"})
    enqueue(self, a.queue, make_task(id, priority::normal, "sess"));
  for (int i = 0; i < 2; ++i) {
    auto t = claim(worker, a.queue, "w");
    complete(worker, a.queue, t.id, "w", "out " + t.id);
  }
  auto first = collect(self, a.queue, "sess", 2, 5s);
  REQUIRE(first.size() == 2);
  CHECK(first[0].task_id == "r1");
  CHECK(first[1].task_id == "r2");
  // A collect that waits is answered when the result arrives.
  caf::scoped_actor collector{c.sys};
  auto later = collector->request(a.queue, 10s, nova::collect_atom::value,
                                  std::string{"sess"}, uint64_t{1},
                                  caf::timespan{5s});
  auto t = claim(worker, a.queue, "w");
  complete(worker, a.queue, t.id, "w", "out " + t.id);
  std::vector<task_result> third;
  later.receive([&](std::vector<task_result>& xs) { third = std::move(xs); },
                [&](caf::error& err) { FAIL(nova::describe(err)); });
  REQUIRE(third.size() == 1);
  CHECK(third[0].task_id == "r3");
  // Nothing is handed out twice by a node...
  CHECK(collect(self, a.queue, "sess", 5, 100ms).empty());
  // ...while another node reads the stream from its own position.
  auto on_b = collect(self, b.queue, "sess", 3, 5s);
  REQUIRE(on_b.size() == 3);
  CHECK(on_b[2].payload == "out r3");
  auto bad = ask<std::vector<task_result>>(self, a.queue, 5s,
                                           nova::collect_atom::value,
                                           std::string{"not a session"},
                                           uint64_t{1}, caf::timespan{10ms});
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
}

TEST_CASE("the queue keeps running while the store is down, accepts tasks "
          "into its outbox and writes them once the store is back",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  caf::scoped_actor self{c.sys};
  caf::scoped_actor worker{c.sys};
  enqueue(self, a.queue, make_task("before"));
  auto t = claim(worker, a.queue, "w");
  CHECK(health(self, a.queue) == std::make_pair(true, uint64_t{0}));
  srv.stop();
  // The completion waits for the store (it is lost with the data of this
  // server, which keeps nothing on disk, but must not crash the queue).
  complete(worker, a.queue, t.id, "w", "");
  // Accepted: the outbox holds it until the store answers.
  CHECK(enqueue(self, a.queue, make_task("during-1")) == "during-1");
  CHECK(enqueue(self, a.queue, make_task("during-2")) == "during-2");
  CHECK(health(self, a.queue) == std::make_pair(false, uint64_t{2}));
  // A bad id is still refused at once.
  auto bad = ask<std::string>(self, a.queue, 5s, nova::enqueue_atom::value,
                              make_task("not valid"));
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
  auto no_stats = ask<queue_stats>(self, a.queue, 5s, nova::stats_atom::value);
  REQUIRE_FALSE(no_stats);
  CHECK(nova::is(no_stats.error(), errc::backend_unavailable));
  auto pending = worker->request(a.queue, 20s, nova::claim_atom::value,
                                 std::string{"w"});
  CHECK(a.store->store_errors() > 0);
  srv.start();
  // The outbox goes first, in order.
  std::string got;
  pending.receive([&](task& x) { got = x.id; },
                  [&](caf::error& err) { FAIL(nova::describe(err)); });
  CHECK(got == "during-1");
  complete(worker, a.queue, got, "w", "");
  CHECK(eventually([&] { return health(self, a.queue).second == 0; }, 10s));
  CHECK(health(self, a.queue).first);
  enqueue(self, a.queue, make_task("after"));
  CHECK(claim(worker, a.queue, "w").id == "during-2");
  CHECK(claim(worker, a.queue, "w").id == "after");
  auto s = stats(self, a.queue);
  CHECK(s.enqueued == 3);
}

TEST_CASE("a full outbox refuses enqueues with queue_full while the store "
          "is down",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a", 5s, 3, 2);
  caf::scoped_actor self{c.sys};
  srv.stop();
  CHECK(enqueue(self, a.queue, make_task("one")) == "one");
  CHECK(enqueue(self, a.queue, make_task("two")) == "two");
  auto full = ask<std::string>(self, a.queue, 5s, nova::enqueue_atom::value,
                               make_task("three"));
  REQUIRE_FALSE(full);
  CHECK(nova::is(full.error(), errc::queue_full));
  CHECK(a.ctx->stats.get(counter::outbox_full) == 1);
  srv.start();
  CHECK(eventually([&] { return health(self, a.queue).second == 0; }, 10s));
  // The refused task was not taken: it can be enqueued now.
  CHECK(enqueue(self, a.queue, make_task("three")) == "three");
  caf::scoped_actor worker{c.sys};
  strings order;
  for (int i = 0; i < 3; ++i) {
    auto t = claim(worker, a.queue, "w");
    order.push_back(t.id);
    complete(worker, a.queue, t.id, "w", "");
  }
  CHECK(order == strings{"one", "two", "three"});
}

TEST_CASE("many workers on two nodes drain a large batch exactly once with "
          "claims made ahead",
          "[stream_task_queue]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  cluster c{srv};
  auto a = c.start("node-a");
  auto b = c.start("node-b");
  caf::scoped_actor self{c.sys};
  constexpr int n = 2000;
  // Enqueued without waiting for each reply: they go out in batches.
  for (int i = 0; i < n; ++i)
    self->send(a.queue, nova::enqueue_atom::value,
               make_task("b" + std::to_string(i), priority::normal, "bulk"));
  std::mutex mtx;
  std::map<std::string, int> runs;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 6; ++w)
    threads.emplace_back([&, w] {
      auto& node = w % 2 == 0 ? a : b;
      auto worker_id = "w" + std::to_string(w);
      caf::scoped_actor worker{c.sys};
      while (!stop) {
        auto t = ask<task>(worker, node.queue, 500ms, nova::claim_atom::value,
                           worker_id);
        if (!t) {
          if (!nova::is(t.error(), errc::request_timeout)
              && t.error() != caf::sec::request_timeout)
            ++errors;
          continue;
        }
        {
          std::lock_guard<std::mutex> guard{mtx};
          ++runs[t->id];
        }
        complete(worker, node.queue, t->id, worker_id, "");
      }
    });
  auto results = collect(self, b.queue, "bulk", n, 60s);
  stop = true;
  for (auto& t : threads)
    t.join();
  CHECK(errors == 0);
  CHECK(results.size() == n);
  std::set<std::string> ids;
  for (auto& r : results)
    ids.insert(r.task_id);
  CHECK(ids.size() == n);
  CHECK(runs.size() == n);
  CHECK(std::all_of(runs.begin(), runs.end(),
                    [](auto& kvp) { return kvp.second == 1; }));
  CHECK(eventually([&] {
    auto s = stats(self, a.queue);
    return s.in_flight == 0 && s.done == n;
  }));
}
