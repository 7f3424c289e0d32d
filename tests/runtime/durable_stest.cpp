// Durable delivery across `nova node` processes with `--bus nats --store
// redis`: a Nova whose node process was killed gets, once it is back, what
// was sent to it while it was away; a store restart loses nothing accepted.
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

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

send_options durable() {
  send_options opts;
  opts.durable = true;
  return opts;
}

/// How often `what` occurs in `text`.
size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + what.size()))
    ++n;
  return n;
}

} // namespace

TEST_CASE("a Nova whose node process was killed gets its durable messages "
          "when it comes back, and a store restart loses nothing accepted",
          "[system][durable][store]") {
  NOVA_REQUIRE_NATS_SERVER();
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server store;
  nats_server bus;
  auto pfx = fresh_prefix();
  strings argv{bin("nova"),       "node",
               "--bus",           "nats",
               "--nats-url",      bus.url(),
               "--store",         "redis",
               "--dragonfly-url", store.url(),
               "--prefix",        pfx,
               "--node-id",       "nb",
               "--heartbeat-ms",  "500",
               "--threads",       "2",
               "--spawn",         "logger:inbox"};
  // The sending side: a node in this process.
  auto cfg = nova::testing::nats_config("na", bus.url(), pfx);
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = store.url();
  cfg.limits.heartbeat_interval = 500ms;
  node na{cfg};

  auto first = std::make_unique<process>(argv);
  REQUIRE(first->started());
  {
    INFO(first->output());
    REQUIRE(first->wait_for_output("running on the nats bus with 1 Novas",
                                   15s));
  }
  REQUIRE(eventually(
    [&] { return na.context().bus && na.context().bus->knows("inbox"); },
    15s));
  REQUIRE_FALSE(na.send("inbox", "live-1", durable()));
  {
    INFO(first->output());
    REQUIRE(first->wait_for_output(": live-1", 10s));
  }

  // Killed: what is sent meanwhile waits in its durable inbox.
  first->signal(SIGKILL);
  REQUIRE(first->wait(5s) == std::optional<int>{128 + SIGKILL});
  first.reset();
  for (int i = 1; i <= 3; ++i)
    REQUIRE_FALSE(na.send("inbox", "away-" + std::to_string(i), durable()));

  process second{argv};
  REQUIRE(second.started());
  {
    INFO(second.output());
    REQUIRE(second.wait_for_output(": away-3", 15s));
    auto out = second.output();
    auto a1 = out.find(": away-1");
    auto a2 = out.find(": away-2");
    auto a3 = out.find(": away-3");
    REQUIRE(a1 != std::string::npos);
    REQUIRE(a2 != std::string::npos);
    CHECK(a1 < a2);
    CHECK(a2 < a3);
    // Acked before the kill: not handed out again.
    CHECK(out.find(": live-1") == std::string::npos);
  }

  // The store goes away: sends are accepted and wait; the node is degraded.
  store.stop();
  for (int i = 1; i <= 3; ++i)
    REQUIRE_FALSE(na.send("inbox", "outage-" + std::to_string(i),
                          durable()));
  CHECK(eventually([&] { return na.health().status == "degraded"; }, 10s));
  store.start();
  {
    INFO(second.output());
    REQUIRE(second.wait_for_output(": outage-3", 20s));
    auto out = second.output();
    CHECK(out.find(": outage-1") < out.find(": outage-2"));
    CHECK(out.find(": outage-2") < out.find(": outage-3"));
    for (auto x : {": away-1", ": away-2", ": away-3", ": outage-1",
                   ": outage-2", ": outage-3"})
      CHECK(count_of(out, x) == 1);
  }
  CHECK(eventually([&] { return na.health().status == "healthy"; }, 15s));
  second.signal(SIGTERM);
  CHECK(second.wait(10s) == std::optional<int>{0});
}
