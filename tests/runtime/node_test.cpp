#include <atomic>
#include <csignal>
#include <cstdlib>
#include <future>
#include <thread>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include "actors/stream_task_queue_actor.hpp"
#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::eventually;
using nova::testing::make_sink;
using nova::testing::recorder;
using nova::testing::test_config;

TEST_CASE("spawning rejects invalid and duplicate ids", "[node]") {
  node n{test_config()};
  REQUIRE(n.spawn("alpha"));
  CHECK(is(n.spawn("alpha").error(), errc::duplicate_id));
  CHECK(is(n.spawn("").error(), errc::invalid_id));
  CHECK(is(n.spawn("has space").error(), errc::invalid_id));
  CHECK(is(n.spawn(std::string(65, 'x')).error(), errc::invalid_id));
  CHECK(is(n.spawn("ok", {{}, {"bad group"}}).error(), errc::invalid_id));
  CHECK(is(n.spawn("ok", {{"bad.cap"}, {}}).error(), errc::invalid_id));
  REQUIRE(n.spawn(std::string(64, 'x')));
  CHECK(n.novas() == std::vector<std::string>{"alpha", std::string(64, 'x')});
}

TEST_CASE("an invalid configuration stops the node from starting", "[node]") {
  auto cfg = test_config();
  cfg.node_id = "no spaces";
  CHECK_THROWS_AS(node{cfg}, std::invalid_argument);
  cfg = test_config();
  cfg.prefix = "a..b";
  CHECK_THROWS_AS(node{cfg}, std::invalid_argument);
  cfg = test_config();
  cfg.limits.delivery_limit = 0;
  CHECK_THROWS_AS(node{cfg}, std::invalid_argument);
  cfg = test_config();
  cfg.limits.task_id_ttl = 0s;
  CHECK_THROWS_AS(node{cfg}, std::invalid_argument);
}

TEST_CASE("the --task-id-ttl-s flag sets how long the store keeps a task id "
          "taken",
          "[node]") {
  config cfg;
  CHECK(cfg.limits.task_id_ttl == std::chrono::hours(24 * 7));
  CHECK(task_store_settings(cfg.limits).known_ttl
        == std::chrono::hours(24 * 7));
  CLI::App app;
  cfg.add_flags(app);
  const char* argv[] = {"nova", "--task-id-ttl-s", "3600"};
  app.parse(3, const_cast<char**>(argv));
  CHECK(cfg.limits.task_id_ttl == 3600s);
  CHECK(task_store_settings(cfg.limits).known_ttl == 3600s);
}

TEST_CASE("configuration comes from the environment, then flags", "[node]") {
  ::setenv("NOVA_NODE_ID", "env-node", 1);
  ::setenv("MESSAGE_BUS", "memory", 1);
  ::setenv("NATS_URL", "nats://127.0.0.1:4999", 1);
  ::setenv("DRAGONFLY_URL", "redis://127.0.0.1:6999/2", 1);
  ::setenv("NOVA_PREFIX", "test.pfx", 1);
  ::setenv("NOVA_HEARTBEAT_MS", "250", 1);
  auto cfg = config::from_env();
  REQUIRE(cfg);
  CHECK(cfg->node_id == "env-node");
  CHECK(cfg->bus == bus_kind::memory);
  CHECK(cfg->nats_url == "nats://127.0.0.1:4999");
  CHECK(cfg->dragonfly_url == "redis://127.0.0.1:6999/2");
  CHECK(cfg->prefix == "test.pfx");
  CHECK(cfg->limits.heartbeat_interval == 250ms);
  CLI::App app;
  cfg->add_flags(app);
  const char* argv[] = {"nova", "--node-id", "flag-node", "--bus", "nats",
                        "--heartbeat-ms", "40"};
  app.parse(7, const_cast<char**>(argv));
  CHECK(cfg->node_id == "flag-node");
  CHECK(cfg->bus == bus_kind::nats);
  CHECK(cfg->limits.heartbeat_interval == 40ms);
  ::setenv("MESSAGE_BUS", "carrier-pigeon", 1);
  auto bad = config::from_env();
  REQUIRE(!bad);
  CHECK(describe(bad.error()).find("MESSAGE_BUS") != std::string::npos);
  ::setenv("MESSAGE_BUS", "memory", 1);
  ::setenv("NOVA_HEARTBEAT_MS", "soon", 1);
  CHECK(!config::from_env());
  for (auto var : {"NOVA_NODE_ID", "MESSAGE_BUS", "NATS_URL", "DRAGONFLY_URL",
                   "NOVA_PREFIX", "NOVA_HEARTBEAT_MS"})
    ::unsetenv(var);
  CLI::App app2;
  config c2;
  c2.add_flags(app2);
  const char* argv2[] = {"nova", "--bus", "smoke"};
  CHECK_THROWS(app2.parse(3, const_cast<char**>(argv2)));
}

TEST_CASE("a node whose NATS server is unreachable starts degraded and "
          "stops cleanly",
          "[node]") {
  auto cfg = test_config();
  cfg.bus = bus_kind::nats;
  cfg.nats_url = "nats://127.0.0.1:1"; // nothing listens on port 1
  node n{cfg};
  REQUIRE(n.spawn("lonely"));
  auto h = n.health();
  CHECK(h.status == "degraded");
  CHECK(h.bus == "nats");
  CHECK(!h.bus_connected);
  // Local delivery goes on; a Nova nobody knows is still an error.
  CHECK(!n.send("lonely", "local"));
  CHECK(is(n.send("far-away", "x"), errc::unknown_nova));
  n.shutdown();
  CHECK(n.novas().empty());
}

TEST_CASE("a malformed NATS URL stops the node from starting", "[node]") {
  auto cfg = test_config();
  cfg.bus = bus_kind::nats;
  cfg.nats_url = "http://[::1";
  CHECK_THROWS_AS(node{cfg}, std::invalid_argument);
}

namespace {

class counter_nova : public agent {
public:
  counter_nova(caf::actor_config& cfg, agent_init init,
               std::shared_ptr<std::atomic<int>> count)
    : agent(cfg, std::move(init)), count_(std::move(count)) {
    // nop
  }

protected:
  void on_message(const envelope&) override {
    std::this_thread::sleep_for(100us);
    ++*count_;
  }

private:
  std::shared_ptr<std::atomic<int>> count_;
};

} // namespace

TEST_CASE("shutdown drains every mailbox before the Novas stop", "[node]") {
  auto count = std::make_shared<std::atomic<int>>(0);
  {
    node n{test_config()};
    REQUIRE(n.spawn<counter_nova>("c", {}, count));
    for (int i = 0; i < 2000; ++i)
      REQUIRE(!n.send("c", "m"));
    n.shutdown();
    CHECK(count->load() == 2000);
    CHECK(is(n.send("c", "late"), errc::shutting_down));
    CHECK(is(n.spawn("new").error(), errc::shutting_down));
    CHECK(n.novas().empty());
  }
}

TEST_CASE("stop ends one Nova and frees its id", "[node]") {
  node n{test_config()};
  REQUIRE(n.spawn("a"));
  REQUIRE(!n.stop("a"));
  REQUIRE(eventually([&] { return n.novas().empty(); }));
  CHECK(is(n.send("a", "x"), errc::unknown_nova));
  CHECK(n.stats().get(counter::dead_letters) == 1);
  CHECK(is(n.stop("a"), errc::unknown_nova));
  REQUIRE(n.spawn("a"));
}

TEST_CASE("run returns after SIGTERM and shuts the node down", "[node]") {
  node n{test_config()};
  REQUIRE(n.spawn("a"));
  auto done = std::async(std::launch::async, [&] { return n.run(); });
  REQUIRE(eventually([&] { return n.running(); }));
  std::raise(SIGTERM);
  REQUIRE(done.wait_for(10s) == std::future_status::ready);
  CHECK(done.get() == 0);
  CHECK(n.novas().empty());
}

TEST_CASE("run returns when asked from another thread", "[node]") {
  node n{test_config()};
  auto done = std::async(std::launch::async, [&] { return n.run(); });
  n.request_shutdown();
  REQUIRE(done.wait_for(10s) == std::future_status::ready);
  CHECK(done.get() == 0);
}
