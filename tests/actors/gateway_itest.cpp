#include <algorithm>
#include <atomic>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "actors/gateway.hpp"
#include "cluster/nats_client.hpp"
#include "messages/codec.hpp"
#include "messages/ids.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::fresh_prefix;
using nova::testing::nats_config;
using nova::testing::eventually;
using nova::testing::make_sink;
using nova::testing::nats_server;
using nova::testing::recorder;

namespace {

/// Waits until `n` sees `id` as a Nova on another node.
bool knows(node& n, const std::string& id) {
  return eventually([&] { return n.context().bus->knows(id); }, 5s);
}

class script : public agent {
public:
  using body = std::function<void(script&)>;
  script(caf::actor_config& cfg, agent_init init, body f,
         nova::testing::envelope_sink out)
    : agent(cfg, std::move(init)), f_(std::move(f)), out_(std::move(out)) {
    // nop
  }
  void record(envelope e) {
    out_->push(std::move(e));
  }
  void record_error(const caf::error& err) {
    envelope e;
    e.payload = "error:" + describe(err);
    out_->push(std::move(e));
  }

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "go")
      f_(*this);
    else
      out_->push(msg);
  }

private:
  body f_;
  nova::testing::envelope_sink out_;
};

} // namespace

TEST_CASE("Novas on two nodes exchange direct messages and requests through "
          "NATS",
          "[gateway]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node a{nats_config("node-a", srv.url(), pfx)};
  node b{nats_config("node-b", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("bob", {}, got));
  REQUIRE(knows(a, "bob"));
  REQUIRE(!a.send("bob", "over the wire"));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "over the wire");
  CHECK(xs[0].from == "anonymous");
  CHECK(xs[0].to == "bob");
  CHECK(xs[0].id.size() == 26);
  auto r = a.request("bob", "ping", 2s);
  REQUIRE(r);
  CHECK(r->payload == "re:ping");
  CHECK(r->from == "bob");
  CHECK(r->kind == kind::response);
  // From a Nova on node a, with the reply's correlation id.
  auto out = make_sink();
  REQUIRE(a.spawn<script>(
    "alice", {},
    script::body{[](script& self) {
      if (auto err = self.send("bob", "hi from alice"))
        self.record_error(err);
      self.request("bob", "q", 2s)
        .then([&self](const envelope& r) { self.record(r); },
              [&self](const caf::error& e) { self.record_error(e); });
      self.request("nobody-anywhere", "q", 2s)
        .then([&self](const envelope& r) { self.record(r); },
              [&self](const caf::error& e) { self.record_error(e); });
    }},
    out));
  REQUIRE(!a.send("alice", "go"));
  auto ys = out->wait_for(2);
  REQUIRE(ys.size() == 2);
  std::set<std::string> answers{ys[0].payload, ys[1].payload};
  CHECK(answers.count("re:q") == 1);
  CHECK(std::any_of(answers.begin(), answers.end(), [](const std::string& s) {
    return s.rfind("error:unknown_nova", 0) == 0;
  }));
  // bob recorded both requests too: ping, hi from alice, q.
  REQUIRE(got->wait_for(4).size() == 4);
  auto bs = got->items();
  CHECK(std::any_of(bs.begin(), bs.end(), [](const envelope& e) {
    return e.from == "alice" && e.payload == "hi from alice"
           && e.kind == kind::direct;
  }));
  CHECK(a.stats().get(counter::wire_out) >= 3);
  CHECK(b.stats().get(counter::wire_in) >= 3);
}

namespace {

class slow_replier : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_request(const envelope& req) override {
    std::this_thread::sleep_for(500ms);
    return req.payload;
  }
};

} // namespace

TEST_CASE("a request across nodes times out with a clear error", "[gateway]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  // The replier blocks its thread for 500 ms per request: with the tests'
  // 200 ms heartbeat a loaded machine can miss enough heartbeats for node a
  // to drop sloth (unknown_nova instead of a timeout).
  auto slow_heartbeats = [&](const char* id) {
    auto cfg = nats_config(id, srv.url(), pfx);
    cfg.limits.heartbeat_interval = 2s;
    return cfg;
  };
  node a{slow_heartbeats("node-a")};
  node b{slow_heartbeats("node-b")};
  REQUIRE(b.spawn<slow_replier>("sloth"));
  REQUIRE(knows(a, "sloth"));
  // Presence can arrive before the server has the inbox subscription of
  // the other node's connection: one answered request proves it has.
  REQUIRE(a.request("sloth", "warm-up", 5s));
  auto r = a.request("sloth", "x", 100ms);
  REQUIRE(!r);
  INFO(describe(r.error()));
  CHECK(is(r.error(), errc::request_timeout));
  auto ok = a.request("sloth", "y", 3s);
  REQUIRE(ok);
  CHECK(ok->payload == "y");
}

TEST_CASE("broadcast, multicast, events and emergencies reach Novas on every "
          "node exactly once",
          "[gateway]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node a{nats_config("node-a", srv.url(), pfx)};
  node b{nats_config("node-b", srv.url(), pfx)};
  auto a1 = make_sink();
  auto b1 = make_sink();
  auto b2 = make_sink();
  REQUIRE(a.spawn<recorder>("a1", {{}, {"red"}}, a1));
  REQUIRE(b.spawn<recorder>("b1", {{}, {"red"}}, b1));
  REQUIRE(b.spawn<recorder>("b2", {{}, {"blue"}}, b2));
  auto evs = make_sink();
  REQUIRE(b.spawn<script>("sub", {},
                          script::body{[](script&) {}}, evs));
  // Subscribe from inside the Nova: a rule for orders.* on node b.
  REQUIRE(b.spawn<script>(
    "ruler", {},
    script::body{[evs](script& self) {
      REQUIRE(!self.subscribe("orders.*", [evs](const envelope& e) {
        evs->push(e);
      }));
      REQUIRE(!self.subscribe("orders.>", [evs](const envelope& e) {
        auto c = e;
        c.payload = "deep:" + e.payload;
        evs->push(c);
      }));
    }},
    evs));
  REQUIRE(!b.send("ruler", "go"));
  REQUIRE(eventually([&] {
    return b.context().directory.subscribers("orders.new").size() == 1;
  }));
  REQUIRE(knows(a, "b1"));
  REQUIRE(!a.broadcast("to all"));
  REQUIRE(!a.multicast("red", "to reds"));
  REQUIRE(!a.publish("orders.new", "o1"));
  REQUIRE(!a.publish("orders.eu.new", "o2"));
  REQUIRE(!a.emergency("fire"));
  REQUIRE(a1->wait_for(3).size() == 3); // broadcast, multicast, emergency
  REQUIRE(b1->wait_for(3).size() == 3);
  REQUIRE(b2->wait_for(2).size() == 2); // broadcast, emergency
  REQUIRE(evs->wait_for(3).size() == 3);
  std::this_thread::sleep_for(200ms); // nothing more may arrive
  CHECK(a1->size() == 3);
  CHECK(b1->size() == 3);
  CHECK(b2->size() == 2);
  auto es = evs->items();
  REQUIRE(es.size() == 3);
  std::multiset<std::string> payloads;
  for (const auto& e : es) {
    payloads.insert(e.payload);
    CHECK(e.kind == kind::event);
    CHECK(e.from == "anonymous");
  }
  CHECK(payloads == std::multiset<std::string>{"o1", "deep:o1", "deep:o2"});
  auto bs = b1->items();
  CHECK(std::any_of(bs.begin(), bs.end(), [](const envelope& e) {
    return e.kind == kind::multicast && e.to == "red"
           && e.payload == "to reds";
  }));
  CHECK(std::any_of(bs.begin(), bs.end(), [](const envelope& e) {
    return e.kind == kind::emergency && e.payload == "fire";
  }));
}

TEST_CASE("Novas with one capability on several nodes share work: each "
          "message goes to exactly one",
          "[gateway]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node a{nats_config("node-a", srv.url(), pfx)};
  node b{nats_config("node-b", srv.url(), pfx)};
  node c{nats_config("node-c", srv.url(), pfx)};
  auto sa = make_sink();
  auto sb = make_sink();
  agent_options work;
  work.capabilities = {"resize"};
  REQUIRE(a.spawn<recorder>("wa", work, sa));
  REQUIRE(b.spawn<recorder>("wb", work, sb));
  REQUIRE(knows(c, "wa"));
  REQUIRE(knows(c, "wb"));
  auto out = make_sink();
  REQUIRE(c.spawn<script>(
    "client", {},
    script::body{[](script& self) {
      for (int i = 0; i < 200; ++i)
        if (auto err = self.send_any("resize", std::to_string(i)))
          self.record_error(err);
      self.request_any("resize", "which", 2s)
        .then([&self](const envelope& r) { self.record(r); },
              [&self](const caf::error& e) { self.record_error(e); });
    }},
    out));
  REQUIRE(!c.send("client", "go"));
  auto rs = out->wait_for(1);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].payload == "re:which");
  REQUIRE(eventually([&] { return sa->size() + sb->size() == 201; }));
  std::set<std::string> seen;
  for (auto* s : {&sa, &sb})
    for (const auto& e : (*s)->items())
      seen.insert(e.payload);
  CHECK(seen.size() == 201);
  CHECK(sa->size() > 20);
  CHECK(sb->size() > 20);
}

TEST_CASE("a plain NATS client talks JSON to a Nova", "[gateway][json]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node b{nats_config("node-b", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("bob", {}, got));
  auto settings = nats_settings::from_url(srv.url());
  REQUIRE(settings);
  auto client = nats_client::connect(*settings);
  REQUIRE(client);
  auto& c = **client;
  nova::headers json{{"Content-Type", "application/json"}};
  // A JSON request gets a JSON reply: the recorder answers "re:" + payload,
  // which is not JSON, so it comes back as a JSON string. Until bob's inbox
  // is subscribed the server reports no responders.
  caf::expected<nats_message> r{caf::error{}};
  REQUIRE(eventually([&] {
    r = c.request(pfx + ".inbox.bob", R"([1,2,3])", json, 2s);
    return static_cast<bool>(r);
  }));
  auto j = nlohmann::json::parse(r->data);
  CHECK(j == "re:[1,2,3]");
  CHECK(r->headers.at("Content-Type") == "application/json");
  CHECK(r->headers.count("Nova-Correlation-Id") == 1);
  auto before = got->size();
  // Any JSON value becomes the payload of an envelope from anonymous.
  REQUIRE(!c.publish(pfx + ".inbox.bob", R"({"hello":"world"})", json));
  // A canonical-JSON Envelope keeps its fields (payload is base64).
  REQUIRE(!c.publish(pfx + ".inbox.bob",
                     R"({"from":"js-client","payload":"aGk=","priority":"PRIORITY_HIGH"})",
                     json));
  auto xs = got->wait_for(before + 2);
  REQUIRE(xs.size() == before + 2);
  CHECK(xs[before].payload == R"({"hello":"world"})");
  CHECK(xs[before].from == "anonymous");
  CHECK(xs[before].content_type == "application/json");
  CHECK(xs[before + 1].payload == "hi");
  CHECK(xs[before + 1].from == "js-client");
  CHECK(xs[before + 1].priority == priority::high);
  // Errors come back as JSON too.
  REQUIRE(b.spawn("mute"));
  caf::expected<nats_message> e{caf::error{}};
  REQUIRE(eventually([&] {
    // Until its inbox is subscribed the server reports no responders.
    e = c.request(pfx + ".inbox.mute", R"({"q":1})", json, 2s);
    return static_cast<bool>(e);
  }));
  auto ej = nlohmann::json::parse(e->data);
  CHECK(ej["error"]["code"] == "no_handler");
  // An object with other keys is a payload, even if it has a "to".
  auto plain = c.request(pfx + ".inbox.bob", R"({"to":"x","v":1})", json, 2s);
  REQUIRE(plain);
  CHECK(nlohmann::json::parse(plain->data) == R"(re:{"to":"x","v":1})");
  // An Envelope that does not decode gets an error reply, not a timeout.
  auto broken = c.request(pfx + ".inbox.bob",
                          R"({"payload":"aGk=","kind":"KIND_NONSENSE"})",
                          json, 2s);
  REQUIRE(broken);
  CHECK(nlohmann::json::parse(broken->data)["error"]["code"]
        == "decode_failed");
  // Nobody listening: the server says so at once.
  auto none = c.request(pfx + ".inbox.ghost", "{}", json, 2s);
  REQUIRE(!none);
  CHECK(is(none.error(), errc::unknown_nova));
}

TEST_CASE("bad input from the wire is counted and dropped without harm",
          "[gateway]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto cfg = nats_config("node-b", srv.url(), pfx);
  cfg.limits.max_payload = 1024;
  node b{cfg};
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("bob", {}, got));
  auto settings = nats_settings::from_url(srv.url());
  auto client = nats_client::connect(*settings);
  REQUIRE(client);
  auto& c = **client;
  // Wait until bob's inbox is subscribed (a request then finds him).
  envelope probe;
  probe.from = "probe";
  REQUIRE(eventually([&] {
    return static_cast<bool>(
      c.request(pfx + ".inbox.bob", encode(probe), {}, 2s));
  }));
  auto before = got->size();
  REQUIRE(!c.publish(pfx + ".inbox.bob", std::string("\xff\x01garbage", 9)));
  REQUIRE(!c.publish(pfx + ".inbox.bob", "{not json",
                     {{"Content-Type", "application/json"}}));
  envelope bad_from;
  bad_from.from = "evil.sender";
  bad_from.payload = "x";
  REQUIRE(!c.publish(pfx + ".inbox.bob", encode(bad_from)));
  envelope big;
  big.from = "big";
  big.payload = std::string(4096, 'x');
  REQUIRE(!c.publish(pfx + ".inbox.bob", encode(big)));
  REQUIRE(!c.publish(pfx + ".broadcast.all", "junk"));
  envelope fine;
  fine.from = "good";
  fine.payload = "still works";
  REQUIRE(!c.publish(pfx + ".inbox.bob", encode(fine)));
  auto xs = got->wait_for(before + 1);
  REQUIRE(xs.size() == before + 1);
  CHECK(xs[before].payload == "still works");
  REQUIRE(eventually([&] {
    return b.stats().get(counter::decode_errors) == 3
           && b.stats().get(counter::wire_rejected) == 2;
  }));
  CHECK(b.novas() == std::vector<std::string>{"bob"});
}

TEST_CASE("presence crosses nodes: discover finds remote Novas and a stopped "
          "one turns offline",
          "[gateway][presence]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node a{nats_config("node-a", srv.url(), pfx)};
  node b{nats_config("node-b", srv.url(), pfx)};
  agent_options tr;
  tr.capabilities = {"translate"};
  REQUIRE(b.spawn("tb", tr));
  REQUIRE(eventually([&] {
    auto xs = a.discover("translate");
    return xs && xs->size() == 1 && (*xs)[0].node_id == "node-b";
  }));
  REQUIRE(!b.stop("tb"));
  REQUIRE(eventually([&] {
    auto xs = a.discover("translate");
    return xs && xs->empty();
  }));
  CHECK(!a.context().bus->knows("tb"));
}

TEST_CASE("a node whose NATS server restarts keeps running, queues what it "
          "sends and delivers it in order afterwards",
          "[gateway][fault]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto cfg_a = nats_config("node-a", srv.url(), pfx);
  cfg_a.limits.outbox_capacity = 50;
  node a{cfg_a};
  node b{nats_config("node-b", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("bob", {}, got));
  REQUIRE(knows(a, "bob"));
  CHECK(a.health().status == "healthy");
  srv.stop();
  REQUIRE(eventually([&] { return a.health().status == "degraded"; }));
  for (int i = 0; i < 50; ++i)
    REQUIRE(!a.send("bob", std::to_string(i)));
  CHECK(a.health().outbox_depth == 50);
  // The outbox is full now: a clear error, nothing dropped silently.
  CHECK(is(a.send("bob", "one too many"), errc::queue_full));
  CHECK(a.stats().get(counter::outbox_full) == 1);
  srv.start();
  auto xs = got->wait_for(50, 15s);
  REQUIRE(xs.size() == 50);
  for (int i = 0; i < 50; ++i)
    CHECK(xs[i].payload == std::to_string(i));
  REQUIRE(eventually([&] { return a.health().status == "healthy"; }));
  CHECK(a.health().outbox_depth == 0);
  CHECK(a.stats().get(counter::reconnects) >= 1);
}

TEST_CASE("a local Nova's presence goes out only once the gateway subscribed "
          "its inbox",
          "[gateway][presence]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  node b{nats_config("node-b", srv.url(), pfx)};
  auto settings = nats_settings::from_url(srv.url());
  REQUIRE(settings);
  auto client = nats_client::connect(*settings);
  REQUIRE(client);
  nova::testing::sink<std::string> heard;
  auto sub = (*client)->subscribe(pfx + ".presence.*", [&](nats_message&& m) {
    auto p = decode<presence>(m.bytes());
    if (p)
      heard.push(p->nova_id + ":" + to_string(p->status));
  });
  REQUIRE(sub);
  REQUIRE_FALSE((*client)->flush(2s));
  auto got = make_sink();
  REQUIRE(b.spawn<recorder>("bob", {}, got));
  // The gateway announces bob once its inbox is subscribed.
  REQUIRE(heard.wait_until([](const std::vector<std::string>& xs) {
    return std::find(xs.begin(), xs.end(), "bob:online") != xs.end();
  }));
  // What the presence monitor says of a local Nova whose inbox the gateway
  // has not subscribed (its heartbeats can be quicker than the gateway)
  // stays here: whoever heard of it would send into a subject without
  // subscribers, and NATS drops what nobody listens to.
  auto& bus = *b.context().bus;
  presence ghost;
  ghost.nova_id = "ghost";
  ghost.node_id = "node-b";
  ghost.status = presence_status::online;
  ghost.last_seen = now_ms();
  bus.publish_presence(ghost);
  // Going offline needs no inbox.
  ghost.status = presence_status::offline;
  bus.publish_presence(ghost);
  // Behind both on the same connection: a subscribed Nova's heartbeat.
  presence bob;
  bob.nova_id = "bob";
  bob.node_id = "node-b";
  bob.status = presence_status::busy;
  bob.last_seen = now_ms();
  bus.publish_presence(bob);
  REQUIRE(heard.wait_until([](const std::vector<std::string>& xs) {
    return std::find(xs.begin(), xs.end(), "bob:busy") != xs.end();
  }));
  auto xs = heard.items();
  CHECK(std::count(xs.begin(), xs.end(), "ghost:online") == 0);
  CHECK(std::count(xs.begin(), xs.end(), "ghost:offline") == 1);
}
