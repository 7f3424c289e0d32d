#include <algorithm>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/node.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::eventually;
using nova::testing::test_config;

namespace {

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

/// Sets its presence to whatever a direct message says.
class moody : public agent {
public:
  using agent::agent;

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "busy")
      set_presence(presence_status::busy, "task-7");
    else if (msg.payload == "away")
      set_presence(presence_status::away);
  }
};

bool has(const std::vector<presence>& xs, const std::string& id,
         presence_status st) {
  return std::any_of(xs.begin(), xs.end(), [&](const presence& p) {
    return p.nova_id == id && p.status == st;
  });
}

} // namespace

TEST_CASE("a spawned Nova is online with its capabilities and groups",
          "[presence]") {
  node n{test_config()};
  agent_options opts;
  opts.capabilities = {"translate", "summarize"};
  opts.groups = {"research"};
  REQUIRE(n.spawn("scribe", opts));
  REQUIRE(eventually([&] {
    auto xs = n.presence_list();
    return xs && has(*xs, "scribe", presence_status::online);
  }));
  auto xs = n.presence_list();
  REQUIRE(xs);
  REQUIRE(xs->size() == 1);
  const auto& p = (*xs)[0];
  CHECK(p.node_id == "test-node");
  CHECK(p.capabilities == opts.capabilities);
  CHECK(p.groups == opts.groups);
  CHECK(p.started_at > 0);
  CHECK(p.last_seen >= p.started_at);
}

TEST_CASE("discover finds Novas by capability and skips offline ones",
          "[presence]") {
  node n{test_config()};
  agent_options tr;
  tr.capabilities = {"translate"};
  REQUIRE(n.spawn("t1", tr));
  REQUIRE(n.spawn("t2", tr));
  REQUIRE(n.spawn("other"));
  REQUIRE(eventually([&] { return n.discover("translate")->size() == 2; }));
  CHECK(n.discover("")->size() == 3);
  CHECK(n.discover("cook")->empty());
  REQUIRE(!n.stop("t2"));
  REQUIRE(eventually([&] { return n.discover("translate")->size() == 1; }));
  CHECK(n.discover("translate")->front().nova_id == "t1");
  auto all = n.presence_list();
  REQUIRE(all);
  CHECK(has(*all, "t2", presence_status::offline));
  CHECK(n.discover("not valid!").error());
}

TEST_CASE("presence changes reach watchers", "[presence]") {
  node n{test_config()};
  auto seen = std::make_shared<nova::testing::sink<presence>>();
  REQUIRE(n.spawn<watcher>("w", {}, seen));
  REQUIRE(eventually([&] { return n.presence_list()->size() == 1; }));
  REQUIRE(n.spawn<moody>("m"));
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "m", presence_status::online);
  }));
  REQUIRE(!n.send("m", "busy"));
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "m", presence_status::busy);
  }));
  auto xs = seen->items();
  auto busy = std::find_if(xs.begin(), xs.end(), [](const presence& p) {
    return p.status == presence_status::busy;
  });
  REQUIRE(busy != xs.end());
  CHECK(busy->current_task == "task-7");
  REQUIRE(!n.send("m", "away"));
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "m", presence_status::away);
  }));
  REQUIRE(!n.stop("m"));
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "m", presence_status::offline);
  }));
  CHECK(n.stats().get(counter::presence_changes) >= 4);
}

namespace {

/// Stops heartbeating (it blocks its own thread) to look dead.
class frozen : public agent {
public:
  using agent::agent;

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "freeze")
      std::this_thread::sleep_for(600ms);
  }
};

} // namespace

TEST_CASE("the monitor marks a Nova offline when its heartbeats stop and "
          "online again when they resume",
          "[presence]") {
  auto cfg = test_config();
  cfg.threads = 3;
  cfg.limits.heartbeat_interval = 50ms;
  node n{cfg};
  auto seen = std::make_shared<nova::testing::sink<presence>>();
  REQUIRE(n.spawn<watcher>("w", {}, seen));
  REQUIRE(n.spawn<frozen>("ice"));
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "ice", presence_status::online);
  }));
  REQUIRE(!n.send("ice", "freeze"));
  // No heartbeat for 600 ms with a 50 ms interval: offline after ~75 ms.
  REQUIRE(seen->wait_until([](const auto& xs) {
    return has(xs, "ice", presence_status::offline);
  }, 2s));
  // Once it thaws its heartbeat brings it back.
  REQUIRE(seen->wait_until([](const auto& xs) {
    auto last = std::find_if(xs.rbegin(), xs.rend(), [](const presence& p) {
      return p.nova_id == "ice";
    });
    return last != xs.rend() && last->status == presence_status::online
           && has(xs, "ice", presence_status::offline);
  }, 3s));
}
