#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "support/redis_server.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::fresh_prefix;
using nova::testing::redis_server;

namespace {

using task_sink = std::shared_ptr<nova::testing::sink<task>>;

class store_worker : public agent {
public:
  store_worker(caf::actor_config& cfg, agent_init init, task_sink seen)
    : agent(cfg, std::move(init)), seen_(std::move(seen)) {
    // nop
  }

protected:
  caf::expected<std::string> on_task(const task& t) override {
    seen_->push(t);
    if (t.type == "fail")
      return make_error(errc::handler_failed, "told to fail");
    return context().node_id + ":" + t.payload;
  }

private:
  task_sink seen_;
};

config store_config(const std::string& node_id, const std::string& url,
                    const std::string& prefix) {
  auto cfg = nova::testing::test_config();
  cfg.node_id = node_id;
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = url;
  cfg.prefix = prefix;
  return cfg;
}

/// Nodes a and b on one server and prefix; workers on b record what they
/// run in `seen`.
struct two_nodes {
  redis_server srv;
  std::string pfx = fresh_prefix();
  node a{store_config("node-a", srv.url(), pfx)};
  node b{store_config("node-b", srv.url(), pfx)};
  task_sink seen = std::make_shared<nova::testing::sink<task>>();

  void workers(int n) {
    agent_options work;
    work.worker = true;
    for (int i = 0; i < n; ++i)
      REQUIRE(b.spawn<store_worker>("w" + std::to_string(i), work, seen));
  }
};

} // namespace

TEST_CASE("with the redis store, tasks enqueued on one node run once on "
          "workers of another",
          "[store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  two_nodes nodes;
  auto& a = nodes.a;
  auto& b = nodes.b;
  auto& seen = nodes.seen;
  nodes.workers(3);
  constexpr int count = 100;
  for (int i = 0; i < count; ++i)
    REQUIRE(a.enqueue("t", std::to_string(i), priority::normal, "shared"));
  auto results = a.collect("shared", count, 20s);
  REQUIRE(results);
  REQUIRE(results->size() == count);
  std::set<std::string> ids;
  for (const auto& r : *results) {
    ids.insert(r.task_id);
    CHECK(r.status == task_status::done);
    CHECK(r.payload.rfind("node-b:", 0) == 0);
  }
  CHECK(ids.size() == count);
  CHECK(seen->size() == count);
  auto st = a.task_stats();
  REQUIRE(st);
  CHECK(st->in_flight == 0);
  // A duplicate id is refused cluster-wide.
  task t;
  t.id = "only-once";
  REQUIRE(a.enqueue(t));
  CHECK(is(b.enqueue(t).error(), errc::duplicate_id));
}

TEST_CASE("with the redis store, enqueue_many answers per task and its "
          "tasks run once",
          "[store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  two_nodes nodes;
  nodes.workers(1);
  auto& a = nodes.a;
  task taken;
  taken.id = "taken";
  taken.session = "many";
  REQUIRE(a.enqueue(taken));
  std::vector<task> ts(700);
  for (size_t i = 0; i < ts.size(); ++i) {
    ts[i].id = "m" + std::to_string(i);
    ts[i].type = "t";
    ts[i].session = "many";
  }
  ts[3].id = "taken";
  ts[4].id = "not valid";
  ts[5].payload.assign(2 << 20, 'x');
  auto r = a.enqueue_many(ts);
  REQUIRE(r.size() == ts.size());
  CHECK(is(r[3].error(), errc::duplicate_id));
  CHECK(is(r[4].error(), errc::invalid_id));
  CHECK(is(r[5].error(), errc::payload_too_large));
  size_t ok = 0;
  for (size_t i = 0; i < r.size(); ++i)
    if (r[i]) {
      CHECK(*r[i] == ts[i].id);
      ++ok;
    }
  CHECK(ok == 697);
  auto results = a.collect("many", 698, 20s);
  REQUIRE(results);
  std::set<std::string> ids;
  for (const auto& x : *results)
    ids.insert(x.task_id);
  CHECK(ids.size() == 698);
  CHECK(nodes.seen->size() == 698);
}

TEST_CASE("with the redis store, a failing task becomes a dead letter that "
          "every node sees and can re-drive",
          "[store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  two_nodes nodes;
  auto& a = nodes.a;
  auto& b = nodes.b;
  auto& seen = nodes.seen;
  nodes.workers(1);
  auto id = a.enqueue("fail", "x", priority::high, "doomed");
  REQUIRE(id);
  auto results = a.collect("doomed", 1, 20s);
  REQUIRE(results);
  REQUIRE(results->size() == 1);
  CHECK((*results)[0].status == task_status::dead);
  CHECK((*results)[0].attempts == 3);
  auto dead = a.dead_letters();
  REQUIRE(dead);
  REQUIRE(dead->size() == 1);
  CHECK((*dead)[0].id == *id);
  CHECK(b.dead_letters()->size() == 1);
  auto moved = a.redrive(*id);
  REQUIRE(moved);
  CHECK(*moved == 1);
  REQUIRE(seen->wait_for(6, 20s).size() == 6);
}

TEST_CASE("with the redis store, --task-id-ttl-s frees a task id that "
          "long after its enqueue",
          "[store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto cfg = store_config("node-a", srv.url(), fresh_prefix());
  cfg.limits.task_id_ttl = 1s;
  node a{cfg};
  task t;
  t.id = "once";
  t.type = "work";
  REQUIRE(a.enqueue(t));
  // Taken while its record lasts (nothing runs it here: no workers).
  auto again = a.enqueue(t);
  REQUIRE_FALSE(again);
  CHECK(is(again.error(), errc::duplicate_id));
  std::this_thread::sleep_for(1200ms);
  // Free again once the record expired: the same id is queued twice now.
  CHECK(a.enqueue(t));
  auto s = a.task_stats();
  REQUIRE(s);
  CHECK(s->enqueued == 2);
}

TEST_CASE("a node with an unreachable store starts and reports clear errors",
          "[store]") {
  auto cfg = store_config("node-x", "redis://127.0.0.1:1", fresh_prefix());
  cfg.limits.request_timeout = 3s;
  node n{cfg};
  // An enqueue waits in the outbox for the store; what needs an answer from
  // the store fails clearly.
  CHECK(n.enqueue("t", "x"));
  auto s = n.task_stats();
  REQUIRE(!s);
  CHECK(is(s.error(), errc::backend_unavailable));
  CHECK(n.novas().empty());
}
