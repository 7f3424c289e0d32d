#include <atomic>
#include <set>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::eventually;
using nova::testing::test_config;

namespace {

using task_sink = std::shared_ptr<nova::testing::sink<task>>;

/// Records every task it runs; fails tasks of type "fail", throws on "throw",
/// otherwise replies "done:" + payload.
class test_worker : public agent {
public:
  test_worker(caf::actor_config& cfg, agent_init init, task_sink seen)
    : agent(cfg, std::move(init)), seen_(std::move(seen)) {
    // nop
  }

protected:
  caf::expected<std::string> on_task(const task& t) override {
    seen_->push(t);
    if (t.type == "fail")
      return make_error(errc::handler_failed, "told to fail");
    if (t.type == "throw")
      throw std::runtime_error("worker exploded");
    return "done:" + t.payload;
  }

private:
  task_sink seen_;
};

agent_options worker_options() {
  agent_options opts;
  opts.worker = true;
  opts.capabilities = {"work"};
  return opts;
}

} // namespace

TEST_CASE("a worker claims an enqueued task and its result can be collected",
          "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w1", worker_options(), seen));
  auto id = n.enqueue("echo", "42", priority::normal, "s1");
  REQUIRE(id);
  auto results = n.collect("s1", 1, 5s);
  REQUIRE(results);
  REQUIRE(results->size() == 1);
  CHECK((*results)[0].task_id == *id);
  CHECK((*results)[0].status == task_status::done);
  CHECK((*results)[0].payload == "done:42");
  CHECK((*results)[0].worker == "w1");
  CHECK((*results)[0].attempts == 1);
  CHECK(n.stats().get(counter::tasks_done) == 1);
}

TEST_CASE("enqueue_many answers per task, in order, and the tasks run",
          "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  std::vector<task> ts(5);
  for (size_t i = 0; i < ts.size(); ++i) {
    ts[i].id = "b" + std::to_string(i);
    ts[i].type = "echo";
    ts[i].payload = std::to_string(i);
    ts[i].session = "batch";
  }
  ts[1].id = "b0"; // a duplicate of the first
  ts[2].id = "no way";
  ts[3].id.clear(); // gets a generated id
  auto r = n.enqueue_many(ts);
  REQUIRE(r.size() == 5);
  REQUIRE(r[0]);
  CHECK(*r[0] == "b0");
  CHECK(is(r[1].error(), errc::duplicate_id));
  CHECK(is(r[2].error(), errc::invalid_id));
  REQUIRE(r[3]);
  CHECK_FALSE(r[3]->empty());
  REQUIRE(r[4]);
  CHECK(*r[4] == "b4");
  CHECK(n.enqueue_many({}).empty());
  agent_options work;
  work.worker = true;
  REQUIRE(n.spawn<test_worker>("w", work, seen));
  auto results = n.collect("batch", 3, 5s);
  REQUIRE(results);
  REQUIRE(results->size() == 3);
  // One worker takes them in the order they were enqueued.
  std::vector<std::string> order;
  for (auto& t : seen->items())
    order.push_back(t.payload);
  CHECK(order == std::vector<std::string>{"0", "3", "4"});
}

/// Enqueues `n` tasks with `enqueue_many` for every message ("<n>"), one of
/// them oversized; reports in `answers` what `enqueue_many` said per task.
class fanout : public agent {
public:
  fanout(caf::actor_config& cfg, agent_init init,
         std::shared_ptr<nova::testing::sink<std::string>> answers)
    : agent(cfg, std::move(init)), answers_(std::move(answers)) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    std::vector<task> ts(std::stoul(msg.payload));
    for (size_t i = 0; i < ts.size(); ++i) {
      ts[i].type = "echo";
      ts[i].payload = std::to_string(i);
      ts[i].session = "fan";
    }
    ts[1].payload.assign(2 << 20, 'x');
    for (auto& x : enqueue_many(std::move(ts)))
      answers_->push(x ? std::string{"id"} : describe(x.error()));
  }

private:
  std::shared_ptr<nova::testing::sink<std::string>> answers_;
};

TEST_CASE("an agent enqueues a batch with enqueue_many; what it refuses "
          "itself is its answer, the rest run",
          "[tasks]") {
  node n{test_config()};
  auto answers = std::make_shared<nova::testing::sink<std::string>>();
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<fanout>("fan", {}, answers));
  agent_options work;
  work.worker = true;
  REQUIRE(n.spawn<test_worker>("w", work, seen));
  REQUIRE_FALSE(n.send("fan", "4"));
  auto xs = answers->wait_for(4);
  REQUIRE(xs.size() == 4);
  CHECK(xs[0] == "id");
  CHECK(xs[1].find("payload_too_large") != std::string::npos);
  CHECK(xs[2] == "id");
  CHECK(xs[3] == "id");
  auto results = n.collect("fan", 3, 5s);
  REQUIRE(results);
  CHECK(results->size() == 3);
  std::vector<std::string> order;
  for (auto& t : seen->wait_for(3))
    order.push_back(t.payload);
  CHECK(order == std::vector<std::string>{"0", "2", "3"});
  for (auto& t : seen->items())
    CHECK(t.created_by == "fan");
}

TEST_CASE("workers take tasks in priority order", "[tasks]") {
  node n{test_config()};
  // Enqueue while no worker runs, then start one worker.
  for (auto [p, name] : {std::pair{priority::low, "low"},
                         std::pair{priority::normal, "normal"},
                         std::pair{priority::urgent, "urgent"},
                         std::pair{priority::high, "high"}})
    REQUIRE(n.enqueue("t", name, p, "prio"));
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  auto xs = seen->wait_for(4);
  REQUIRE(xs.size() == 4);
  CHECK(xs[0].payload == "urgent");
  CHECK(xs[1].payload == "high");
  CHECK(xs[2].payload == "normal");
  CHECK(xs[3].payload == "low");
}

TEST_CASE("a task that fails three times becomes a dead letter that can be "
          "re-driven",
          "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  auto id = n.enqueue("fail", "x", priority::high, "dl");
  REQUIRE(id);
  auto results = n.collect("dl", 1, 5s);
  REQUIRE(results);
  REQUIRE(results->size() == 1);
  CHECK((*results)[0].status == task_status::dead);
  CHECK((*results)[0].attempts == 3);
  CHECK((*results)[0].error.find("told to fail") != std::string::npos);
  auto attempts = seen->items();
  REQUIRE(attempts.size() == 3);
  CHECK(attempts[0].attempts == 1);
  CHECK(attempts[2].attempts == 3);
  CHECK(n.stats().get(counter::tasks_retried) == 2);
  CHECK(n.stats().get(counter::tasks_dead) == 1);
  auto dead = n.dead_letters();
  REQUIRE(dead);
  REQUIRE(dead->size() == 1);
  CHECK((*dead)[0].id == *id);
  CHECK((*dead)[0].last_error.find("told to fail") != std::string::npos);
  // Re-driving puts it back with a fresh delivery count: three more attempts.
  auto moved = n.redrive(*id);
  REQUIRE(moved);
  CHECK(*moved == 1);
  REQUIRE(seen->wait_for(6).size() == 6);
  REQUIRE(n.collect("dl", 1, 5s)->size() == 1);
  CHECK(is(n.redrive("no-such-task").error(), errc::not_found));
}

TEST_CASE("a worker that throws fails the attempt and keeps working",
          "[tasks]") {
  auto cfg = test_config();
  cfg.limits.delivery_limit = 1;
  node n{cfg};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  REQUIRE(n.enqueue("throw", "a", priority::normal, "s"));
  REQUIRE(n.enqueue("ok", "b", priority::normal, "s"));
  auto results = n.collect("s", 2, 5s);
  REQUIRE(results);
  REQUIRE(results->size() == 2);
  std::set<task_status> statuses;
  for (const auto& r : *results)
    statuses.insert(r.status);
  CHECK(statuses == std::set<task_status>{task_status::done,
                                          task_status::dead});
  CHECK(n.novas() == std::vector<std::string>{"w"});
}

TEST_CASE("several workers share the queue and each task runs once",
          "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  for (int i = 0; i < 4; ++i)
    REQUIRE(n.spawn<test_worker>("w" + std::to_string(i), worker_options(),
                                 seen));
  constexpr int count = 200;
  for (int i = 0; i < count; ++i)
    REQUIRE(n.enqueue("t", std::to_string(i), priority::normal, "many"));
  auto results = n.collect("many", count, 10s);
  REQUIRE(results);
  REQUIRE(results->size() == count);
  std::set<std::string> ids;
  std::set<std::string> workers;
  for (const auto& r : *results) {
    ids.insert(r.task_id);
    workers.insert(r.worker);
  }
  CHECK(ids.size() == count);
  CHECK(seen->size() == count);
  auto st = n.task_stats();
  REQUIRE(st);
  CHECK(st->done == count);
  CHECK(st->in_flight == 0);
}

TEST_CASE("collect returns what arrived when the timeout expires", "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  REQUIRE(n.enqueue("t", "only", priority::normal, "partial"));
  auto results = n.collect("partial", 5, 300ms);
  REQUIRE(results);
  CHECK(results->size() == 1);
}

TEST_CASE("bad task input is refused with a clear error", "[tasks]") {
  auto cfg = test_config();
  cfg.limits.max_payload = 16;
  node n{cfg};
  CHECK(is(n.enqueue("t", std::string(17, 'x')).error(),
           errc::payload_too_large));
  CHECK(is(n.enqueue("t", "x", priority::normal, "bad session").error(),
           errc::invalid_id));
  task t;
  t.id = "dup";
  REQUIRE(n.enqueue(t));
  CHECK(is(n.enqueue(t).error(), errc::duplicate_id));
  t.id = "bad id";
  CHECK(is(n.enqueue(t).error(), errc::invalid_id));
  CHECK(is(n.collect("no way", 1, 10ms).error(), errc::invalid_id));
  auto st = n.task_stats();
  REQUIRE(st);
  CHECK(st->depth[2] == 1);
}

namespace {

class enqueuer : public agent {
public:
  using agent::agent;

protected:
  void on_start() override {
    for (int i = 0; i < 3; ++i)
      if (!enqueue("job", std::to_string(i), priority::high, "from-agent"))
        throw std::runtime_error("enqueue failed");
  }
};

} // namespace

TEST_CASE("a Nova enqueues tasks that workers run", "[tasks]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  REQUIRE(n.spawn<enqueuer>("boss"));
  auto results = n.collect("from-agent", 3, 5s);
  REQUIRE(results);
  CHECK(results->size() == 3);
  auto xs = seen->items();
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].created_by == "boss");
  CHECK(xs[0].priority == priority::high);
}

namespace {

/// Claims a task and then stops without finishing it.
class quitter : public agent {
public:
  quitter(caf::actor_config& cfg, agent_init init, task_sink seen)
    : agent(cfg, std::move(init)), seen_(std::move(seen)) {
    // nop
  }

protected:
  caf::expected<std::string> on_task(const task& t) override {
    seen_->push(t);
    stop(); // dies mid-task: the result is never reported
    return "never seen";
  }

private:
  task_sink seen_;
};

} // namespace

TEST_CASE("the task of a worker that stops mid-task is retried elsewhere",
          "[tasks]") {
  node n{test_config()};
  auto first = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<quitter>("q", worker_options(), first));
  REQUIRE(n.enqueue("t", "survivor", priority::normal, "orphan"));
  REQUIRE(first->wait_for(1).size() == 1);
  REQUIRE(eventually([&] { return n.novas().empty(); }));
  auto seen = std::make_shared<nova::testing::sink<task>>();
  REQUIRE(n.spawn<test_worker>("w", worker_options(), seen));
  auto results = n.collect("orphan", 1, 5s);
  REQUIRE(results);
  REQUIRE(results->size() == 1);
  CHECK((*results)[0].worker == "w");
  CHECK((*results)[0].attempts == 2);
}
