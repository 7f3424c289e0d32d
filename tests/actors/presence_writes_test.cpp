#include <catch2/catch.hpp>

#include "actors/presence_monitor.hpp"

using namespace nova;

namespace {

presence nova_with(std::string id, presence_status st
                                   = presence_status::online) {
  presence p;
  p.nova_id = std::move(id);
  p.node_id = "node-1";
  p.status = st;
  return p;
}

} // namespace

TEST_CASE("queued heartbeats keep the latest per Nova and wait for the tick "
          "unless they are news",
          "[presence]") {
  presence_writes w;
  CHECK(w.empty());
  CHECK(!w.urgent());
  w.heartbeat(nova_with("a"), false);
  w.heartbeat(nova_with("a", presence_status::busy), false);
  w.heartbeat(nova_with("b"), false);
  CHECK(!w.urgent());
  auto b = w.take();
  REQUIRE(b.heartbeats.size() == 2);
  CHECK(b.heartbeats[0].nova_id == "a");
  CHECK(b.heartbeats[0].status == presence_status::busy);
  CHECK(b.leaves.empty());
  CHECK(w.empty());
  w.heartbeat(nova_with("c"), true);
  CHECK(w.urgent());
  static_cast<void>(w.take());
  CHECK(!w.urgent());
}

TEST_CASE("a leave replaces a queued heartbeat and a heartbeat cancels a "
          "queued leave",
          "[presence]") {
  presence_writes w;
  w.heartbeat(nova_with("a"), false);
  w.leave("a");
  CHECK(w.urgent());
  auto b = w.take();
  CHECK(b.heartbeats.empty());
  CHECK(b.leaves == std::vector<std::string>{"a"});
  w.leave("b");
  w.heartbeat(nova_with("b"), false);
  b = w.take();
  CHECK(b.leaves.empty());
  REQUIRE(b.heartbeats.size() == 1);
  CHECK(b.heartbeats[0].nova_id == "b");
}

TEST_CASE("leaves of a failed write come back unless the Nova heartbeat "
          "again meanwhile",
          "[presence]") {
  presence_writes w;
  w.leave("a");
  w.leave("b");
  auto b = w.take();
  CHECK(w.empty());
  w.heartbeat(nova_with("b"), false);
  w.restore(b.leaves);
  CHECK(w.urgent());
  auto again = w.take();
  CHECK(again.leaves == std::vector<std::string>{"a"});
  REQUIRE(again.heartbeats.size() == 1);
  CHECK(again.heartbeats[0].nova_id == "b");
}
