// The node's HTTP surface against real servers: JSON-RPC 2.0 conformance and
// limits, health as NATS and the store come and go, Prometheus metrics, and
// the WebSocket feed.
#include <catch2/catch.hpp>

#include <regex>
#include <sstream>

#include "actors/builtin.hpp"
#include "runtime/node.hpp"
#include "support/http_client.hpp"
#include "support/nats_server.hpp"
#include "support/redis_server.hpp"
#include "support/test_node.hpp"

using namespace nova;
using nova::testing::eventually;
using nova::testing::http_get;
using nova::testing::http_post;
using nova::testing::port_of;
using nova::testing::rpc;
using nova::testing::ws_client;
using json = nlohmann::json;

namespace {

config served_config(std::string node_id = "http-node") {
  auto cfg = nova::testing::test_config();
  cfg.node_id = std::move(node_id);
  cfg.http.address = "127.0.0.1:0";
  return cfg;
}

/// A served node keeping tasks, presence and durable inboxes in `redis`.
config store_served_config(const nova::testing::redis_server& redis) {
  auto cfg = served_config();
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = redis.url();
  cfg.prefix = nova::testing::fresh_prefix();
  return cfg;
}

/// A node with an echo Nova `alice`, a worker `w1` and a logger `bob`.
struct served_node {
  explicit served_node(config cfg = served_config()) : n(std::move(cfg)) {
    agent_options echo;
    echo.capabilities = {"echo"};
    REQUIRE(n.spawn<echo_agent>("alice", echo));
    agent_options worker;
    worker.worker = true;
    worker.capabilities = {"worker"};
    REQUIRE(n.spawn<worker_agent>("w1", worker));
    REQUIRE(n.spawn<logger_agent>("bob"));
    port = port_of(n.http_address());
  }

  node n;
  uint16_t port = 0;
};

int error_code(const json& response) {
  return response.at("error").at("code").get<int>();
}

/// Still serving: hub.info answers.
bool serves(uint16_t port) {
  auto r = rpc(port, "hub.info");
  return r.contains("result") && r["result"]["status"] == "running";
}

/// The value of one sample line (`name{labels} value`) in metrics text.
std::optional<double> sample(const std::string& text, const std::string& key) {
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + " ", 0) == 0)
      return std::stod(line.substr(key.size() + 1));
  return std::nullopt;
}

} // namespace

TEST_CASE("JSON-RPC: the hub, bus, Nova, task and presence methods answer",
          "[http]") {
  served_node s;
  auto p = s.port;

  auto info = rpc(p, "hub.info");
  CHECK(info["jsonrpc"] == "2.0");
  CHECK(info["id"] == 1);
  CHECK(info["result"]["node_id"] == "http-node");
  CHECK(info["result"]["hub_id"] == "http-node");
  CHECK(info["result"]["novas"] == 3);

  auto health = rpc(p, "hub.health");
  CHECK(health["result"]["status"] == "healthy");
  CHECK(health["result"]["services"]["store"] == "healthy");

  auto list = rpc(p, "nova.list");
  CHECK(list["result"]["novas"] == json({"alice", "bob", "w1"}));

  auto reply = rpc(p, "nova.request",
                   {{"to", "alice"}, {"payload", {{"question", 42}}}});
  CHECK(reply["result"]["from"] == "alice");
  CHECK(reply["result"]["payload"] == json({{"question", 42}}));
  auto text = rpc(p, "nova.request", {{"to", "alice"}, {"payload", "hi"}});
  CHECK(text["result"]["payload"] == "hi");

  auto sent = rpc(p, "nova.send", {{"to", "bob"}, {"payload", "hello"}});
  CHECK(sent["result"]["sent"] == true);
  CHECK(rpc(p, "nova.broadcast", {{"payload", "all"}})["result"]["sent"]
        == true);

  auto pub = rpc(p, "bus.publish",
                 {{"topic", "orders.created"}, {"payload", {{"n", 7}}},
                  {"correlation_id", "corr-1"}});
  CHECK(pub["result"]["published"] == true);
  CHECK(pub["result"]["subject"] == "nova.events.orders.created");
  CHECK(pub["result"]["correlation_id"] == "corr-1");
  rpc(p, "bus.publish", {{"topic", "users.joined"}, {"payload", "x"}});
  auto events = rpc(p, "bus.subscribe", {{"subject", "orders.*"}, {"limit", 10}});
  REQUIRE(events["result"]["count"] == 1);
  auto ev = events["result"]["events"][0];
  CHECK(ev["subject"] == "orders.created");
  CHECK(ev["payload"] == json({{"n", 7}}));
  CHECK(ev["correlation_id"] == "corr-1");
  CHECK(ev["origin"]["nova_id"] == "anonymous");
  CHECK(rpc(p, "bus.subscribe", {{"subject", ">"}})["result"]["count"] == 2);

  auto enq = rpc(p, "tasks.enqueue", {{"type", "echo"},
                                      {"payload", {{"k", 1}}},
                                      {"priority", "high"},
                                      {"session", "s1"}});
  REQUIRE(enq.contains("result"));
  auto task_id = enq["result"]["task_id"].get<std::string>();
  CHECK_FALSE(task_id.empty());
  auto got = rpc(p, "tasks.collect",
                 {{"session", "s1"}, {"count", 1}, {"timeout_ms", 10000}});
  REQUIRE(got["result"]["count"] == 1);
  CHECK(got["result"]["results"][0]["task_id"] == task_id);
  CHECK(got["result"]["results"][0]["status"] == "done");

  // A failing task ends as a dead letter; redrive puts it back.
  rpc(p, "tasks.enqueue", {{"type", "fail"}, {"payload", "x"}});
  REQUIRE(eventually(
    [&] { return rpc(p, "tasks.stats")["result"]["dead"] == 1; },
    std::chrono::seconds(20)));
  auto stats = rpc(p, "tasks.stats")["result"];
  CHECK(stats["lanes"].contains("urgent"));
  CHECK(stats["done"].get<int>() >= 1);
  auto dead = rpc(p, "tasks.dead.list", {{"limit", 10}});
  REQUIRE(dead["result"]["count"] == 1);
  CHECK(dead["result"]["tasks"][0]["type"] == "fail");
  auto redriven = rpc(p, "tasks.dead.redrive");
  CHECK(redriven["result"]["redriven"] == 1);

  auto presence = rpc(p, "presence.list");
  REQUIRE(presence["result"]["count"] == 3);
  CHECK(presence["result"]["novas"][0].contains("capabilities"));
  auto echoes = rpc(p, "presence.list", {{"capability", "echo"}});
  REQUIRE(echoes["result"]["count"] == 1);
  CHECK(echoes["result"]["novas"][0]["nova_id"] == "alice");
  CHECK(rpc(p, "presence.list", {{"status", "offline"}})["result"]["count"]
        == 0);
}

TEST_CASE("JSON-RPC: every error code, with the node serving afterwards",
          "[http]") {
  served_node s;
  auto p = s.port;

  SECTION("-32700 for a body that is not JSON or not UTF-8") {
    CHECK(error_code(http_post(p, "/rpc", "{not json").json()) == -32700);
    auto bad = std::string{R"({"jsonrpc":"2.0","id":1,"method":"hub.info",)"
                           R"("params":{"x":")"}
               + "\xff\xfe" + R"("}})";
    auto r = http_post(p, "/rpc", bad);
    CHECK(r.status == 200);
    CHECK(error_code(r.json()) == -32700);
    CHECK(r.json()["id"].is_null());
  }
  SECTION("-32600 for calls that are not JSON-RPC 2.0") {
    auto v1 = http_post(p, "/rpc",
                        R"({"jsonrpc":"1.0","id":3,"method":"hub.info"})")
                .json();
    CHECK(error_code(v1) == -32600);
    CHECK(v1["id"] == 3);
    CHECK(error_code(
            http_post(p, "/rpc", R"({"jsonrpc":"2.0","id":1,"method":5})")
              .json())
          == -32600);
    CHECK(error_code(http_post(p, "/rpc", R"({"jsonrpc":"2.0","id":1,)"
                                          R"("method":"hub.info",)"
                                          R"("params":"x"})")
                       .json())
          == -32600);
    CHECK(error_code(http_post(p, "/rpc", "[]").json()) == -32600);
    CHECK(error_code(http_post(p, "/rpc", "42").json()) == -32600);
    // Each bad entry of a batch gets its own error.
    auto batch = http_post(p, "/rpc", "[1, 2]").json();
    REQUIRE(batch.is_array());
    CHECK(batch.size() == 2);
    CHECK(error_code(batch[0]) == -32600);
  }
  SECTION("-32601 with the available methods") {
    auto r = rpc(p, "no.such.method");
    CHECK(error_code(r) == -32601);
    auto methods = r["error"]["data"]["available_methods"];
    REQUIRE(methods.is_array());
    for (auto m : {"bus.publish", "bus.subscribe", "hub.info", "hub.health",
                   "nova.send", "nova.request", "tasks.enqueue",
                   "tasks.stats", "tasks.dead.list", "tasks.dead.redrive",
                   "presence.list"})
      CHECK(std::find(methods.begin(), methods.end(), m) != methods.end());
  }
  SECTION("-32602 for missing, mistyped or invalid params") {
    CHECK(error_code(rpc(p, "nova.send", {{"payload", "x"}})) == -32602);
    CHECK(error_code(rpc(p, "nova.send", {{"to", 5}, {"payload", "x"}}))
          == -32602);
    auto bad_id = rpc(p, "nova.send", {{"to", "no/such"}, {"payload", "x"}});
    CHECK(error_code(bad_id) == -32602);
    CHECK(bad_id["error"]["data"]["reason"] == "invalid_id");
    CHECK(error_code(rpc(p, "tasks.enqueue", {{"type", "t"},
                                              {"priority", "asap"}}))
          == -32602);
    CHECK(error_code(rpc(p, "bus.subscribe", {{"limit", -1}})) == -32602);
    CHECK(error_code(rpc(p, "nova.list", json::array({1, 2}))) == -32602);
    CHECK(error_code(rpc(p, "bus.publish", {{"topic", "nodots"},
                                            {"payload", 1}}))
          == -32602);
  }
  SECTION("-32603 when the runtime fails") {
    // The worker answers no requests.
    auto r = rpc(p, "nova.request", {{"to", "w1"}, {"payload", "x"}});
    CHECK(error_code(r) == -32603);
    CHECK(r["error"]["data"]["reason"].is_string());
  }
  SECTION("notifications run and get no response") {
    auto r = http_post(p, "/rpc",
                       R"({"jsonrpc":"2.0","method":"bus.publish",)"
                       R"("params":{"topic":"notes.one","payload":1}})");
    CHECK(r.status == 204);
    CHECK(r.body.empty());
    CHECK(rpc(p, "bus.subscribe", {{"subject", "notes.*"}})["result"]["count"]
          == 1);
    auto mixed = http_post(
      p, "/rpc",
      R"([{"jsonrpc":"2.0","method":"bus.publish","params":{"topic":"notes.two","payload":2}},)"
      R"({"jsonrpc":"2.0","id":"a","method":"hub.info"},)"
      R"({"jsonrpc":"2.0","id":"b","method":"nope"}])");
    auto out = mixed.json();
    REQUIRE(out.size() == 2);
    CHECK(out[0]["id"] == "a");
    CHECK(out[1]["id"] == "b");
    CHECK(error_code(out[1]) == -32601);
    auto none = http_post(
      p, "/rpc", R"([{"jsonrpc":"2.0","method":"hub.info"}])");
    CHECK(none.status == 204);
  }
  SECTION("limits: body size, nesting depth, batch length") {
    auto big = std::string(2 * 1024 * 1024, 'a');
    auto r = http_post(p, "/rpc", big);
    CHECK(r.status == 413);
    CHECK(error_code(r.json()) == -32600);
    CHECK(serves(p));
    auto deep = std::string(10'000, '[') + std::string(10'000, ']');
    auto d = http_post(p, "/rpc", deep);
    CHECK(error_code(d.json()) == -32600);
    auto deep_obj = std::string{R"({"jsonrpc":"2.0","id":1,"method":"hub.info","params":{"x":)"}
                    + std::string(10'000, '[') + std::string(10'000, ']')
                    + "}}";
    CHECK(error_code(http_post(p, "/rpc", deep_obj).json()) == -32600);
    CHECK(serves(p));
    json huge = json::array();
    for (int i = 0; i < 101; ++i)
      huge.push_back({{"jsonrpc", "2.0"}, {"id", i}, {"method", "hub.info"}});
    CHECK(error_code(http_post(p, "/rpc", huge.dump()).json()) == -32600);
    huge.erase(huge.begin());
    CHECK(http_post(p, "/rpc", huge.dump()).json().size() == 100);
    CHECK(serves(p));
  }
  SECTION("HTTP errors: wrong method, unknown path") {
    CHECK(http_get(p, "/rpc").status == 405);
    CHECK(http_get(p, "/nope").status == 404);
    CHECK(serves(p));
  }
}

TEST_CASE("with a token, HTTP needs it except for liveness and readiness",
          "[http]") {
  auto cfg = served_config();
  cfg.http.token = "s3cret";
  served_node s{cfg};
  CHECK(http_post(s.port, "/rpc", R"({"jsonrpc":"2.0","id":1,"method":"hub.info"})")
          .status
        == 401);
  CHECK(http_get(s.port, "/metrics").status == 401);
  CHECK(http_get(s.port, "/metrics", "wrong").status == 401);
  CHECK(http_get(s.port, "/metrics", "s3cret").status == 200);
  CHECK(http_get(s.port, "/health?token=s3cret").status == 200);
  CHECK(http_get(s.port, "/health/live").status == 200);
  CHECK(http_get(s.port, "/health/ready").status == 200);
}

TEST_CASE("health turns degraded while nats-server or redis-server is down "
          "and healthy again after they restart",
          "[http]") {
  nova::testing::nats_server nats;
  nova::testing::redis_server redis;
  auto cfg = nova::testing::nats_config("health-node", nats.url(),
                                        nova::testing::fresh_prefix());
  cfg.http.address = "127.0.0.1:0";
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = redis.url();
  node n{cfg};
  auto port = port_of(n.http_address());
  auto status = [&] { return http_get(port, "/health").json()["status"]; };
  REQUIRE(eventually([&] { return status() == "healthy"; },
                     std::chrono::seconds(10)));
  auto h = http_get(port, "/health").json();
  CHECK(h["nats"]["connected"] == true);
  CHECK_FALSE(h["nats"]["server_id"].get<std::string>().empty());
  CHECK(h["store"]["kind"] == "redis");
  CHECK(h["store"]["latency_ms"].is_number());
  CHECK(h["store"]["status"] == "healthy");
  CHECK(http_get(port, "/health/ready").status == 200);

  nats.stop();
  CHECK(eventually([&] { return status() == "degraded"; },
                   std::chrono::seconds(10)));
  CHECK(http_get(port, "/health").json()["nats"]["connected"] == false);
  CHECK(http_get(port, "/health/ready").status == 503);
  CHECK(http_get(port, "/health/live").status == 200);
  nats.start();
  CHECK(eventually([&] { return status() == "healthy"; },
                   std::chrono::seconds(15)));

  redis.stop();
  CHECK(eventually([&] { return status() == "degraded"; },
                   std::chrono::seconds(10)));
  CHECK(http_get(port, "/health").json()["store"]["status"] == "critical");
  redis.start();
  CHECK(eventually([&] { return status() == "healthy"; },
                   std::chrono::seconds(15)));
}

TEST_CASE("metrics parse as Prometheus text and move with traffic",
          "[http]") {
  served_node s;
  auto text = http_get(s.port, "/metrics");
  CHECK(text.status == 200);
  CHECK(text.content_type.find("text/plain") == 0);
  // Every line is a comment or `name{labels} value`.
  std::regex sample_line{
    R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+Inf-]+$)"};
  std::regex comment_line{R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)"};
  std::istringstream in{text.body};
  std::string line;
  size_t samples = 0;
  while (std::getline(in, line)) {
    INFO(line);
    CHECK((std::regex_match(line, sample_line)
           || std::regex_match(line, comment_line)));
    if (line[0] != '#')
      ++samples;
  }
  CHECK(samples > 40);
  auto key = std::string{R"(nova_messages_sent_total{kind="direct"})"};
  auto before = sample(text.body, key);
  REQUIRE(before);
  auto hist_before = sample(text.body, "nova_request_duration_seconds_count");
  REQUIRE(hist_before);
  for (int i = 0; i < 5; ++i)
    REQUIRE_FALSE(s.n.send("bob", "m" + std::to_string(i)));
  REQUIRE(s.n.request("alice", "q", std::chrono::seconds(5)));
  auto after = http_get(s.port, "/metrics").body;
  CHECK(*sample(after, key) == *before + 5);
  CHECK(*sample(after, "nova_request_duration_seconds_count")
        == *hist_before + 1);
  CHECK(*sample(after, R"(nova_tasks_queue_depth{lane="urgent"})") == 0);
  CHECK(*sample(after, R"(nova_presence{status="online"})") == 3);
  CHECK(*sample(after, "nova_novas") == 3);
}

TEST_CASE("the WebSocket feed delivers matching envelopes and pongs",
          "[http]") {
  served_node s;
  ws_client ws{s.port};
  ws.send({{"op", "subscribe"}, {"patterns", {"events.orders.*"}}});
  auto ack = ws.next_of("subscribed");
  REQUIRE(ack);
  CHECK((*ack)["patterns"] == json({"events.orders.*"}));
  // Not matching: a direct message; matching: an event.
  REQUIRE_FALSE(s.n.send("bob", "ignored"));
  send_options json_body;
  json_body.content_type = "application/json";
  REQUIRE_FALSE(s.n.publish("orders.created", R"({"n":1})", json_body));
  auto f = ws.next_of("envelope");
  REQUIRE(f);
  CHECK((*f)["subject"] == "events.orders.created");
  CHECK((*f)["payload"] == json({{"n", 1}}));
  CHECK((*f)["envelope"]["kind"] == "KIND_EVENT");
  ws.send({{"op", "ping"}});
  CHECK(ws.next_of("pong"));
  ws.send({{"op", "subscribe"}, {"patterns", {"bad..pattern"}}});
  CHECK(ws.next_of("error"));
  ws.send({{"op", "unsubscribe"}, {"patterns", {"events.orders.*"}}});
  CHECK(ws.next_of("unsubscribed"));
  // The stats frame comes once a second.
  auto stats = ws.next_of("stats");
  REQUIRE(stats);
  CHECK((*stats)["node_id"] == "http-node");
  CHECK((*stats)["novas"].size() == 3);
}

TEST_CASE("a WebSocket client that stops reading loses frames, counted, and "
          "the node goes on",
          "[http]") {
  auto cfg = served_config();
  cfg.http.ws_queue = 16;
  served_node s{cfg};
  ws_client slow{s.port};
  slow.send({{"op", "subscribe"}, {"patterns", {">"}}});
  REQUIRE(slow.next_of("subscribed"));
  // About 80 MB of frames: far more than the socket buffers (a few MB at
  // most) and the queue hold. Normal buffers keep reading them back fast.
  auto payload = std::string(4096, 'x');
  for (int i = 0; i < 20'000; ++i)
    REQUIRE_FALSE(s.n.send("bob", payload));
  auto metrics = [&] { return http_get(s.port, "/metrics").body; };
  REQUIRE(eventually(
    [&] { return sample(metrics(), "nova_ws_dropped_total").value_or(0) > 0; },
    std::chrono::seconds(10)));
  CHECK(serves(s.port));
  // Reading again, the client learns how many it lost.
  auto dropped = slow.next_of("dropped");
  REQUIRE(dropped);
  CHECK((*dropped)["count"].get<uint64_t>() > 0);
}

TEST_CASE("a WebSocket client naming a Nova gets its pending durable "
          "messages on connect",
          "[http]") {
  nova::testing::redis_server redis;
  node n{store_served_config(redis)};
  auto port = port_of(n.http_address());
  send_options durable;
  durable.durable = true;
  // carol is not running anywhere: her durable inbox keeps these.
  REQUIRE_FALSE(n.send("carol", "first", durable));
  REQUIRE_FALSE(n.send("carol", "second", durable));
  auto has_two = [&] {
    ws_client probe{port, "/ws?nova=carol"};
    auto f = probe.next_of("pending");
    return f && (*f)["envelopes"].size() == 2;
  };
  REQUIRE(eventually(has_two, std::chrono::seconds(10)));
  ws_client ws{port, "/ws?nova=carol"};
  auto f = ws.next_of("pending");
  REQUIRE(f);
  CHECK((*f)["nova_id"] == "carol");
  CHECK((*f)["envelopes"][0]["payload"] == "first");
  CHECK((*f)["envelopes"][1]["payload"] == "second");
  // Without a name there is no pending frame; a Nova with nothing waiting
  // gets an empty list.
  ws_client empty{port, "/ws?nova=dave"};
  auto e = empty.next_of("pending");
  REQUIRE(e);
  CHECK((*e)["envelopes"].empty());
}

TEST_CASE("with the store, bus.subscribe lists durable events from the event "
          "streams and the node's real-time events, newest last",
          "[http]") {
  nova::testing::redis_server redis;
  node n{store_served_config(redis)};
  auto port = port_of(n.http_address());
  send_options durable;
  durable.durable = true;
  REQUIRE_FALSE(n.publish("orders.paid", "d1", durable));
  REQUIRE_FALSE(n.publish("users.left", "d2", durable));
  REQUIRE_FALSE(n.publish("orders.new", "r1"));
  // The durable ones reach their streams through the writer thread.
  REQUIRE(eventually(
    [&] {
      return rpc(port, "bus.subscribe", {{"subject", ">"}})["result"]["count"]
             == 3;
    },
    std::chrono::seconds(10)));
  auto orders = rpc(port, "bus.subscribe", {{"subject", "orders.*"}});
  REQUIRE(orders["result"]["count"] == 2);
  CHECK(orders["result"]["events"][0]["payload"] == "d1");
  CHECK(orders["result"]["events"][1]["payload"] == "r1");
  auto last = rpc(port, "bus.subscribe", {{"subject", ">"}, {"limit", 1}});
  REQUIRE(last["result"]["count"] == 1);
  CHECK(last["result"]["events"][0]["subject"] == "orders.new");
}
