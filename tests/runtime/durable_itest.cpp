#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "actors/durable_service.hpp"
#include "cluster/durable_store.hpp"
#include "cluster/naming.hpp"
#include "cluster/redis_client.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/redis_server.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::fresh_prefix;
using nova::testing::make_sink;
using nova::testing::nats_server;
using nova::testing::recorder;
using nova::testing::redis_server;

namespace {

config durable_config(const std::string& node_id, const std::string& url,
                      const std::string& prefix) {
  auto cfg = nova::testing::test_config();
  cfg.node_id = node_id;
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = url;
  cfg.prefix = prefix;
  return cfg;
}

send_options durable() {
  send_options opts;
  opts.durable = true;
  return opts;
}

std::vector<std::string> payloads(const std::vector<envelope>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs)
    out.push_back(x.payload);
  return out;
}

std::shared_ptr<durable_store> open_store(const std::string& url,
                                          const std::string& prefix) {
  auto rs = redis_settings::from_url(url);
  REQUIRE(rs);
  auto pool = redis_pool::make(*rs);
  REQUIRE(pool);
  auto names = naming::make(prefix);
  REQUIRE(names);
  auto store = durable_store::make(
    std::make_shared<redis_pool>(std::move(*pool)), *names);
  REQUIRE(store);
  return *store;
}

} // namespace

TEST_CASE("a durable send to a Nova that is not up yet arrives, in order, "
          "when it comes up",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  node n{durable_config("node-a", srv.url(), pfx)};
  for (int i = 0; i < 5; ++i)
    REQUIRE_FALSE(n.send("late", "m" + std::to_string(i), durable()));
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("late", {}, got));
  auto first = got->wait_for(5);
  CHECK(payloads(first)
        == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"});
  // Once up, durable sends reach it as they are written.
  REQUIRE_FALSE(n.send("late", "m5", durable()));
  auto all = got->wait_for(6);
  REQUIRE(all.size() == 6);
  CHECK(all[5].payload == "m5");
  CHECK(all[5].kind == kind::direct);
  CHECK(all[5].from == "anonymous");
  CHECK(n.stats().get(counter::durable_sent) == 6);
  CHECK(nova::testing::eventually(
    [&] { return n.stats().get(counter::durable_received) == 6; }));
}

TEST_CASE("what a Nova acked is not delivered again after the node restarts",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  {
    node n{durable_config("node-a", srv.url(), pfx)};
    auto got = make_sink();
    REQUIRE(n.spawn<recorder>("keeper", {}, got));
    for (int i = 0; i < 3; ++i)
      REQUIRE_FALSE(n.send("keeper", "first" + std::to_string(i), durable()));
    REQUIRE(got->wait_for(3).size() == 3);
  }
  node n{durable_config("node-a", srv.url(), pfx)};
  REQUIRE_FALSE(n.send("keeper", "second", durable()));
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("keeper", {}, got));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "second");
  // Nothing else trickles in.
  CHECK(got->wait_for(2, 300ms).size() == 1);
}

TEST_CASE("an envelope written twice to a durable inbox is handled once",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  auto store = open_store(srv.url(), pfx);
  envelope env;
  env.id = next_message_id(&env.created_at);
  env.from = "writer";
  env.to = "reader";
  env.kind = kind::direct;
  env.payload = "once";
  REQUIRE(store->append(env));
  REQUIRE(store->append(env)); // the retry of an at-least-once sender
  node n{durable_config("node-a", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("reader", {}, got));
  REQUIRE(got->wait_for(1).size() == 1);
  CHECK(nova::testing::eventually(
    [&] { return n.stats().get(counter::durable_duplicates) == 1; }));
  CHECK(got->size() == 1);
}

TEST_CASE("durable sends from Novas, broadcasts and events go to the "
          "streams and are delivered",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  node n{durable_config("node-a", srv.url(), pfx)};
  auto got = make_sink();
  agent_options opts;
  opts.groups = {"ops"};
  REQUIRE(n.spawn<recorder>("sink", opts, got));
  REQUIRE_FALSE(n.broadcast("to-all", durable()));
  REQUIRE_FALSE(n.multicast("ops", "to-ops", durable()));
  auto xs = got->wait_for(2);
  REQUIRE(xs.size() == 2);
  auto store = open_store(srv.url(), pfx);
  CHECK(nova::testing::eventually([&] {
    auto a = store->length(pfx + ".broadcast.all");
    auto b = store->length(pfx + ".group.ops");
    return a && *a == 1 && b && *b == 1;
  }));
}

TEST_CASE("durable delivery needs a store and is for one-way sends",
          "[durable]") {
  node n{nova::testing::test_config()};
  auto err = n.send("anyone", "x", durable());
  REQUIRE(err);
  CHECK(is(err, errc::unsupported));
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  node s{durable_config("node-a", srv.url(), fresh_prefix())};
  auto bad = s.send("not valid!", "x", durable());
  REQUIRE(bad);
  CHECK(is(bad, errc::invalid_id));
  auto big = s.send("fine", std::string(s.context().limits.max_payload + 1,
                                        'x'),
                    durable());
  REQUIRE(big);
  CHECK(is(big, errc::payload_too_large));
}

TEST_CASE("durable sends wait while the store is down and arrive once it "
          "is back",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  node n{durable_config("node-a", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("patient", {}, got));
  REQUIRE_FALSE(n.send("patient", "before", durable()));
  REQUIRE(got->wait_for(1).size() == 1);
  srv.stop();
  for (int i = 0; i < 20; ++i)
    REQUIRE_FALSE(n.send("patient", "during" + std::to_string(i),
                         durable()));
  CHECK(nova::testing::eventually(
    [&] { return n.health().status == "degraded"; }));
  srv.start();
  auto xs = got->wait_for(21, 15s);
  REQUIRE(xs.size() == 21);
  for (int i = 0; i < 20; ++i)
    CHECK(xs[i + 1].payload == "during" + std::to_string(i));
  CHECK(nova::testing::eventually(
    [&] { return n.health().status == "healthy"; }, 10s));
}

TEST_CASE("a durable send to a Nova on another node is read from its inbox "
          "there, also after it was offline",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  NOVA_REQUIRE_NATS_SERVER();
  redis_server srv;
  nats_server nats;
  auto pfx = fresh_prefix();
  auto cfg_a = nova::testing::nats_config("node-a", nats.url(), pfx);
  cfg_a.store = store_kind::redis;
  cfg_a.dragonfly_url = srv.url();
  auto cfg_b = cfg_a;
  cfg_b.node_id = "node-b";
  node a{cfg_a};
  node b{cfg_b};
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("far", {}, got));
  CHECK(nova::testing::eventually(
    [&] { return a.context().bus && a.context().bus->knows("far"); }));
  REQUIRE_FALSE(a.send("far", "live", durable()));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "live");
  CHECK(xs[0].headers.count(durable_header) == 0);
  REQUIRE_FALSE(b.stop("far"));
  CHECK(nova::testing::eventually([&] { return !b.context().directory.find("far"); }));
  REQUIRE_FALSE(a.send("far", "while-away", durable()));
  auto again = make_sink();
  REQUIRE(b.spawn<recorder>("far", {}, again));
  auto ys = again->wait_for(1);
  REQUIRE(ys.size() == 1);
  CHECK(ys[0].payload == "while-away");
  CHECK(got->size() == 1);
}

namespace {

/// Replays a stream from inside a Nova when told "go <stream>" and records
/// the payloads (or the error) it gets back.
class replayer : public agent {
public:
  replayer(caf::actor_config& cfg, agent_init init,
           std::shared_ptr<nova::testing::sink<std::string>> out)
    : agent(cfg, std::move(init)), out_(std::move(out)) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    auto stream = msg.payload.substr(3);
    replay(
      stream, "-",
      [this](caf::expected<std::vector<stored_envelope>> r) {
        if (!r) {
          out_->push("error:" + std::string{to_string(code_of(r.error()))});
          return;
        }
        for (auto& x : *r)
          out_->push(x.env.payload);
        out_->push("end");
      },
      "billing.*");
  }

private:
  std::shared_ptr<nova::testing::sink<std::string>> out_;
};

} // namespace

TEST_CASE("a Nova and the node replay a durable stream filtered by subject",
          "[durable]") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto pfx = fresh_prefix();
  node n{durable_config("node-a", srv.url(), pfx)};
  REQUIRE_FALSE(n.publish("billing.paid", "p1", durable()));
  REQUIRE_FALSE(n.publish("billing.paid.late", "p2", durable()));
  REQUIRE_FALSE(n.publish("billing.refund", "p3", durable()));
  auto stream = pfx + ".events.billing";
  CHECK(nova::testing::eventually([&] {
    auto xs = n.replay(stream, "-");
    return xs && xs->size() == 3;
  }));
  auto some = n.replay(stream, "-", "billing.*");
  REQUIRE(some);
  REQUIRE(some->size() == 2);
  CHECK((*some)[0].env.payload == "p1");
  CHECK((*some)[1].env.payload == "p3");
  auto out = std::make_shared<nova::testing::sink<std::string>>();
  REQUIRE(n.spawn<replayer>("historian", {}, out));
  REQUIRE_FALSE(n.send("historian", "go " + stream));
  auto got = out->wait_for(3);
  CHECK(got == std::vector<std::string>{"p1", "p3", "end"});
  node bare{nova::testing::test_config()};
  auto none = bare.replay(stream, "-");
  REQUIRE_FALSE(none);
  CHECK(is(none.error(), errc::unsupported));
}
