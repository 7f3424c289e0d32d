// Tests of the task queue in the store against real redis-server processes.

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

#include <fmt/format.h>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/task_store.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using nova::claimed_task;
using nova::errc;
using nova::priority;
using nova::redis_connection;
using nova::redis_pool;
using nova::redis_settings;
using nova::redis_value;
using nova::task;
using nova::task_store;
using nova::testing::redis_server;

namespace {

using clock_type = std::chrono::steady_clock;
using strings = std::vector<std::string>;

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

void must_ok(const caf::error& err) {
  if (err)
    FAIL(nova::describe(err));
}

redis_settings settings_for(const redis_server& srv) {
  auto s = must(redis_settings::from_url(srv.url()));
  s.connect_timeout = 1s;
  s.command_timeout = 2s;
  s.reconnect_base = 50ms;
  s.reconnect_max = 200ms;
  return s;
}

task_store::settings store_settings() {
  task_store::settings s;
  s.retry_base = 100ms;
  s.retry_max = 1s;
  return s;
}

std::shared_ptr<task_store> make_store(const redis_server& srv,
                                       task_store::settings s
                                       = store_settings()) {
  auto pool = std::make_shared<redis_pool>(
    must(redis_pool::make(settings_for(srv))));
  auto store = must(task_store::make(pool, must(nova::naming::make()), s));
  must_ok(store->ensure_groups());
  return store;
}

redis_connection inspect(const redis_server& srv) {
  return must(redis_connection::connect(settings_for(srv)));
}

redis_value run(redis_connection& conn, const strings& argv) {
  return must(conn.command(argv));
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

std::string enqueue_ok(task_store& store, task t) {
  return must(store.enqueue(std::move(t)));
}

claimed_task claim_ok(task_store& store, const std::string& consumer = "c1") {
  auto c = must(store.claim(consumer));
  if (!c)
    FAIL("nothing to claim");
  return std::move(*c);
}

// Claims `n` tasks for "c1" with claim_many, each a completion request by
// worker "w1" with the result `result(claim)`.
template <class Result>
std::vector<task_store::completion_request>
claim_all(task_store& store, size_t n, Result result) {
  std::vector<task_store::completion_request> out;
  while (out.size() < n) {
    auto got = must(store.claim_many("c1", 512));
    REQUIRE_FALSE(got.empty());
    for (auto& c : got)
      out.push_back({c, result(c), "w1"});
  }
  return out;
}

std::string claim_id(task_store& store, const std::string& consumer = "c1") {
  auto c = must(store.claim(consumer));
  return c ? c->task.id : std::string{"<none>"};
}

std::optional<std::string> field(const redis_value& fields,
                                 const std::string& name) {
  for (size_t i = 0; i + 1 < fields.size(); i += 2)
    if (fields[i].str == name)
      return fields[i + 1].str;
  return std::nullopt;
}

// Entries of a stream as [id, fields] pairs.
std::vector<redis_value> entries(redis_connection& conn,
                                 const std::string& key) {
  return run(conn, {"XRANGE", key, "-", "+"}).elements;
}

int64_t pending(redis_connection& conn, const std::string& lane) {
  auto r = run(conn, {"XPENDING", lane, "nova.workers"});
  return r.is_array() && r.size() > 0 ? r[0].integer : 0;
}

template <class F>
bool eventually(F f, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (f())
      return true;
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
}

// A client in MONITOR mode: the server echoes every command it runs,
// including the ones run by Lua scripts, in order.
class monitor {
public:
  explicit monitor(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{0, 200'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0);
    const char cmd[] = "MONITOR\r\n";
    REQUIRE(::send(fd_, cmd, sizeof(cmd) - 1, MSG_NOSIGNAL)
            == static_cast<ssize_t>(sizeof(cmd) - 1));
    REQUIRE(wait_for("+OK", 2s));
  }

  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;

  ~monitor() {
    ::close(fd_);
  }

  // Reads until the output holds `text`, at most `timeout`.
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    while (seen_.find(text) == std::string::npos) {
      if (clock_type::now() >= deadline)
        return false;
      char buf[4096];
      auto n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0)
        seen_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  [[nodiscard]] const std::string& seen() const noexcept {
    return seen_;
  }

private:
  int fd_ = -1;
  std::string seen_;
};

} // namespace

// -- groups and enqueue -------------------------------------------------------

TEST_CASE("ensure_groups creates the consumer group on every lane and a "
          "second call keeps it",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  must_ok(store->ensure_groups());
  auto conn = inspect(srv);
  for (auto& lane : store->lanes()) {
    INFO(lane);
    auto groups = run(conn, {"XINFO", "GROUPS", lane});
    REQUIRE(groups.size() == 1);
    CHECK(field(groups[0], "name") == std::optional<std::string>{
                                        "nova.workers"});
  }
  CHECK(store->lanes()
        == strings{"nova.tasks.queue.urgent", "nova.tasks.queue.high",
                   "nova.tasks.queue.normal", "nova.tasks.queue.low"});
}

TEST_CASE("an enqueued task is an entry of its lane with fields redis-cli "
          "can read",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto t = make_task("t1", priority::high, "sess");
  t.attempts = 7; // ignored: a new task has had no delivery
  CHECK(enqueue_ok(*store, t) == "t1");
  auto generated = enqueue_ok(*store, make_task("", priority::low));
  CHECK(nova::is_valid_id(generated));
  auto conn = inspect(srv);
  auto xs = entries(conn, "nova.tasks.queue.high");
  REQUIRE(xs.size() == 1);
  auto& fields = xs[0][1];
  CHECK(field(fields, "id") == std::optional<std::string>{"t1"});
  CHECK(field(fields, "attempts") == std::optional<std::string>{"0"});
  // The rest is in the task only: every field costs on every write and read.
  CHECK(fields.size() == 6);
  auto decoded = must(nova::decode<task>(field(fields, "task").value()));
  auto expected = t;
  expected.attempts = 0;
  CHECK(decoded == expected);
  CHECK(entries(conn, "nova.tasks.queue.low").size() == 1);
  // The id is taken until its expiry, a score in the known set.
  auto until = run(conn, {"ZSCORE", "nova.tasks.known", "t1"});
  REQUIRE(until.t == nova::redis_value::type::string);
  CHECK(std::stoll(until.str) > nova::now_ms());
}

TEST_CASE("a task id that is queued, in flight or done is refused as a "
          "duplicate",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("dup"));
  auto queued = store->enqueue(make_task("dup", priority::urgent));
  REQUIRE_FALSE(queued);
  CHECK(nova::is(queued.error(), errc::duplicate_id));
  auto c = claim_ok(*store);
  auto in_flight = store->enqueue(make_task("dup"));
  REQUIRE_FALSE(in_flight);
  CHECK(nova::is(in_flight.error(), errc::duplicate_id));
  CHECK(must(store->complete(c, "out", "w1")) == task_store::completion::done);
  auto done = store->enqueue(make_task("dup"));
  REQUIRE_FALSE(done);
  CHECK(nova::is(done.error(), errc::duplicate_id));
  // Refusals leave no trace.
  CHECK(must(store->stats()).enqueued == 1);
  CHECK(claim_id(*store) == "<none>");
  auto bad = store->enqueue(make_task("no spaces"));
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
  auto bad_session = store->enqueue(make_task("ok", priority::normal, "a.b"));
  REQUIRE_FALSE(bad_session);
  CHECK(nova::is(bad_session.error(), errc::invalid_id));
}

TEST_CASE("enqueue_many over several script calls answers every task and "
          "keeps the order of each lane",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("taken"));
  // 1300 tasks: three script calls of up to 512 in one pipeline; refusals
  // in every call.
  std::vector<task> ts;
  for (int i = 0; i < 1300; ++i)
    ts.push_back(make_task(fmt::format("t{}", i),
                           i % 2 == 0 ? priority::normal : priority::low));
  ts[10].id = "taken";
  ts[600].id = "bad id";
  ts[1200].id = "t1199"; // twice in one call: the second is refused
  auto r = must(store->enqueue_many(ts));
  REQUIRE(r.size() == ts.size());
  const std::map<size_t, errc> refused{{10, errc::duplicate_id},
                                       {600, errc::invalid_id},
                                       {1200, errc::duplicate_id}};
  size_t added = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    if (auto why = refused.find(i); why != refused.end()) {
      REQUIRE_FALSE(r[i]);
      CHECK(nova::is(r[i].error(), why->second));
      continue;
    }
    REQUIRE(r[i]);
    CHECK(*r[i] == ts[i].id);
    ++added;
  }
  CHECK(added == 1297);
  auto conn = inspect(srv);
  // Each lane holds its tasks in the order given.
  for (auto [lane, parity] : {std::pair{"nova.tasks.queue.normal", 0},
                              std::pair{"nova.tasks.queue.low", 1}}) {
    std::vector<std::string> want;
    if (parity == 0)
      want.push_back("taken");
    for (size_t i = 0; i < ts.size(); ++i)
      if (static_cast<int>(i % 2) == parity && r[i])
        want.push_back(ts[i].id);
    std::vector<std::string> got;
    for (auto& e : entries(conn, lane))
      got.push_back(field(e[1], "id").value_or("?"));
    CHECK(got == want);
  }
  CHECK(must(store->stats()).enqueued == 1298);
}

TEST_CASE("enqueue_many after the server forgot its scripts adds every task "
          "once",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto batch = [](int from, int n) {
    std::vector<task> ts;
    for (int i = from; i < from + n; ++i)
      ts.push_back(make_task(fmt::format("t{}", i)));
    return ts;
  };
  auto first = batch(0, 100);
  for (auto& x : must(store->enqueue_many(first)))
    CHECK(x);
  auto conn = inspect(srv);
  run(conn, {"SCRIPT", "FLUSH"});
  // Every call of this batch meets NOSCRIPT and runs again, in order.
  auto second = batch(100, 1100);
  for (auto& x : must(store->enqueue_many(second)))
    CHECK(x);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.normal"}).integer == 1200);
  CHECK(run(conn, {"ZCARD", "nova.tasks.known"}).integer == 1200);
  auto xs = entries(conn, "nova.tasks.queue.normal");
  REQUIRE(xs.size() == 1200);
  for (size_t i = 0; i < xs.size(); ++i)
    CHECK(field(xs[i][1], "id") == fmt::format("t{}", i));
}

TEST_CASE("an id record expires: the id is free again and the record is "
          "cut from the known set",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.known_ttl = 200ms;
  auto store = make_store(srv, s);
  enqueue_ok(*store, make_task("once"));
  auto c = claim_ok(*store);
  CHECK(must(store->complete(c, "out", "w1")) == task_store::completion::done);
  auto early = store->enqueue(make_task("once"));
  REQUIRE_FALSE(early);
  CHECK(nova::is(early.error(), errc::duplicate_id));
  std::this_thread::sleep_for(300ms);
  enqueue_ok(*store, make_task("other"));
  auto conn = inspect(srv);
  // The enqueue of "other" cut the expired record of "once".
  CHECK(run(conn, {"ZSCORE", "nova.tasks.known", "once"}).is_nil());
  enqueue_ok(*store, make_task("once"));
  CHECK(run(conn, {"ZCARD", "nova.tasks.known"}).integer == 2);
}

TEST_CASE("a full lane refuses new tasks with queue_full", "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.max_len = 2;
  auto store = make_store(srv, s);
  enqueue_ok(*store, make_task("a"));
  enqueue_ok(*store, make_task("b"));
  auto full = store->enqueue(make_task("c"));
  REQUIRE_FALSE(full);
  CHECK(nova::is(full.error(), errc::queue_full));
  // Other lanes are not affected, and the refused id is not taken.
  enqueue_ok(*store, make_task("c", priority::low));
}

TEST_CASE("a lane is full at max_len tasks waiting or in flight; acked "
          "entries not trimmed yet do not count",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.max_len = 3;
  auto store = make_store(srv, s);
  for (auto id : {"a", "b", "c"})
    enqueue_ok(*store, make_task(id));
  auto a = claim_ok(*store);
  auto b = claim_ok(*store);
  auto c = claim_ok(*store);
  auto full = store->enqueue(make_task("d"));
  REQUIRE_FALSE(full);
  CHECK(nova::is(full.error(), errc::queue_full));
  // a stays pending, so b and c stay in the lane, acked.
  must(store->complete(b, "", "w"));
  must(store->complete(c, "", "w"));
  auto conn = inspect(srv);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.normal"}).integer == 3);
  enqueue_ok(*store, make_task("d"));
  enqueue_ok(*store, make_task("e"));
  full = store->enqueue(make_task("f"));
  REQUIRE_FALSE(full);
  CHECK(nova::is(full.error(), errc::queue_full));
  auto st = must(store->stats());
  CHECK(st.depth == std::vector<uint64_t>{0, 0, 2, 0});
  CHECK(st.in_flight == 1);
  must(store->complete(a, "", "w"));
  enqueue_ok(*store, make_task("f"));
}

// -- claims -------------------------------------------------------------------

TEST_CASE("claim takes urgent before high before normal before low, FIFO "
          "within a lane",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("low-1", priority::low));
  enqueue_ok(*store, make_task("normal-1", priority::normal));
  enqueue_ok(*store, make_task("high-1", priority::high));
  enqueue_ok(*store, make_task("urgent-1", priority::urgent));
  enqueue_ok(*store, make_task("normal-2", priority::normal));
  enqueue_ok(*store, make_task("low-2", priority::low));
  enqueue_ok(*store, make_task("urgent-2", priority::urgent));
  enqueue_ok(*store, make_task("high-2", priority::high));
  strings order;
  for (int i = 0; i < 8; ++i)
    order.push_back(claim_id(*store));
  CHECK(order
        == strings{"urgent-1", "urgent-2", "high-1", "high-2", "normal-1",
                   "normal-2", "low-1", "low-2"});
}

TEST_CASE("claim takes one entry per call and nothing from drained lanes",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  CHECK_FALSE(must(store->claim("c1")));
  for (auto p : {priority::urgent, priority::high, priority::normal,
                 priority::low})
    enqueue_ok(*store, make_task(std::string{"t-"} + nova::to_string(p), p));
  auto c = claim_ok(*store, "c1");
  CHECK(c.task.id == "t-urgent");
  CHECK(c.lane == priority::urgent);
  CHECK(c.task.attempts == 1);
  CHECK(c.task.payload == "input of t-urgent");
  CHECK_FALSE(c.entry_id.empty());
  auto conn = inspect(srv);
  // Exactly one entry was delivered, in one lane.
  CHECK(pending(conn, "nova.tasks.queue.urgent") == 1);
  for (auto lane : {"nova.tasks.queue.high", "nova.tasks.queue.normal",
                    "nova.tasks.queue.low"})
    CHECK(pending(conn, lane) == 0);
  CHECK(must(store->stats()).depth == std::vector<uint64_t>{0, 1, 1, 1});
  claim_ok(*store);
  claim_ok(*store);
  claim_ok(*store);
  CHECK_FALSE(must(store->claim("c1")));
  auto bad = store->claim("not a consumer");
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
}

TEST_CASE("claim_many reads the lanes in priority order and takes along a "
          "higher lane that got tasks since its last claim",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto ids = [](const std::vector<claimed_task>& xs) {
    strings out;
    for (auto& x : xs)
      out.push_back(x.task.id);
    return out;
  };
  for (auto id : {"n1", "n2", "n3", "n4"})
    enqueue_ok(*store, make_task(id, priority::normal));
  enqueue_ok(*store, make_task("l1", priority::low));
  enqueue_ok(*store, make_task("h1", priority::high));
  // Across lanes: high first, then normal for the rest.
  CHECK(ids(must(store->claim_many("c1", 3))) == strings{"h1", "n1", "n2"});
  // Normal gave last: the lanes above it are read with it in one
  // XREADGROUP, so tasks that arrived there since come along, best first,
  // each lane up to the count.
  enqueue_ok(*store, make_task("u1", priority::urgent));
  enqueue_ok(*store, make_task("h2", priority::high));
  auto xs = must(store->claim_many("c1", 1));
  CHECK(ids(xs) == strings{"u1", "h2", "n3"});
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].lane == priority::urgent);
  CHECK(xs[1].lane == priority::high);
  CHECK(xs[2].lane == priority::normal);
  for (auto& x : xs)
    CHECK(x.task.attempts == 1);
  // Urgent gave last: urgent alone, then the next lanes one by one.
  CHECK(ids(must(store->claim_many("c1", 5))) == strings{"n4", "l1"});
  CHECK(must(store->claim_many("c1", 5)).empty());
  auto conn = inspect(srv);
  CHECK(pending(conn, "nova.tasks.queue.urgent") == 1);
  CHECK(pending(conn, "nova.tasks.queue.high") == 2);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 4);
  CHECK(pending(conn, "nova.tasks.queue.low") == 1);
  // claim stays at one task, whatever claim_many read last.
  enqueue_ok(*store, make_task("u2", priority::urgent));
  enqueue_ok(*store, make_task("n5", priority::normal));
  CHECK(claim_id(*store) == "u2");
  CHECK(claim_id(*store) == "n5");
  CHECK(claim_id(*store) == "<none>");
}

TEST_CASE("wait_claim gets a task enqueued while it waits and nothing once "
          "its timeout passes",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  CHECK_FALSE(must(store->wait_claim("c1", 50ms)));
  caf::expected<std::optional<claimed_task>> got{std::nullopt};
  std::thread waiter{[&] { got = store->wait_claim("c1", 5s); }};
  // The waiter blocks on the server before the task arrives (or claims it
  // at once: either way it gets it).
  std::this_thread::sleep_for(50ms);
  enqueue_ok(*store, make_task("late", priority::low));
  waiter.join();
  REQUIRE(must(got));
  CHECK((*got)->task.id == "late");
  CHECK((*got)->lane == priority::low);
  CHECK((*got)->task.attempts == 1);
  // A task another consumer took first does not end the wait early with
  // nothing: the waiter keeps waiting until its own timeout.
  caf::expected<std::optional<claimed_task>> lost{std::nullopt};
  std::thread loser{[&] { lost = store->wait_claim("c2", 300ms); }};
  std::this_thread::sleep_for(50ms);
  enqueue_ok(*store, make_task("raced"));
  auto winner = must(store->claim("c1"));
  loser.join();
  auto none = must(std::move(lost));
  if (winner) {
    CHECK(winner->task.id == "raced");
    CHECK_FALSE(none);
  } else {
    REQUIRE(none);
    CHECK(none->task.id == "raced");
  }
}

TEST_CASE("wait_claim keeps strict priority when several lanes have work",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("low", priority::low));
  enqueue_ok(*store, make_task("normal", priority::normal));
  enqueue_ok(*store, make_task("urgent", priority::urgent));
  auto a = must(store->wait_claim("c1", 1s));
  REQUIRE(a);
  CHECK(a->task.id == "urgent");
  // Only that one was claimed; the others stay undelivered, in order.
  auto conn = inspect(srv);
  CHECK(pending(conn, "nova.tasks.queue.low") == 0);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
  CHECK(must(store->stats()).depth == std::vector<uint64_t>{0, 0, 1, 1});
  auto b = must(store->wait_claim("c1", 1s));
  REQUIRE(b);
  CHECK(b->task.id == "normal");
  auto c = must(store->wait_claim("c1", 1s));
  REQUIRE(c);
  CHECK(c->task.id == "low");
}

TEST_CASE("two stores on one server share the queue and every task is "
          "claimed exactly once",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto a = make_store(srv);
  auto b = make_store(srv);
  constexpr int n = 200;
  std::mutex mtx;
  std::vector<std::string> claimed;
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  // Catch2 assertions are not thread-safe: the threads only count.
  auto consume = [&](task_store& store, std::string consumer) {
    while (!done) {
      auto c = store.wait_claim(consumer, 100ms);
      if (!c) {
        ++errors;
      } else if (*c) {
        auto r = store.complete(**c, "ok", consumer);
        if (!r || *r != task_store::completion::done)
          ++errors;
        std::lock_guard<std::mutex> guard{mtx};
        claimed.push_back((*c)->task.id);
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(consume, std::ref(*a), "a1");
  threads.emplace_back(consume, std::ref(*a), "a2");
  threads.emplace_back(consume, std::ref(*b), "b1");
  threads.emplace_back(consume, std::ref(*b), "b2");
  for (int i = 0; i < n; ++i)
    enqueue_ok(i % 2 == 0 ? *a : *b,
               make_task("t" + std::to_string(i),
                         static_cast<priority>(1 + i % 4)));
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> guard{mtx};
    return claimed.size() >= n;
  },
                   10s));
  done = true;
  for (auto& t : threads)
    t.join();
  std::set<std::string> unique(claimed.begin(), claimed.end());
  CHECK(errors == 0);
  CHECK(claimed.size() == n);
  CHECK(unique.size() == n);
  auto s = must(a->stats());
  CHECK(s.done == n);
  CHECK(s.in_flight == 0);
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 0, 0});
}

// -- completion ---------------------------------------------------------------

TEST_CASE("complete acks the entry and writes the result; the id stays "
          "taken",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("t1", priority::normal, "sess"));
  enqueue_ok(*store, make_task("t2", priority::normal, ""));
  auto c = claim_ok(*store, "c1");
  CHECK(must(store->complete(c, "result bytes", "w1"))
        == task_store::completion::done);
  auto conn = inspect(srv);
  // The id record is the one from the enqueue, with its expiry.
  auto until = run(conn, {"ZSCORE", "nova.tasks.known", "t1"});
  REQUIRE(until.t == nova::redis_value::type::string);
  auto ttl = std::stoll(until.str) - nova::now_ms();
  CHECK(ttl > 24 * 3600 * 1000);
  CHECK(ttl <= 7 * 24 * 3600 * 1000);
  auto again = store->enqueue(make_task("t1"));
  REQUIRE_FALSE(again);
  CHECK(nova::is(again.error(), errc::duplicate_id));
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
  // Only t2 is left to claim (the acked entry may wait for a later trim).
  CHECK(must(store->stats()).depth == std::vector<uint64_t>{0, 0, 1, 0});
  auto results = entries(conn, "nova.tasks.results.sess");
  REQUIRE(results.size() == 1);
  CHECK(field(results[0][1], "task_id") == std::optional<std::string>{"t1"});
  CHECK(field(results[0][1], "status") == std::optional<std::string>{"done"});
  CHECK(results[0][1].size() == 6);
  auto r = must(nova::decode<nova::task_result>(
    field(results[0][1], "result").value()));
  CHECK(r.task_id == "t1");
  CHECK(r.session == "sess");
  CHECK(r.status == nova::task_status::done);
  CHECK(r.payload == "result bytes");
  CHECK(r.attempts == 1);
  CHECK(r.worker == "w1");
  CHECK(run(conn, {"PTTL", "nova.tasks.results.sess"}).integer > 0);
  // Without a session there is no results stream to write.
  auto c2 = claim_ok(*store, "c1");
  CHECK(must(store->complete(c2, "x", "w1")) == task_store::completion::done);
  // Nothing pending and nothing undelivered: the lane is trimmed empty.
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.normal"}).integer == 0);
  auto s = must(store->stats());
  CHECK(s.done == 2);
  CHECK(s.in_flight == 0);
}

TEST_CASE("complete after the server forgot its scripts loads the script "
          "again and completes once",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("t1"));
  enqueue_ok(*store, make_task("t2"));
  auto a = claim_ok(*store);
  auto b = claim_ok(*store);
  auto conn = inspect(srv);
  run(conn, {"SCRIPT", "FLUSH"});
  std::vector<task_store::completion_request> xs{{a, "ra", "w1"},
                                                 {b, "rb", "w1"}};
  CHECK(must(store->complete_many(xs))
        == std::vector<task_store::completion>{task_store::completion::done,
                                               task_store::completion::done});
  CHECK(entries(conn, "nova.tasks.results.s1").size() == 2);
  CHECK(must(store->stats()).done == 2);
}

TEST_CASE("complete_many of several script calls in one pipeline completes "
          "every task once, with results per session, after a SCRIPT FLUSH",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  // 1100 tasks: three script calls; two lanes, two sessions and tasks
  // without a session in each call.
  std::vector<task> ts;
  for (int i = 0; i < 1100; ++i)
    ts.push_back(make_task(fmt::format("t{}", i),
                           i % 3 == 0 ? priority::high : priority::normal,
                           i % 5 == 0   ? ""
                           : i % 2 == 0 ? "even"
                                        : "odd"));
  for (auto& r : must(store->enqueue_many(ts)))
    REQUIRE(r);
  auto xs = claim_all(*store, ts.size(), [](const claimed_task& c) {
    return "result of " + c.task.id;
  });
  auto conn = inspect(srv);
  // Every call of the pipeline is answered NOSCRIPT and runs again.
  run(conn, {"SCRIPT", "FLUSH"});
  auto done = must(store->complete_many(xs));
  REQUIRE(done.size() == xs.size());
  for (auto d : done)
    CHECK(d == task_store::completion::done);
  std::map<std::string, std::set<std::string>> results;
  for (auto session : {"even", "odd"})
    for (auto& e : entries(conn, fmt::format("nova.tasks.results.{}",
                                             session))) {
      auto r = must(nova::decode<nova::task_result>(
        field(e[1], "result").value()));
      CHECK(r.session == session);
      CHECK(field(e[1], "task_id") == std::optional<std::string>{r.task_id});
      CHECK(r.payload == "result of " + r.task_id);
      CHECK(results[session].insert(r.task_id).second);
    }
  size_t even = 0;
  size_t odd = 0;
  for (int i = 0; i < 1100; ++i) {
    if (i % 5 == 0)
      continue;
    auto& in = results[i % 2 == 0 ? "even" : "odd"];
    CHECK(in.count(fmt::format("t{}", i)) == 1);
    ++(i % 2 == 0 ? even : odd);
  }
  CHECK(results["even"].size() == even);
  CHECK(results["odd"].size() == odd);
  CHECK(pending(conn, "nova.tasks.queue.high") == 0);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.high"}).integer == 0);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.normal"}).integer == 0);
  CHECK(must(store->stats()).done == 1100);
  // A second completion of the same deliveries changes nothing.
  std::vector<task_store::completion_request> again(xs.begin(),
                                                    xs.begin() + 3);
  for (auto d : must(store->complete_many(again)))
    CHECK(d == task_store::completion::stale);
  CHECK(must(store->stats()).done == 1100);
}

TEST_CASE("enqueue_many and complete_many put large tasks and results into "
          "more, smaller script calls",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto conn = inspect(srv);
  auto script_calls = [&] {
    auto info = run(conn, {"INFO", "commandstats"}).str;
    auto at = info.find("cmdstat_evalsha:calls=");
    if (at == std::string::npos)
      return int64_t{0};
    return static_cast<int64_t>(std::stoll(info.substr(at + 22)));
  };
  // Ten tasks of 1 MiB: about 4 MiB per call, so three per call; one of
  // 5 MiB goes alone.
  std::vector<task> ts;
  for (int i = 0; i < 10; ++i) {
    ts.push_back(make_task(fmt::format("big{}", i)));
    ts.back().payload = std::string(1024 * 1024, static_cast<char>('a' + i));
  }
  ts.push_back(make_task("huge"));
  ts.back().payload = std::string(5 * 1024 * 1024, 'z');
  auto before = script_calls();
  for (auto& r : must(store->enqueue_many(ts)))
    REQUIRE(r);
  CHECK(script_calls() - before == 5);
  auto xs = claim_all(*store, ts.size(), [](const claimed_task& c) {
    return std::string(c.task.payload.size(), 'r');
  });
  for (auto& x : xs) {
    size_t mib = x.claim.task.id == "huge" ? 5 : 1;
    CHECK(x.claim.task.payload.size() == mib * 1024 * 1024);
  }
  CHECK(xs.front().claim.task.id == "big0");
  CHECK(xs.back().claim.task.id == "huge");
  before = script_calls();
  for (auto d : must(store->complete_many(xs)))
    CHECK(d == task_store::completion::done);
  CHECK(script_calls() - before == 5);
  auto results = entries(conn, "nova.tasks.results.s1");
  REQUIRE(results.size() == ts.size());
  auto last = must(nova::decode<nova::task_result>(
    field(results.back()[1], "result").value()));
  CHECK(last.task_id == "huge");
  CHECK(last.payload == std::string(5 * 1024 * 1024, 'r'));
  CHECK(must(store->stats()).done == 11);
}

TEST_CASE("a redelivered task that another delivery completed is reported "
          "stale and only acked",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("once", priority::high, "sess"));
  auto first = claim_ok(*store, "slow-node");
  // The first consumer stops answering; after min_idle another takes over.
  std::this_thread::sleep_for(60ms);
  auto re = must(store->reclaim("fast-node", 50ms));
  REQUIRE(re.tasks.size() == 1);
  auto second = re.tasks[0];
  CHECK(second.task.id == "once");
  CHECK(second.task.attempts == 2);
  CHECK(second.entry_id == first.entry_id);
  // The first consumer finishes after all: its ack finds the entry pending,
  // so its effect counts.
  CHECK(must(store->complete(first, "from slow", "slow"))
        == task_store::completion::done);
  // The second delivery's completion is only an ack, without a second
  // result.
  CHECK(must(store->complete(second, "from fast", "fast"))
        == task_store::completion::stale);
  auto conn = inspect(srv);
  auto results = entries(conn, "nova.tasks.results.sess");
  REQUIRE(results.size() == 1);
  CHECK(must(nova::decode<nova::task_result>(
              field(results[0][1], "result").value()))
          .worker
        == "slow");
  CHECK(pending(conn, "nova.tasks.queue.high") == 0);
  CHECK(must(store->stats()).done == 1);
  // A failure of a delivery whose task is done does not retry it.
  enqueue_ok(*store, make_task("twice"));
  auto x = claim_ok(*store, "n1");
  std::this_thread::sleep_for(60ms);
  auto y = must(store->reclaim("n2", 50ms)).tasks.at(0);
  CHECK(must(store->complete(y, "ok", "n2")) == task_store::completion::done);
  auto f = must(store->fail(x, "boom", nova::now_ms()));
  CHECK(f.stale);
  CHECK_FALSE(f.retry_at);
  CHECK_FALSE(f.dead);
  CHECK(must(store->stats()).delayed == 0);
}

TEST_CASE("a completion after the store lost its data is stale, not an "
          "error",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("gone", priority::normal, "sess"));
  auto c = claim_ok(*store);
  auto conn = inspect(srv);
  run(conn, {"FLUSHALL"});
  // No lane, no group: nothing is pending, nothing to trim.
  CHECK(must(store->complete(c, "late", "w")) == task_store::completion::stale);
  CHECK(entries(conn, "nova.tasks.results.sess").empty());
}

TEST_CASE("a delivery that completes after its entry was retried writes "
          "nothing; the retry writes the one result",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("late", priority::normal, "sess"));
  auto slow = claim_ok(*store, "slow-node");
  std::this_thread::sleep_for(60ms);
  auto taken = must(store->reclaim("fast-node", 50ms)).tasks.at(0);
  const int64_t now = 1'000'000;
  REQUIRE(must(store->fail(taken, "boom", now)).retry_at);
  // The slow delivery's entry was acked by the retry: it is stale.
  CHECK(must(store->complete(slow, "from slow", "slow"))
        == task_store::completion::stale);
  CHECK(must(store->stats()).done == 0);
  REQUIRE(must(store->promote_due(now + 1000)) == 1);
  auto retry = claim_ok(*store, "fast-node");
  CHECK(retry.task.id == "late");
  CHECK(retry.task.attempts == 3);
  CHECK(must(store->complete(retry, "from retry", "fast"))
        == task_store::completion::done);
  auto conn = inspect(srv);
  auto results = entries(conn, "nova.tasks.results.sess");
  REQUIRE(results.size() == 1);
  CHECK(must(nova::decode<nova::task_result>(
              field(results[0][1], "result").value()))
          .worker
        == "fast");
  CHECK(must(store->stats()).done == 1);
}

TEST_CASE("acked entries are trimmed off the head of a lane, never pending or "
          "undelivered ones",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  for (auto id : {"e1", "e2", "e3", "e4", "e5"})
    enqueue_ok(*store, make_task(id));
  auto e1 = claim_ok(*store);
  auto e2 = claim_ok(*store);
  // e1 is still pending: nothing before it can go, nothing after it does.
  CHECK(must(store->complete(e2, "", "w")) == task_store::completion::done);
  auto s = must(store->stats());
  CHECK(s.depth == std::vector<uint64_t>{0, 0, 3, 0});
  CHECK(s.in_flight == 1);
  CHECK(must(store->complete(e1, "", "w")) == task_store::completion::done);
  strings rest;
  for (int i = 0; i < 3; ++i) {
    auto c = claim_ok(*store);
    rest.push_back(c.task.id);
    CHECK(must(store->complete(c, "", "w")) == task_store::completion::done);
  }
  CHECK(rest == strings{"e3", "e4", "e5"});
  CHECK(claim_id(*store) == "<none>");
  auto conn = inspect(srv);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.normal"}).integer == 0);
  CHECK(must(store->stats()).done == 5);
}

// -- retries and dead letters -------------------------------------------------

TEST_CASE("a failed task comes back only after its backoff, with its attempt "
          "count and error",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("flaky", priority::high));
  auto c = claim_ok(*store);
  const int64_t now = 1'000'000;
  auto f = must(store->fail(c, "boom", now));
  REQUIRE(f.retry_at);
  CHECK(*f.retry_at == now + 100);
  CHECK_FALSE(f.dead);
  auto conn = inspect(srv);
  CHECK(pending(conn, "nova.tasks.queue.high") == 0);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.high"}).integer == 0);
  CHECK(must(store->next_due()) == std::optional<int64_t>{now + 100});
  auto s = must(store->stats());
  CHECK(s.delayed == 1);
  CHECK(s.retried == 1);
  CHECK(s.in_flight == 0);
  // Not before the backoff ends.
  CHECK(must(store->promote_due(now + 99)) == 0);
  CHECK(claim_id(*store) == "<none>");
  CHECK(must(store->promote_due(now + 100)) == 1);
  CHECK_FALSE(must(store->next_due()));
  auto again = claim_ok(*store);
  CHECK(again.task.id == "flaky");
  CHECK(again.task.attempts == 2);
  CHECK(again.task.last_error == "boom");
  CHECK(again.lane == priority::high);
  auto xs = entries(conn, "nova.tasks.queue.high");
  REQUIRE(xs.size() == 1);
  CHECK(field(xs[0][1], "attempts") == std::optional<std::string>{"1"});
}

TEST_CASE("the backoff doubles per attempt up to retry_max", "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.delivery_limit = 10;
  s.retry_base = 100ms;
  s.retry_max = 500ms;
  auto store = make_store(srv, s);
  CHECK(store->backoff(1) == 100ms);
  CHECK(store->backoff(2) == 200ms);
  CHECK(store->backoff(3) == 400ms);
  CHECK(store->backoff(4) == 500ms);
  CHECK(store->backoff(30) == 500ms);
  enqueue_ok(*store, make_task("t"));
  int64_t now = 5'000'000;
  std::vector<int64_t> waits;
  for (int i = 0; i < 5; ++i) {
    auto c = claim_ok(*store);
    CHECK(c.task.attempts == static_cast<uint32_t>(i + 1));
    auto f = must(store->fail(c, "again", now));
    REQUIRE(f.retry_at);
    waits.push_back(*f.retry_at - now);
    now = *f.retry_at;
    CHECK(must(store->promote_due(now)) == 1);
  }
  CHECK(waits == std::vector<int64_t>{100, 200, 400, 500, 500});
}

TEST_CASE("a task that fails at the delivery limit lands in the dead-letter "
          "stream with a dead result",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("doomed", priority::urgent, "sess"));
  int64_t now = 1'000'000;
  for (uint32_t attempt = 1; attempt <= 2; ++attempt) {
    auto c = claim_ok(*store);
    CHECK(c.task.attempts == attempt);
    auto f = must(store->fail(c, "fail " + std::to_string(attempt), now));
    REQUIRE(f.retry_at);
    now = *f.retry_at;
    CHECK(must(store->promote_due(now)) == 1);
  }
  auto last = claim_ok(*store);
  CHECK(last.task.attempts == 3);
  auto f = must(store->fail(last, "fail 3", now, "w9"));
  REQUIRE(f.dead);
  CHECK_FALSE(f.retry_at);
  CHECK(f.dead->task_id == "doomed");
  CHECK(f.dead->status == nova::task_status::dead);
  CHECK(f.dead->error == "fail 3");
  CHECK(f.dead->attempts == 3);
  CHECK(f.dead->worker == "w9");
  auto conn = inspect(srv);
  auto dead = entries(conn, "nova.tasks.dead");
  REQUIRE(dead.size() == 1);
  CHECK(field(dead[0][1], "id") == std::optional<std::string>{"doomed"});
  CHECK(field(dead[0][1], "reason") == std::optional<std::string>{"fail 3"});
  CHECK(field(dead[0][1], "attempts") == std::optional<std::string>{"3"});
  CHECK(pending(conn, "nova.tasks.queue.urgent") == 0);
  CHECK(run(conn, {"XLEN", "nova.tasks.queue.urgent"}).integer == 0);
  auto results = entries(conn, "nova.tasks.results.sess");
  REQUIRE(results.size() == 1);
  CHECK(field(results[0][1], "status") == std::optional<std::string>{"dead"});
  CHECK(field(results[0][1], "error") == std::optional<std::string>{"fail 3"});
  auto letters = must(store->dead_letters(10));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].id == "doomed");
  CHECK(letters[0].attempts == 3);
  CHECK(letters[0].last_error == "fail 3");
  CHECK(must(store->stats()).dead == 1);
  // A dead id stays taken.
  auto again = store->enqueue(make_task("doomed"));
  REQUIRE_FALSE(again);
  CHECK(nova::is(again.error(), errc::duplicate_id));
  // A task's own max_attempts overrides the store's limit.
  auto once = make_task("once");
  once.max_attempts = 1;
  enqueue_ok(*store, once);
  auto c = claim_ok(*store);
  auto g = must(store->fail(c, "no second chance", now));
  REQUIRE(g.dead);
  CHECK(g.dead->attempts == 1);
  CHECK(must(store->stats()).dead == 2);
}

TEST_CASE("the dead letter is appended before the original entry is acked",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.delivery_limit = 1;
  auto store = make_store(srv, s);
  enqueue_ok(*store, make_task("doomed", priority::normal, "sess"));
  auto c = claim_ok(*store);
  monitor mon{srv.port()};
  auto f = must(store->fail(c, "broken", nova::now_ms()));
  REQUIRE(f.dead);
  REQUIRE(mon.wait_for("\"XTRIM\" \"nova.tasks.queue.normal\"", 2s));
  auto& log = mon.seen();
  auto dead_add = log.find("\"XADD\" \"nova.tasks.dead\"");
  auto result_add = log.find("\"XADD\" \"nova.tasks.results.sess\"");
  auto ack = log.find("\"XACK\" \"nova.tasks.queue.normal\"");
  INFO(log);
  REQUIRE(dead_add != std::string::npos);
  REQUIRE(result_add != std::string::npos);
  REQUIRE(ack != std::string::npos);
  CHECK(dead_add < ack);
  CHECK(result_add < ack);
  // And the state afterwards: the letter is there, the entry is gone.
  auto conn = inspect(srv);
  CHECK(run(conn, {"XLEN", "nova.tasks.dead"}).integer == 1);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
}

TEST_CASE("dead letters can be redriven one by one or all at once with a "
          "fresh delivery count",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.delivery_limit = 1;
  auto store = make_store(srv, s);
  for (auto id : {"d1", "d2", "d3"}) {
    enqueue_ok(*store, make_task(id, priority::high));
    auto c = claim_ok(*store);
    REQUIRE(must(store->fail(c, "bad input", nova::now_ms())).dead);
  }
  CHECK(must(store->dead_letters(2)).size() == 2);
  CHECK(must(store->dead_letters(0)).empty());
  auto unknown = store->redrive("nope");
  REQUIRE_FALSE(unknown);
  CHECK(nova::is(unknown.error(), errc::not_found));
  CHECK(must(store->redrive("d2")) == 1);
  auto c = claim_ok(*store);
  CHECK(c.task.id == "d2");
  CHECK(c.task.attempts == 1);
  CHECK(c.lane == priority::high);
  auto letters = must(store->dead_letters(10));
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].id == "d1");
  CHECK(letters[1].id == "d3");
  CHECK(must(store->redrive("")) == 2);
  CHECK(must(store->dead_letters(10)).empty());
  CHECK(claim_id(*store) == "d1");
  CHECK(claim_id(*store) == "d3");
  auto st = must(store->stats());
  CHECK(st.dead == 0);
  CHECK(st.in_flight == 3);
  // A second redrive finds nothing.
  CHECK(must(store->redrive("")) == 0);
}

// -- reclaim ------------------------------------------------------------------

TEST_CASE("an entry of a consumer that stopped is reclaimed after min_idle "
          "and not before",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("stuck", priority::low));
  enqueue_ok(*store, make_task("fine", priority::low));
  auto gone = claim_ok(*store, "dead-node");
  auto before = must(store->reclaim("live-node", 400ms));
  CHECK(before.tasks.empty());
  CHECK(before.dead.empty());
  auto owners = must(store->pending_per_consumer());
  CHECK(owners == std::map<std::string, uint64_t>{{"dead-node", 1}});
  std::this_thread::sleep_for(450ms);
  auto after = must(store->reclaim("live-node", 400ms));
  REQUIRE(after.tasks.size() == 1);
  auto& c = after.tasks[0];
  CHECK(c.task.id == "stuck");
  CHECK(c.task.attempts == 2);
  CHECK(c.lane == priority::low);
  CHECK(c.entry_id == gone.entry_id);
  owners = must(store->pending_per_consumer());
  CHECK(owners == std::map<std::string, uint64_t>{{"live-node", 1}});
  // A fresh claim was not touched, and the reclaimed one completes.
  CHECK(must(store->complete(c, "ok", "w")) == task_store::completion::done);
  CHECK(claim_id(*store) == "fine");
  CHECK(must(store->reclaim("live-node", 400ms)).tasks.empty());
}

TEST_CASE("a stale entry past its delivery limit becomes a dead letter "
          "instead of a reclaim",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.delivery_limit = 2;
  auto store = make_store(srv, s);
  enqueue_ok(*store, make_task("cursed", priority::normal, "sess"));
  claim_ok(*store, "n1");
  std::this_thread::sleep_for(60ms);
  auto second = must(store->reclaim("n2", 50ms));
  REQUIRE(second.tasks.size() == 1);
  CHECK(second.tasks[0].task.attempts == 2);
  std::this_thread::sleep_for(60ms);
  auto third = must(store->reclaim("n3", 50ms));
  CHECK(third.tasks.empty());
  REQUIRE(third.dead.size() == 1);
  CHECK(third.dead[0].task_id == "cursed");
  CHECK(third.dead[0].attempts == 2);
  auto letters = must(store->dead_letters(10));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].attempts == 2);
  CHECK(letters[0].last_error.find("delivery limit of 2") != std::string::npos);
  auto conn = inspect(srv);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
  CHECK(entries(conn, "nova.tasks.results.sess").size() == 1);
}

TEST_CASE("a released claim goes back to its lane without counting the "
          "delivery",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("back"));
  auto c = claim_ok(*store);
  CHECK(must(store->release(c)));
  auto again = claim_ok(*store);
  CHECK(again.task.id == "back");
  CHECK(again.task.attempts == 1);
  CHECK(again.entry_id != c.entry_id);
  // Releasing twice does not duplicate it.
  CHECK_FALSE(must(store->release(c)));
  CHECK(must(store->stats()).in_flight == 1);
  CHECK(must(store->stats()).depth == std::vector<uint64_t>{0, 0, 0, 0});
}

// -- malformed entries --------------------------------------------------------

TEST_CASE("malformed entries go to the dead-letter stream, are acked and "
          "counted",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto conn = inspect(srv);
  run(conn, {"XADD", "nova.tasks.queue.urgent", "*", "task",
             std::string{"\xff\xff\xff\xff", 4}, "id", "garbage"});
  run(conn, {"XADD", "nova.tasks.queue.urgent", "*", "hello", "world"});
  auto no_id = make_task("x");
  no_id.id.clear();
  run(conn, {"XADD", "nova.tasks.queue.high", "*", "task",
             nova::encode(no_id)});
  enqueue_ok(*store, make_task("good", priority::low));
  // The claim buries the three bad entries and goes on to the good one.
  auto c = claim_ok(*store);
  CHECK(c.task.id == "good");
  CHECK(store->malformed() == 3);
  for (auto lane : {"nova.tasks.queue.urgent", "nova.tasks.queue.high"}) {
    CHECK(pending(conn, lane) == 0);
    CHECK(run(conn, {"XLEN", lane}).integer == 0);
  }
  auto dead = entries(conn, "nova.tasks.dead");
  REQUIRE(dead.size() == 3);
  CHECK(field(dead[0][1], "id") == std::optional<std::string>{"garbage"});
  CHECK(field(dead[0][1], "reason")->find("malformed") != std::string::npos);
  CHECK(field(dead[1][1], "reason")->find("no task field")
        != std::string::npos);
  CHECK(field(dead[2][1], "reason")->find("task id") != std::string::npos);
  // Listed for an operator, never redriven.
  auto letters = must(store->dead_letters(10));
  REQUIRE(letters.size() == 3);
  CHECK(letters[0].id == "garbage");
  CHECK(letters[0].headers.count("malformed") == 1);
  CHECK(must(store->redrive("")) == 0);
  // A malformed retry in the delayed set is buried when it is due.
  run(conn, {"ZADD", "nova.tasks.delayed", "10", "\xff\xff"});
  CHECK(must(store->promote_due(100)) == 0);
  CHECK(must(store->stats()).delayed == 0);
  CHECK(run(conn, {"XLEN", "nova.tasks.dead"}).integer == 4);
  CHECK(store->malformed() == 4);
  // Reclaimed garbage is buried as well.
  CHECK(must(store->complete(c, "", "c1")) == task_store::completion::done);
  run(conn, {"XADD", "nova.tasks.queue.normal", "*", "task", "\xff"});
  run(conn, {"XREADGROUP", "GROUP", "nova.workers", "raw", "COUNT", "1",
             "STREAMS", "nova.tasks.queue.normal", ">"});
  std::this_thread::sleep_for(60ms);
  auto re = must(store->reclaim("n2", 50ms));
  CHECK(re.tasks.empty());
  CHECK(store->malformed() == 5);
  CHECK(pending(conn, "nova.tasks.queue.normal") == 0);
}

// -- statistics ---------------------------------------------------------------

TEST_CASE("stats count depth per lane, tasks in flight, delayed and dead, "
          "and pending per consumer",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = store_settings();
  s.delivery_limit = 2;
  auto store = make_store(srv, s);
  auto empty = must(store->stats());
  CHECK(empty.depth == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(empty.in_flight == 0);
  enqueue_ok(*store, make_task("u1", priority::urgent));
  enqueue_ok(*store, make_task("h1", priority::high));
  enqueue_ok(*store, make_task("h2", priority::high));
  enqueue_ok(*store, make_task("n1", priority::normal));
  enqueue_ok(*store, make_task("l1", priority::low));
  enqueue_ok(*store, make_task("l2", priority::low));
  enqueue_ok(*store, make_task("l3", priority::low));
  auto u1 = claim_ok(*store, "a");
  auto h1 = claim_ok(*store, "b");
  auto h2 = claim_ok(*store, "b");
  REQUIRE(must(store->fail(h1, "x", 1000)).retry_at);
  h2.task.attempts = 2;
  REQUIRE(must(store->fail(h2, "y", 1000)).dead);
  auto st = must(store->stats());
  CHECK(st.depth == std::vector<uint64_t>{0, 0, 1, 3});
  CHECK(st.in_flight == 1);
  CHECK(st.delayed == 1);
  CHECK(st.dead == 1);
  CHECK(st.enqueued == 7);
  CHECK(st.retried == 1);
  CHECK(st.done == 0);
  auto n1 = claim_ok(*store, "b");
  CHECK(must(store->pending_per_consumer())
        == std::map<std::string, uint64_t>{{"a", 1}, {"b", 1}});
  CHECK(must(store->complete(u1, "", "a")) == task_store::completion::done);
  CHECK(must(store->complete(n1, "", "b")) == task_store::completion::done);
  st = must(store->stats());
  CHECK(st.in_flight == 0);
  CHECK(st.done == 2);
  CHECK(must(store->pending_per_consumer()).empty());
}

// -- results ------------------------------------------------------------------

TEST_CASE("collect waits for results and results_since continues from a "
          "position",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  auto none = must(store->collect("sess", 1, 50ms));
  CHECK(none.results.empty());
  CHECK(none.last_id == "0-0");
  for (auto id : {"r1", "r2", "r3"})
    enqueue_ok(*store, make_task(id, priority::normal, "sess"));
  caf::expected<task_store::result_batch> collected{
    task_store::result_batch{}};
  std::thread collector{[&] { collected = store->collect("sess", 3, 5s); }};
  for (int i = 0; i < 3; ++i) {
    auto c = claim_ok(*store);
    CHECK(must(store->complete(c, "out " + c.task.id, "w"))
          == task_store::completion::done);
  }
  collector.join();
  auto got = must(std::move(collected));
  REQUIRE(got.results.size() == 3);
  CHECK(got.results[0].task_id == "r1");
  CHECK(got.results[2].payload == "out r3");
  // Nothing new after the last position; only what arrives later.
  CHECK(must(store->collect("sess", 1, 50ms, got.last_id)).results.empty());
  auto first = must(store->results_since("sess", "0", 1));
  REQUIRE(first.results.size() == 1);
  CHECK(first.results[0].task_id == "r1");
  auto rest = must(store->results_since("sess", first.last_id));
  REQUIRE(rest.results.size() == 2);
  CHECK(rest.results[0].task_id == "r2");
  CHECK(rest.last_id == got.last_id);
  auto after = must(store->results_since("sess", rest.last_id));
  CHECK(after.results.empty());
  CHECK(after.last_id == rest.last_id);
  auto bad = store->collect("no such session!", 1, 10ms);
  REQUIRE_FALSE(bad);
  CHECK(nova::is(bad.error(), errc::invalid_id));
}

// -- failures of the store ----------------------------------------------------

TEST_CASE("the store reports backend_unavailable while the server is down "
          "and recreates the groups after a restart",
          "[task_store]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto store = make_store(srv);
  enqueue_ok(*store, make_task("before"));
  srv.stop();
  auto down = store->enqueue(make_task("during"));
  REQUIRE_FALSE(down);
  CHECK(nova::is(down.error(), errc::backend_unavailable));
  auto claim = store->claim("c1");
  REQUIRE_FALSE(claim);
  CHECK(nova::is(claim.error(), errc::backend_unavailable));
  auto wait = store->wait_claim("c1", 50ms);
  REQUIRE_FALSE(wait);
  CHECK(nova::is(wait.error(), errc::backend_unavailable));
  CHECK(store->store_errors() >= 3);
  // No persistence: the restarted server is empty, without groups.
  srv.start();
  CHECK(eventually([&] { return static_cast<bool>(store->claim("c1")); },
                   5s));
  enqueue_ok(*store, make_task("after"));
  CHECK(claim_id(*store) == "after");
  auto conn = inspect(srv);
  CHECK(run(conn, {"XINFO", "GROUPS", "nova.tasks.queue.normal"}).size() == 1);
}
