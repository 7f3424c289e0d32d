#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "actors/task_queue.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

using namespace nova;
using namespace std::chrono_literals;

namespace {

using time_point = task_queue::time_point;

// An arbitrary start; the queue only ever compares times it was given.
const time_point t0 = time_point{} + 1000h;

task_queue::settings test_settings() {
  task_queue::settings s;
  s.retry_base = 100ms;
  s.retry_max = 1s;
  s.task_timeout = 30s;
  return s;
}

task make_task(std::string id, priority p = priority::normal,
               std::string session = "s1") {
  task t;
  t.id = std::move(id);
  t.session = std::move(session);
  t.type = "work";
  t.priority = p;
  t.payload = "input of " + t.id;
  t.created_by = "tester";
  t.created_at = 1;
  return t;
}

void enqueue_ok(task_queue& q, task t) {
  auto err = q.enqueue(std::move(t));
  if (err)
    FAIL("enqueue failed: " << describe(err));
}

std::string claim_id(task_queue& q, const std::string& worker,
                     time_point now) {
  auto t = q.claim(worker, now);
  return t ? t->id : std::string{"<none>"};
}

// The error of `x`, or no error when it holds a value.
template <class T>
caf::error error_of(const caf::expected<T>& x) {
  return x ? caf::error{} : x.error();
}

std::vector<uint64_t> depth(const task_queue& q) {
  return q.stats().depth;
}

} // namespace

// -- ordering -----------------------------------------------------------------

TEST_CASE("claim takes urgent before high before normal before low, FIFO "
          "within a lane",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("low-1", priority::low));
  enqueue_ok(q, make_task("normal-1", priority::normal));
  enqueue_ok(q, make_task("high-1", priority::high));
  enqueue_ok(q, make_task("urgent-1", priority::urgent));
  enqueue_ok(q, make_task("normal-2", priority::normal));
  enqueue_ok(q, make_task("low-2", priority::low));
  enqueue_ok(q, make_task("urgent-2", priority::urgent));
  enqueue_ok(q, make_task("high-2", priority::high));
  std::vector<std::string> order;
  while (auto t = q.claim("w1", t0))
    order.push_back(t->id);
  CHECK(order
        == std::vector<std::string>{"urgent-1", "urgent-2", "high-1",
                                    "high-2", "normal-1", "normal-2",
                                    "low-1", "low-2"});
}

TEST_CASE("a task enqueued later in a higher lane is claimed first",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("a", priority::low));
  CHECK(claim_id(q, "w", t0) == "a");
  enqueue_ok(q, make_task("b", priority::low));
  enqueue_ok(q, make_task("c", priority::high));
  CHECK(claim_id(q, "w", t0) == "c");
  CHECK(claim_id(q, "w", t0) == "b");
}

TEST_CASE("claim on an empty queue gives nothing", "[task_queue]") {
  task_queue q{test_settings()};
  CHECK_FALSE(q.has_ready());
  CHECK_FALSE(q.claim("w", t0));
  CHECK_FALSE(q.next_deadline());
}

TEST_CASE("a claimed task keeps its content and counts one delivery",
          "[task_queue]") {
  task_queue q{test_settings()};
  auto in = make_task("t1", priority::high);
  in.headers = {{"k", "v"}};
  enqueue_ok(q, in);
  CHECK(q.has_ready());
  auto t = q.claim("w1", t0);
  REQUIRE(t);
  CHECK(t->attempts == 1);
  auto expected = in;
  expected.attempts = 1;
  CHECK(*t == expected);
  CHECK_FALSE(q.has_ready());
  auto s = q.stats();
  CHECK(s.in_flight == 1);
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(s.enqueued == 1);
}

TEST_CASE("a task without an id gets a generated message id",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task(""));
  auto t = q.claim("w", t0);
  REQUIRE(t);
  CHECK(t->id.size() == 26);
  CHECK(message_id_time(t->id) > 0);
}

// -- duplicates ---------------------------------------------------------------

TEST_CASE("enqueueing a task id twice is duplicate_id while it is queued, "
          "claimed or done",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  CHECK(is(q.enqueue(make_task("t1")), errc::duplicate_id));
  CHECK(is(q.enqueue(make_task("t1", priority::urgent)), errc::duplicate_id));
  REQUIRE(q.claim("w", t0));
  CHECK(is(q.enqueue(make_task("t1")), errc::duplicate_id));
  REQUIRE(q.complete("t1", "w", "", t0));
  CHECK(is(q.enqueue(make_task("t1")), errc::duplicate_id));
  auto s = q.stats();
  CHECK(s.enqueued == 1);
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK_FALSE(q.claim("w", t0));
}

TEST_CASE("enqueueing the id of a task waiting for a retry is duplicate_id",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("t1", "w", "boom", t0));
  CHECK(is(q.enqueue(make_task("t1")), errc::duplicate_id));
}

TEST_CASE("enqueueing the id of a dead letter is duplicate_id, so a redrive "
          "cannot deliver it twice",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("t1", "w", "boom", t0)->dead);
  CHECK(is(q.enqueue(make_task("t1")), errc::duplicate_id));
  CHECK(q.redrive("t1").value() == 1);
  CHECK(claim_id(q, "w", t0) == "t1");
  CHECK_FALSE(q.claim("w", t0));
}

TEST_CASE("completed ids are forgotten beyond remembered_ids",
          "[task_queue]") {
  auto s = test_settings();
  s.remembered_ids = 2;
  task_queue q{s};
  for (auto id : {"a", "b", "c"}) {
    enqueue_ok(q, make_task(id));
    REQUIRE(q.claim("w", t0));
    REQUIRE(q.complete(id, "w", "", t0));
  }
  CHECK_FALSE(q.enqueue(make_task("a")));
  CHECK(is(q.enqueue(make_task("b")), errc::duplicate_id));
  CHECK(is(q.enqueue(make_task("c")), errc::duplicate_id));
}

// -- completion ---------------------------------------------------------------

TEST_CASE("complete returns a done result and a second complete is "
          "not_found",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1", priority::normal, "session-9"));
  REQUIRE(q.claim("w1", t0));
  auto before = now_ms();
  auto r = q.complete("t1", "w1", "output", t0 + 1s);
  REQUIRE(r);
  CHECK(r->task_id == "t1");
  CHECK(r->session == "session-9");
  CHECK(r->status == task_status::done);
  CHECK(r->worker == "w1");
  CHECK(r->payload == "output");
  CHECK(r->error.empty());
  CHECK(r->attempts == 1);
  CHECK(r->completed_at >= before);
  CHECK(r->completed_at <= now_ms() + 5000);
  auto again = q.complete("t1", "w1", "output", t0 + 2s);
  REQUIRE_FALSE(again);
  CHECK(is(again.error(), errc::not_found));
  auto s = q.stats();
  CHECK(s.done == 1);
  CHECK(s.in_flight == 0);
  CHECK_FALSE(q.next_deadline());
}

TEST_CASE("complete or fail of a task that was never claimed is not_found",
          "[task_queue]") {
  task_queue q{test_settings()};
  CHECK(is(error_of(q.complete("nope", "w", "", t0)), errc::not_found));
  CHECK(is(error_of(q.fail("nope", "w", "", t0)), errc::not_found));
  enqueue_ok(q, make_task("queued"));
  CHECK(is(error_of(q.complete("queued", "w", "", t0)), errc::not_found));
  CHECK(is(error_of(q.fail("queued", "w", "", t0)), errc::not_found));
  CHECK(claim_id(q, "w", t0) == "queued");
}

TEST_CASE("the attempt count of a result includes every delivery",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("t1", "w", "first", t0));
  q.advance(t0 + 100ms);
  auto t = q.claim("w", t0 + 100ms);
  REQUIRE(t);
  CHECK(t->attempts == 2);
  CHECK(t->last_error == "first");
  auto r = q.complete("t1", "w", "ok", t0 + 200ms);
  REQUIRE(r);
  CHECK(r->attempts == 2);
}

// -- retries and backoff ------------------------------------------------------

TEST_CASE("backoff doubles from retry_base and is capped at retry_max",
          "[task_queue]") {
  task_queue q{test_settings()};
  CHECK(q.backoff(1) == caf::timespan{100ms});
  CHECK(q.backoff(2) == caf::timespan{200ms});
  CHECK(q.backoff(3) == caf::timespan{400ms});
  CHECK(q.backoff(4) == caf::timespan{800ms});
  CHECK(q.backoff(5) == caf::timespan{1s});
  CHECK(q.backoff(6) == caf::timespan{1s});
  CHECK(q.backoff(64) == caf::timespan{1s});
  CHECK(q.backoff(1000) == caf::timespan{1s});
}

TEST_CASE("a failed task becomes claimable again only after its backoff",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  auto f = q.fail("t1", "w", "boom", t0);
  REQUIRE(f);
  CHECK_FALSE(f->dead);
  REQUIRE(f->retry_at);
  CHECK(*f->retry_at == t0 + 100ms);
  auto s = q.stats();
  CHECK(s.in_flight == 0);
  CHECK(s.delayed == 1);
  CHECK(s.retried == 1);
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(q.next_deadline() == t0 + 100ms);

  CHECK(q.advance(t0 + 99ms).empty());
  CHECK_FALSE(q.has_ready());
  CHECK_FALSE(q.claim("w", t0 + 99ms));
  CHECK(q.stats().delayed == 1);

  CHECK(q.advance(t0 + 100ms).empty());
  CHECK(q.has_ready());
  CHECK(q.stats().delayed == 0);
  CHECK(depth(q) == std::vector<uint64_t>{0, 0, 1, 0});
  auto t = q.claim("w", t0 + 100ms);
  REQUIRE(t);
  CHECK(t->id == "t1");
  CHECK(t->attempts == 2);
}

TEST_CASE("the second retry waits twice as long as the first",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 10;
  task_queue q{s};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("t1", "w", "1", t0)->retry_at == t0 + 100ms);
  q.advance(t0 + 100ms);
  auto t1 = t0 + 100ms;
  REQUIRE(q.claim("w", t1));
  auto f = q.fail("t1", "w", "2", t1);
  REQUIRE(f);
  CHECK(f->retry_at == t1 + 200ms);
  q.advance(t1 + 199ms);
  CHECK_FALSE(q.claim("w", t1 + 199ms));
  q.advance(t1 + 200ms);
  auto t = q.claim("w", t1 + 200ms);
  REQUIRE(t);
  CHECK(t->attempts == 3);
  auto t2 = t1 + 200ms;
  CHECK(q.fail("t1", "w", "3", t2)->retry_at == t2 + 400ms);
}

TEST_CASE("retry backoff is capped at retry_max", "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 20;
  s.retry_base = 300ms;
  s.retry_max = 1s;
  task_queue q{s};
  enqueue_ok(q, make_task("t1"));
  auto now = t0;
  std::vector<caf::timespan> waits;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(q.claim("w", now));
    auto f = q.fail("t1", "w", "again", now);
    REQUIRE(f);
    REQUIRE(f->retry_at);
    waits.push_back(*f->retry_at - now);
    now = *f->retry_at;
    q.advance(now);
  }
  CHECK(waits
        == std::vector<caf::timespan>{300ms, 600ms, 1s, 1s, 1s});
}

TEST_CASE("retried tasks go back behind tasks already waiting in their lane",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("a"));
  enqueue_ok(q, make_task("b"));
  REQUIRE(claim_id(q, "w", t0) == "a");
  REQUIRE(q.fail("a", "w", "boom", t0));
  enqueue_ok(q, make_task("c"));
  q.advance(t0 + 1s);
  CHECK(claim_id(q, "w", t0 + 1s) == "b");
  CHECK(claim_id(q, "w", t0 + 1s) == "c");
  CHECK(claim_id(q, "w", t0 + 1s) == "a");
}

TEST_CASE("retries that become ready together keep the order they failed in",
          "[task_queue]") {
  task_queue q{test_settings()};
  for (auto id : {"a", "b", "c"})
    enqueue_ok(q, make_task(id));
  for (int i = 0; i < 3; ++i)
    REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("c", "w", "x", t0));
  REQUIRE(q.fail("a", "w", "x", t0));
  REQUIRE(q.fail("b", "w", "x", t0));
  q.advance(t0 + 100ms);
  CHECK(claim_id(q, "w", t0 + 100ms) == "c");
  CHECK(claim_id(q, "w", t0 + 100ms) == "a");
  CHECK(claim_id(q, "w", t0 + 100ms) == "b");
}

TEST_CASE("a retried task returns to its own priority lane", "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("u", priority::urgent));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("u", "w", "x", t0));
  enqueue_ok(q, make_task("n", priority::normal));
  q.advance(t0 + 100ms);
  CHECK(depth(q) == std::vector<uint64_t>{1, 0, 1, 0});
  CHECK(claim_id(q, "w", t0 + 100ms) == "u");
}

// -- delivery limit and dead letters ------------------------------------------

TEST_CASE("a task that fails three times becomes a dead letter",
          "[task_queue]") {
  task_queue q{test_settings()};
  CHECK(q.config().delivery_limit == 3);
  enqueue_ok(q, make_task("t1", priority::high, "s7"));
  auto now = t0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto t = q.claim("w", now);
    REQUIRE(t);
    CHECK(t->attempts == static_cast<uint32_t>(attempt));
    auto f = q.fail("t1", "w", "failure " + std::to_string(attempt), now);
    REQUIRE(f);
    CHECK_FALSE(f->dead);
    REQUIRE(f->retry_at);
    now = *f->retry_at;
    q.advance(now);
  }
  REQUIRE(q.claim("w", now));
  auto f = q.fail("t1", "w", "failure 3", now);
  REQUIRE(f);
  REQUIRE(f->dead);
  CHECK_FALSE(f->retry_at);
  CHECK(f->dead->task_id == "t1");
  CHECK(f->dead->session == "s7");
  CHECK(f->dead->status == task_status::dead);
  CHECK(f->dead->worker == "w");
  CHECK(f->dead->error == "failure 3");
  CHECK(f->dead->attempts == 3);
  CHECK(f->dead->completed_at > 0);

  auto dead = q.dead_letters(10);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == "t1");
  CHECK(dead[0].last_error == "failure 3");
  CHECK(dead[0].attempts == 3);
  CHECK(dead[0].priority == priority::high);

  auto s = q.stats();
  CHECK(s.dead == 1);
  CHECK(s.retried == 2);
  CHECK(s.in_flight == 0);
  CHECK(s.delayed == 0);
  CHECK(s.done == 0);
  q.advance(now + 1h);
  CHECK_FALSE(q.claim("w", now + 1h));
  CHECK_FALSE(q.next_deadline());
}

TEST_CASE("a custom delivery limit applies to every task", "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 2;
  task_queue q{s};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  CHECK_FALSE(q.fail("t1", "w", "x", t0)->dead);
  q.advance(t0 + 1s);
  REQUIRE(q.claim("w", t0 + 1s));
  CHECK(q.fail("t1", "w", "x", t0 + 1s)->dead);
}

TEST_CASE("a delivery limit of zero is treated as one", "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 0;
  task_queue q{s};
  CHECK(q.config().delivery_limit == 1);
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w", t0));
  CHECK(q.fail("t1", "w", "x", t0)->dead);
}

TEST_CASE("a task's own max_attempts overrides the delivery limit",
          "[task_queue]") {
  task_queue q{test_settings()};
  SECTION("lower") {
    auto t = make_task("once");
    t.max_attempts = 1;
    enqueue_ok(q, t);
    REQUIRE(q.claim("w", t0));
    auto f = q.fail("once", "w", "x", t0);
    REQUIRE(f);
    REQUIRE(f->dead);
    CHECK(f->dead->attempts == 1);
  }
  SECTION("higher") {
    auto t = make_task("five");
    t.max_attempts = 5;
    enqueue_ok(q, t);
    auto now = t0;
    for (int i = 1; i <= 4; ++i) {
      REQUIRE(q.claim("w", now));
      auto f = q.fail("five", "w", "x", now);
      REQUIRE(f);
      CHECK_FALSE(f->dead);
      now = *f->retry_at;
      q.advance(now);
    }
    auto last = q.claim("w", now);
    REQUIRE(last);
    CHECK(last->attempts == 5);
    auto f = q.fail("five", "w", "x", now);
    REQUIRE(f->dead);
    CHECK(f->dead->attempts == 5);
  }
}

TEST_CASE("dead_letters returns the oldest dead letters up to the limit",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  for (auto id : {"d1", "d2", "d3"}) {
    enqueue_ok(q, make_task(id));
    REQUIRE(q.claim("w", t0));
    REQUIRE(q.fail(id, "w", std::string{"error of "} + id, t0)->dead);
  }
  auto ids = [](const std::vector<task>& ts) {
    std::vector<std::string> out;
    for (const auto& t : ts)
      out.push_back(t.id);
    return out;
  };
  CHECK(ids(q.dead_letters(10)) == std::vector<std::string>{"d1", "d2", "d3"});
  CHECK(ids(q.dead_letters(2)) == std::vector<std::string>{"d1", "d2"});
  CHECK(q.dead_letters(0).empty());
  CHECK(q.dead_letters(10)[1].last_error == "error of d2");
  CHECK(q.stats().dead == 3);
}

TEST_CASE("redrive puts one dead letter back with a fresh delivery count",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  enqueue_ok(q, make_task("d1", priority::low));
  enqueue_ok(q, make_task("d2", priority::urgent));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.claim("w", t0));
  REQUIRE(q.fail("d1", "w", "x", t0)->dead);
  REQUIRE(q.fail("d2", "w", "x", t0)->dead);
  auto moved = q.redrive("d1");
  REQUIRE(moved);
  CHECK(*moved == 1);
  auto st = q.stats();
  CHECK(st.dead == 1);
  CHECK(st.depth == std::vector<uint64_t>{0, 0, 0, 1});
  auto t = q.claim("w", t0);
  REQUIRE(t);
  CHECK(t->id == "d1");
  CHECK(t->attempts == 1);
  REQUIRE(q.complete("d1", "w", "finally", t0));
  CHECK(q.dead_letters(10).size() == 1);
  CHECK(q.dead_letters(10)[0].id == "d2");
}

TEST_CASE("redrive with an empty id puts every dead letter back",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  for (auto id : {"a", "b", "c"}) {
    enqueue_ok(q, make_task(id));
    REQUIRE(q.claim("w", t0));
    REQUIRE(q.fail(id, "w", "x", t0)->dead);
  }
  auto moved = q.redrive("");
  REQUIRE(moved);
  CHECK(*moved == 3);
  CHECK(q.stats().dead == 0);
  CHECK(q.dead_letters(10).empty());
  CHECK(depth(q) == std::vector<uint64_t>{0, 0, 3, 0});
  CHECK(claim_id(q, "w", t0) == "a");
  CHECK(claim_id(q, "w", t0) == "b");
  CHECK(claim_id(q, "w", t0) == "c");
}

TEST_CASE("redrive of an unknown id is not_found, redrive of nothing moves "
          "nothing",
          "[task_queue]") {
  task_queue q{test_settings()};
  auto r = q.redrive("ghost");
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::not_found));
  auto all = q.redrive("");
  REQUIRE(all);
  CHECK(*all == 0);
  enqueue_ok(q, make_task("live"));
  CHECK(is(error_of(q.redrive("live")), errc::not_found));
  CHECK(depth(q) == std::vector<uint64_t>{0, 0, 1, 0});
}

// -- leases -------------------------------------------------------------------

TEST_CASE("a lease expires after task_timeout and the task is retried",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("w1", t0));
  CHECK(q.next_deadline() == t0 + 30s);

  CHECK(q.advance(t0 + 30s - 1ms).empty());
  CHECK(q.stats().in_flight == 1);

  CHECK(q.advance(t0 + 30s).empty());
  auto s = q.stats();
  CHECK(s.in_flight == 0);
  CHECK(s.delayed == 1);
  CHECK(s.retried == 1);
  CHECK(q.next_deadline() == t0 + 30s + 100ms);

  auto late = q.complete("t1", "w1", "too late", t0 + 30s);
  REQUIRE_FALSE(late);
  CHECK(is(late.error(), errc::not_found));

  q.advance(t0 + 30s + 100ms);
  auto t = q.claim("w2", t0 + 30s + 100ms);
  REQUIRE(t);
  CHECK(t->attempts == 2);
  CHECK(t->last_error.find("timed out") != std::string::npos);
  CHECK(t->last_error.find("w1") != std::string::npos);
}

TEST_CASE("a lease that expires at the delivery limit yields a dead letter "
          "from advance",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  enqueue_ok(q, make_task("t1", priority::normal, "s3"));
  REQUIRE(q.claim("w1", t0));
  auto dead = q.advance(t0 + 31s);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].task_id == "t1");
  CHECK(dead[0].session == "s3");
  CHECK(dead[0].status == task_status::dead);
  CHECK(dead[0].worker == "w1");
  CHECK(dead[0].error.find("timed out") != std::string::npos);
  CHECK(q.stats().dead == 1);
  CHECK(q.stats().in_flight == 0);
}

TEST_CASE("a worker whose lease expired cannot complete or fail the task "
          "another worker now holds",
          "[task_queue]") {
  task_queue q{test_settings()};
  enqueue_ok(q, make_task("t1"));
  REQUIRE(q.claim("slow", t0));
  q.advance(t0 + 30s);
  q.advance(t0 + 31s);
  auto t = q.claim("fast", t0 + 31s);
  REQUIRE(t);
  REQUIRE(t->attempts == 2);
  CHECK(is(error_of(q.fail("t1", "slow", "late failure", t0 + 32s)),
           errc::not_found));
  CHECK(is(error_of(q.complete("t1", "slow", "late", t0 + 32s)),
           errc::not_found));
  CHECK(q.stats().in_flight == 1);
  auto r = q.complete("t1", "fast", "ok", t0 + 33s);
  REQUIRE(r);
  CHECK(r->worker == "fast");
  CHECK(r->payload == "ok");
  CHECK(q.stats().done == 1);
}

TEST_CASE("release_worker fails only that worker's leases", "[task_queue]") {
  task_queue q{test_settings()};
  for (auto id : {"a", "b", "c"})
    enqueue_ok(q, make_task(id));
  REQUIRE(claim_id(q, "w1", t0) == "a");
  REQUIRE(claim_id(q, "w2", t0) == "b");
  REQUIRE(claim_id(q, "w1", t0) == "c");
  auto failures = q.release_worker("w1", t0 + 1s);
  REQUIRE(failures.size() == 2);
  for (const auto& f : failures) {
    CHECK_FALSE(f.dead);
    CHECK(f.retry_at == t0 + 1s + 100ms);
  }
  auto s = q.stats();
  CHECK(s.in_flight == 1);
  CHECK(s.delayed == 2);
  CHECK(s.retried == 2);
  CHECK(is(error_of(q.complete("a", "w1", "", t0 + 1s)), errc::not_found));
  REQUIRE(q.complete("b", "w2", "", t0 + 1s));
  CHECK(q.release_worker("w1", t0 + 1s).empty());
  CHECK(q.release_worker("nobody", t0 + 1s).empty());
  q.advance(t0 + 2s);
  auto t = q.claim("w3", t0 + 2s);
  REQUIRE(t);
  CHECK(t->last_error.find("w1") != std::string::npos);
  CHECK(t->attempts == 2);
}

TEST_CASE("release_worker at the delivery limit produces dead letters",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 1;
  task_queue q{s};
  enqueue_ok(q, make_task("a"));
  REQUIRE(q.claim("w1", t0));
  auto failures = q.release_worker("w1", t0);
  REQUIRE(failures.size() == 1);
  REQUIRE(failures[0].dead);
  CHECK(failures[0].dead->task_id == "a");
  CHECK(q.stats().dead == 1);
}

// -- stats and deadlines ------------------------------------------------------

TEST_CASE("stats count depth per lane in the order urgent, high, normal, "
          "low",
          "[task_queue]") {
  task_queue q{test_settings()};
  CHECK(depth(q) == std::vector<uint64_t>{0, 0, 0, 0});
  enqueue_ok(q, make_task("u1", priority::urgent));
  enqueue_ok(q, make_task("h1", priority::high));
  enqueue_ok(q, make_task("h2", priority::high));
  enqueue_ok(q, make_task("n1", priority::normal));
  enqueue_ok(q, make_task("n2", priority::normal));
  enqueue_ok(q, make_task("n3", priority::normal));
  for (int i = 0; i < 4; ++i)
    enqueue_ok(q, make_task("l" + std::to_string(i), priority::low));
  auto s = q.stats();
  CHECK(s.depth == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(s.enqueued == 10);
  CHECK(s.in_flight == 0);
  CHECK(s.delayed == 0);
  CHECK(s.dead == 0);
  CHECK(s.done == 0);
  CHECK(s.retried == 0);
}

TEST_CASE("stats follow tasks through claim, retry, completion and death",
          "[task_queue]") {
  auto s = test_settings();
  s.delivery_limit = 2;
  task_queue q{s};
  enqueue_ok(q, make_task("ok"));
  enqueue_ok(q, make_task("flaky"));
  enqueue_ok(q, make_task("doomed"));
  REQUIRE(claim_id(q, "w", t0) == "ok");
  REQUIRE(claim_id(q, "w", t0) == "flaky");
  REQUIRE(claim_id(q, "w", t0) == "doomed");
  REQUIRE(q.complete("ok", "w", "", t0));
  REQUIRE(q.fail("flaky", "w", "x", t0));
  REQUIRE(q.fail("doomed", "w", "x", t0));
  auto st = q.stats();
  CHECK(st.in_flight == 0);
  CHECK(st.delayed == 2);
  CHECK(st.done == 1);
  CHECK(st.retried == 2);
  q.advance(t0 + 100ms);
  CHECK(q.stats().depth == std::vector<uint64_t>{0, 0, 2, 0});
  REQUIRE(claim_id(q, "w", t0 + 100ms) == "flaky");
  REQUIRE(claim_id(q, "w", t0 + 100ms) == "doomed");
  REQUIRE(q.complete("flaky", "w", "", t0 + 100ms));
  REQUIRE(q.fail("doomed", "w", "x", t0 + 100ms)->dead);
  st = q.stats();
  CHECK(st.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(st.in_flight == 0);
  CHECK(st.delayed == 0);
  CHECK(st.done == 2);
  CHECK(st.dead == 1);
  CHECK(st.retried == 2);
  CHECK(st.enqueued == 3);
}

TEST_CASE("next_deadline is the earliest lease deadline or retry time",
          "[task_queue]") {
  task_queue q{test_settings()};
  CHECK_FALSE(q.next_deadline());
  enqueue_ok(q, make_task("a"));
  enqueue_ok(q, make_task("b"));
  CHECK_FALSE(q.next_deadline()); // queued tasks have no deadline
  REQUIRE(q.claim("w", t0));
  CHECK(q.next_deadline() == t0 + 30s);
  REQUIRE(q.claim("w", t0 + 5s));
  CHECK(q.next_deadline() == t0 + 30s);
  REQUIRE(q.fail("a", "w", "x", t0 + 10s));
  CHECK(q.next_deadline() == t0 + 10s + 100ms);
  q.advance(t0 + 10s + 100ms);
  CHECK(q.next_deadline() == t0 + 35s);
  REQUIRE(q.complete("b", "w", "", t0 + 11s));
  CHECK_FALSE(q.next_deadline());
}
