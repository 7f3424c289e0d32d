#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "actors/presence_monitor.hpp"
#include "messages/ids.hpp"

using namespace nova;
using namespace std::chrono_literals;

namespace {

using time_point = presence_table::time_point;

const time_point t0 = time_point{} + 1000h;

constexpr auto timeout = 1500ms;

presence make_presence(std::string id,
                       presence_status status = presence_status::online,
                       std::vector<std::string> capabilities = {}) {
  presence p;
  p.nova_id = std::move(id);
  p.node_id = "node-1";
  p.status = status;
  p.capabilities = std::move(capabilities);
  p.started_at = 1;
  p.last_seen = 2;
  return p;
}

std::vector<std::string> ids_of(const std::vector<presence>& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps)
    out.push_back(p.nova_id);
  return out;
}

} // namespace

TEST_CASE("the first update of a Nova is a change", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha", presence_status::online, {"chat"});
  auto changed = table.update(p, t0);
  REQUIRE(changed);
  CHECK(*changed == p);
  auto found = table.find("alpha");
  REQUIRE(found);
  CHECK(*found == p);
  CHECK_FALSE(table.find("beta"));
}

TEST_CASE("an identical heartbeat is not a change", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  CHECK_FALSE(table.update(p, t0 + 500ms));
  CHECK_FALSE(table.update(p, t0 + 1s));
}

TEST_CASE("a heartbeat with only a newer last_seen is not a change",
          "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  p.last_seen += 1000;
  CHECK_FALSE(table.update(p, t0 + 1s));
  CHECK(table.find("alpha")->last_seen == p.last_seen);
}

TEST_CASE("a status change is a change", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  p.status = presence_status::busy;
  auto changed = table.update(p, t0 + 1s);
  REQUIRE(changed);
  CHECK(changed->status == presence_status::busy);
  CHECK(table.find("alpha")->status == presence_status::busy);
  CHECK_FALSE(table.update(p, t0 + 2s));
  p.status = presence_status::away;
  CHECK(table.update(p, t0 + 3s));
}

TEST_CASE("a change of current task or node is a change", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  p.current_task = "task-1";
  auto changed = table.update(p, t0 + 1s);
  REQUIRE(changed);
  CHECK(changed->current_task == "task-1");
  p.node_id = "node-2";
  changed = table.update(p, t0 + 2s);
  REQUIRE(changed);
  CHECK(changed->node_id == "node-2");
}

TEST_CASE("new capabilities are recorded even when not announced",
          "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha", presence_status::online, {"chat"});
  REQUIRE(table.update(p, t0));
  p.capabilities = {"chat", "search"};
  static_cast<void>(table.update(p, t0 + 1s));
  CHECK(ids_of(table.discover("search")) == std::vector<std::string>{"alpha"});
}

TEST_CASE("sweep marks a Nova offline only after the timeout, and only once",
          "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  p.current_task = "task-9";
  REQUIRE(table.update(p, t0));
  CHECK(table.sweep(t0).empty());
  CHECK(table.sweep(t0 + 1499ms).empty());
  CHECK(table.sweep(t0 + timeout).empty());
  CHECK(table.find("alpha")->status == presence_status::online);
  auto gone = table.sweep(t0 + timeout + 1ms);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].nova_id == "alpha");
  CHECK(gone[0].status == presence_status::offline);
  CHECK(gone[0].current_task.empty());
  CHECK(table.find("alpha")->status == presence_status::offline);
  CHECK(table.sweep(t0 + timeout + 2ms).empty());
  CHECK(table.sweep(t0 + 1h).empty());
}

TEST_CASE("heartbeats keep a Nova from being swept", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  for (auto t = t0 + 1s; t < t0 + 10s; t += 1s) {
    CHECK_FALSE(table.update(p, t));
    CHECK(table.sweep(t + 1s).empty());
  }
  CHECK(table.sweep(t0 + 9s + timeout + 1ms).size() == 1);
}

TEST_CASE("sweep reports only the Novas whose heartbeats stopped",
          "[presence_table]") {
  presence_table table{timeout};
  REQUIRE(table.update(make_presence("quiet"), t0));
  REQUIRE(table.update(make_presence("chatty"), t0));
  REQUIRE(table.update(make_presence("late", presence_status::busy),
                       t0 + 1s));
  CHECK_FALSE(table.update(make_presence("chatty"), t0 + 1s));
  auto gone = table.sweep(t0 + 2s);
  CHECK(ids_of(gone) == std::vector<std::string>{"quiet"});
  gone = table.sweep(t0 + 3s);
  CHECK(ids_of(gone) == std::vector<std::string>{"chatty", "late"});
}

TEST_CASE("a swept Nova that sends a heartbeat again is back online",
          "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha");
  REQUIRE(table.update(p, t0));
  REQUIRE(table.sweep(t0 + 2s).size() == 1);
  auto back = table.update(p, t0 + 3s);
  REQUIRE(back);
  CHECK(back->status == presence_status::online);
  CHECK(table.sweep(t0 + 4s).empty());
  CHECK(table.sweep(t0 + 5s).size() == 1);
}

TEST_CASE("leave marks a Nova offline once", "[presence_table]") {
  presence_table table{timeout};
  auto p = make_presence("alpha", presence_status::busy);
  p.current_task = "task-1";
  REQUIRE(table.update(p, t0));
  auto before = now_ms();
  auto left = table.leave("alpha");
  REQUIRE(left);
  CHECK(left->nova_id == "alpha");
  CHECK(left->status == presence_status::offline);
  CHECK(left->current_task.empty());
  CHECK(left->last_seen >= before);
  CHECK(table.find("alpha")->status == presence_status::offline);
  CHECK_FALSE(table.leave("alpha"));
  CHECK(table.sweep(t0 + 1h).empty());
}

TEST_CASE("leave of an unknown Nova is no change", "[presence_table]") {
  presence_table table{timeout};
  CHECK_FALSE(table.leave("ghost"));
  CHECK(table.list().empty());
}

TEST_CASE("discover finds Novas with a capability and skips offline ones",
          "[presence_table]") {
  presence_table table{timeout};
  REQUIRE(table.update(make_presence("a", presence_status::online,
                                     {"chat", "search"}),
                       t0));
  REQUIRE(table.update(make_presence("b", presence_status::busy, {"chat"}),
                       t0));
  REQUIRE(table.update(make_presence("c", presence_status::away, {"math"}),
                       t0));
  REQUIRE(table.update(make_presence("d", presence_status::online, {"chat"}),
                       t0));
  REQUIRE(table.update(make_presence("e", presence_status::offline, {"chat"}),
                       t0));
  REQUIRE(table.leave("d"));
  CHECK(ids_of(table.discover("chat")) == std::vector<std::string>{"a", "b"});
  CHECK(ids_of(table.discover("search")) == std::vector<std::string>{"a"});
  CHECK(ids_of(table.discover("math")) == std::vector<std::string>{"c"});
  CHECK(table.discover("flying").empty());
  CHECK(table.discover("cha").empty());
}

TEST_CASE("discover with an empty capability lists every Nova not offline",
          "[presence_table]") {
  presence_table table{timeout};
  REQUIRE(table.update(make_presence("a"), t0));
  REQUIRE(table.update(make_presence("b", presence_status::busy, {"x"}), t0));
  REQUIRE(table.update(make_presence("c", presence_status::away), t0 + 1s));
  REQUIRE(table.update(make_presence("d"), t0 + 1s));
  REQUIRE(table.leave("d"));
  CHECK(ids_of(table.discover("")) == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(table.sweep(t0 + 2s).size() == 2);
  CHECK(ids_of(table.discover("")) == std::vector<std::string>{"c"});
}

TEST_CASE("list includes offline Novas", "[presence_table]") {
  presence_table table{timeout};
  REQUIRE(table.update(make_presence("b"), t0));
  REQUIRE(table.update(make_presence("a"), t0));
  REQUIRE(table.leave("b"));
  auto all = table.list();
  CHECK(ids_of(all) == std::vector<std::string>{"a", "b"});
  CHECK(all[1].status == presence_status::offline);
}

TEST_CASE("counts tallies Novas per status in the order online, busy, away, "
          "offline",
          "[presence_table]") {
  presence_table table{timeout};
  CHECK(table.counts() == std::vector<uint64_t>{0, 0, 0, 0});
  REQUIRE(table.update(make_presence("a"), t0));
  REQUIRE(table.update(make_presence("b"), t0));
  REQUIRE(table.update(make_presence("c", presence_status::busy), t0));
  REQUIRE(table.update(make_presence("d", presence_status::away), t0 + 1s));
  REQUIRE(table.update(make_presence("e", presence_status::away), t0 + 1s));
  REQUIRE(table.update(make_presence("f", presence_status::away), t0 + 1s));
  CHECK(table.counts() == std::vector<uint64_t>{2, 1, 3, 0});
  REQUIRE(table.leave("d"));
  CHECK(table.counts() == std::vector<uint64_t>{2, 1, 2, 1});
  REQUIRE(table.sweep(t0 + 2s).size() == 3);
  CHECK(table.counts() == std::vector<uint64_t>{0, 0, 2, 4});
}
