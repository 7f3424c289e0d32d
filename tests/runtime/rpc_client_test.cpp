#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "messages/errc.hpp"
#include "runtime/ops_client.hpp"
#include "runtime/rpc_client.hpp"
#include "support/fake_http_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using nova::errc;
using nova::testing::fake_http_server;

namespace {

/// A JSON-RPC result for whatever was asked.
fake_http_server::response result_of(const fake_http_server::request& req,
                                     json result) {
  auto call = json::parse(req.body());
  return fake_http_server::reply(
    200, json{{"jsonrpc", "2.0"}, {"id", call["id"]}, {"result", result}}
           .dump());
}

fake_http_server::response error_of(const fake_http_server::request& req,
                                    unsigned status, int code,
                                    const std::string& message,
                                    json data = nullptr) {
  auto call = json::parse(req.body(), nullptr, false);
  json e{{"code", code}, {"message", message}};
  if (!data.is_null())
    e["data"] = data;
  return fake_http_server::reply(
    status, json{{"jsonrpc", "2.0"},
                 {"id", call.is_object() ? call["id"] : json{}},
                 {"error", e}}
              .dump());
}

nova::rpc_target target_of(const fake_http_server& srv) {
  nova::rpc_target t;
  t.url = srv.url();
  t.timeout = 5s;
  return t;
}

/// A loopback port nobody listens on (it was free a moment ago).
uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acc{
    ioc, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  return acc.local_endpoint().port();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("an http URL gives host, port and the /rpc path", "[rpc_client]") {
  auto ep = nova::parse_http_url("http://127.0.0.1:8080");
  REQUIRE(ep);
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 8080);
  CHECK(ep->path == "/rpc");
  ep = nova::parse_http_url("HTTP://node-1.example");
  REQUIRE(ep);
  CHECK(ep->host == "node-1.example");
  CHECK(ep->port == 80);
  CHECK(ep->path == "/rpc");
  ep = nova::parse_http_url("localhost:9000");
  REQUIRE(ep);
  CHECK(ep->host == "localhost");
  CHECK(ep->port == 9000);
  ep = nova::parse_http_url("http://[::1]:8081/");
  REQUIRE(ep);
  CHECK(ep->host == "::1");
  CHECK(ep->port == 8081);
  CHECK(ep->path == "/rpc");
}

TEST_CASE("a path in the URL is the base of /rpc unless it names /rpc",
          "[rpc_client]") {
  CHECK(nova::parse_http_url("http://h:1/nova")->path == "/nova/rpc");
  CHECK(nova::parse_http_url("http://h:1/nova/")->path == "/nova/rpc");
  CHECK(nova::parse_http_url("http://h:1/rpc")->path == "/rpc");
  CHECK(nova::parse_http_url("http://h:1/x/rpc")->path == "/x/rpc");
}

TEST_CASE("URLs other than plain http are refused with the reason",
          "[rpc_client]") {
  auto why = [](const std::string& url) {
    auto ep = nova::parse_http_url(url);
    REQUIRE_FALSE(ep);
    CHECK(nova::is(ep.error(), errc::invalid_argument));
    return nova::describe(ep.error());
  };
  CHECK(contains(why("https://h:443"), "only http://"));
  CHECK(contains(why("https://h:443"), "TLS proxy"));
  CHECK(contains(why("ws://h:1"), "only http://"));
  CHECK(contains(why("http://user:pw@h:1"), "credentials"));
  CHECK(contains(why("http://h:0"), "invalid port '0'"));
  CHECK(contains(why("http://h:70000"), "invalid port"));
  CHECK(contains(why("http://h:8o"), "invalid port"));
  CHECK(contains(why("http://h:"), "invalid port"));
  CHECK(contains(why("http://:80"), "no host"));
  CHECK(contains(why("http://[::1:80"), "IPv6"));
  CHECK(contains(why("http://h:1/rpc?x=1"), "query"));
}

TEST_CASE("JSON-RPC error codes map to Nova error codes and keep their "
          "details",
          "[rpc_client]") {
  auto err = nova::make_rpc_error(
    "http://n:1", {-32601, "Method not found",
                   json{{"available_methods", {"hub.info"}}}});
  CHECK(nova::is(err, errc::unsupported));
  auto x = nova::rpc_error_of(err);
  REQUIRE(x);
  CHECK(x->code == -32601);
  CHECK(x->message == "Method not found");
  CHECK(x->data["available_methods"][0] == "hub.info");
  CHECK(nova::describe_rpc(err)
        == "unsupported: http://n:1: JSON-RPC error -32601: Method not "
           "found");
  CHECK(nova::is(nova::make_rpc_error("u", {-32700, "Parse error", {}}),
                 errc::invalid_argument));
  CHECK(nova::is(nova::make_rpc_error("u", {-32600, "Invalid Request", {}}),
                 errc::invalid_argument));
  CHECK(nova::is(nova::make_rpc_error("u", {-32602, "Invalid params", {}}),
                 errc::invalid_argument));
  CHECK(nova::is(nova::make_rpc_error("u", {-32603, "Internal error",
                                            json{{"reason",
                                                  "request_timeout: no "
                                                  "reply"}}}),
                 errc::request_timeout));
  CHECK(nova::is(nova::make_rpc_error("u", {-32603, "Internal error",
                                            json{{"reason", "martian"}}}),
                 errc::handler_failed));
  CHECK(nova::is(nova::make_rpc_error("u", {-32000, "server error", {}}),
                 errc::handler_failed));
  CHECK(nova::rpc_error_of(err)->data.is_object());
  CHECK_FALSE(nova::rpc_error_of(nova::make_rpc_error("u", {1, "x", {}}))
                ->data.is_object());
  CHECK_FALSE(nova::rpc_error_of(nova::make_error(errc::not_found, "x")));
  CHECK_FALSE(nova::rpc_error_of(caf::error{}));
}

TEST_CASE("a call posts one JSON-RPC 2.0 object with the bearer token and "
          "returns the result",
          "[rpc_client]") {
  fake_http_server srv{[](const fake_http_server::request& req) {
    return result_of(req, json{{"node_id", "n1"}});
  }};
  auto t = target_of(srv);
  t.token = "s3cret";
  auto r = nova::rpc_call(t, "hub.info", json::object());
  REQUIRE(r);
  CHECK((*r)["node_id"] == "n1");
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 1);
  const auto& req = reqs.front();
  CHECK(req.method() == boost::beast::http::verb::post);
  CHECK(req.target() == "/rpc");
  CHECK(req[boost::beast::http::field::authorization] == "Bearer s3cret");
  CHECK(req[boost::beast::http::field::content_type] == "application/json");
  auto body = json::parse(req.body());
  CHECK(body["jsonrpc"] == "2.0");
  CHECK(body["method"] == "hub.info");
  CHECK(body["params"] == json::object());
  CHECK(body["id"].is_number());
}

TEST_CASE("a client reuses its connection and survives the server closing "
          "it",
          "[rpc_client]") {
  SECTION("kept alive") {
    fake_http_server srv{[](const fake_http_server::request& req) { return result_of(req, 1); }};
    auto c = nova::rpc_client::make(target_of(srv));
    REQUIRE(c);
    for (int i = 0; i < 5; ++i)
      REQUIRE(c->call("tasks.stats", json::object()));
    CHECK(srv.connections() == 1);
    CHECK(srv.requests().size() == 5);
  }
  SECTION("closed after every reply") {
    fake_http_server srv{[](const fake_http_server::request& req) { return result_of(req, 1); },
                         fake_http_server::mode::close_after_reply};
    auto c = nova::rpc_client::make(target_of(srv));
    REQUIRE(c);
    for (int i = 0; i < 3; ++i) {
      auto r = c->call("tasks.stats", json::object());
      REQUIRE(r);
    }
    CHECK(srv.requests().size() == 3);
    CHECK(srv.connections() == 3);
  }
}

TEST_CASE("HTTP and JSON-RPC failures become clear errors naming the URL",
          "[rpc_client]") {
  SECTION("401 asks for the token") {
    fake_http_server srv{[](const auto&) {
      return fake_http_server::reply(401, R"({"error": "unauthorized"})");
    }};
    auto r = nova::rpc_call(target_of(srv), "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::invalid_argument));
    auto text = nova::describe(r.error());
    CHECK(contains(text, srv.url()));
    CHECK(contains(text, "401"));
    CHECK(contains(text, "--token"));
  }
  SECTION("413 carries the server's -32600 error object") {
    fake_http_server srv{[](const fake_http_server::request& req) {
      return error_of(req, 413, -32600, "request body too large");
    }};
    auto r = nova::rpc_call(target_of(srv), "bus.publish",
                            json{{"payload", std::string(100, 'x')}});
    REQUIRE_FALSE(r);
    auto x = nova::rpc_error_of(r.error());
    REQUIRE(x);
    CHECK(x->code == -32600);
    CHECK(x->message == "request body too large");
  }
  SECTION("500 with a text body") {
    fake_http_server srv{[](const auto&) {
      return fake_http_server::reply(500, "boom", "text/plain");
    }};
    auto r = nova::rpc_call(target_of(srv), "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::handler_failed));
    CHECK(contains(nova::describe(r.error()), "HTTP 500"));
    CHECK(contains(nova::describe(r.error()), "boom"));
    CHECK_FALSE(nova::rpc_error_of(r.error()));
  }
  SECTION("200 with a body that is not JSON") {
    fake_http_server srv{[](const auto&) {
      return fake_http_server::reply(200, "{\"jsonrpc\": \"2.0\", ");
    }};
    auto r = nova::rpc_call(target_of(srv), "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::decode_failed));
    CHECK(contains(nova::describe(r.error()), "not JSON"));
  }
  SECTION("200 with JSON that is no JSON-RPC response") {
    fake_http_server srv{
      [](const auto&) { return fake_http_server::reply(200, "[1, 2]"); }};
    auto r = nova::rpc_call(target_of(srv), "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::decode_failed));
    CHECK(contains(nova::describe(r.error()), "not a JSON-RPC response"));
  }
  SECTION("a reply to another id") {
    fake_http_server srv{[](const auto&) {
      return fake_http_server::reply(
        200, R"({"jsonrpc": "2.0", "id": 999, "result": 1})");
    }};
    auto r = nova::rpc_call(target_of(srv), "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::decode_failed));
    CHECK(contains(nova::describe(r.error()), "id 999"));
  }
  SECTION("an unknown method keeps the available methods") {
    fake_http_server srv{[](const fake_http_server::request& req) {
      return error_of(req, 200, -32601, "Method not found",
                      json{{"available_methods", {"hub.info", "nova.list"}}});
    }};
    auto r = nova::rpc_call(target_of(srv), "bogus.method");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::unsupported));
    auto x = nova::rpc_error_of(r.error());
    REQUIRE(x);
    CHECK(x->data["available_methods"].size() == 2);
  }
}

TEST_CASE("an unreachable node or a silent one gives an error naming the "
          "URL",
          "[rpc_client]") {
  SECTION("connection refused") {
    nova::rpc_target t;
    t.url = "http://127.0.0.1:" + std::to_string(closed_port());
    auto r = nova::rpc_call(t, "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::backend_unavailable));
    auto text = nova::describe(r.error());
    CHECK(contains(text, "cannot reach " + t.url));
    CHECK(contains(text, "NOVA_HTTP_URL"));
  }
  SECTION("no answer within the timeout") {
    fake_http_server srv{[](const fake_http_server::request& req) { return result_of(req, 1); },
                         fake_http_server::mode::silent};
    auto t = target_of(srv);
    t.timeout = 200ms;
    auto r = nova::rpc_call(t, "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::request_timeout));
    CHECK(contains(nova::describe(r.error()), "no answer from " + t.url));
  }
  SECTION("a bad URL is refused before connecting") {
    nova::rpc_target t;
    t.url = "https://127.0.0.1:1";
    auto r = nova::rpc_call(t, "hub.info");
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::invalid_argument));
  }
}

// -- the subcommands ----------------------------------------------------------

namespace {

struct run_result {
  int code;
  std::string out;
  std::string err;
};

template <class F>
run_result run(F f) {
  std::ostringstream out;
  std::ostringstream err;
  auto code = f(out, err);
  return {code, out.str(), err.str()};
}

nova::ops_options ops_of(const fake_http_server& srv, bool as_json = false) {
  nova::ops_options o;
  o.target = target_of(srv);
  o.json = as_json;
  return o;
}

} // namespace

TEST_CASE("nova rpc prints the result, pretty or as one line", "[ops]") {
  fake_http_server srv{[](const fake_http_server::request& req) {
    auto call = json::parse(req.body());
    return result_of(req, json{{"method", call["method"]},
                               {"params", call.value("params", json{})}});
  }};
  auto pretty = run([&](auto& out, auto& err) {
    return nova::ops_rpc(ops_of(srv), "hub.info", "", out, err);
  });
  CHECK(pretty.code == 0);
  CHECK(pretty.err.empty());
  CHECK(json::parse(pretty.out)["method"] == "hub.info");
  CHECK(json::parse(pretty.out)["params"].is_null());
  CHECK(contains(pretty.out, "\n  \"method\""));
  auto compact = run([&](auto& out, auto& err) {
    return nova::ops_rpc(ops_of(srv, true), "nova.send",
                         R"({"to": "e1", "payload": "hi"})", out, err);
  });
  CHECK(compact.code == 0);
  CHECK(compact.out
        == R"({"method":"nova.send","params":{"payload":"hi","to":"e1"}})"
           "\n");
}

TEST_CASE("nova rpc reports JSON-RPC errors and refuses bad params",
          "[ops]") {
  fake_http_server srv{[](const fake_http_server::request& req) {
    return error_of(req, 200, -32601, "Method not found",
                    json{{"available_methods", {"hub.info"}}});
  }};
  auto r = run([&](auto& out, auto& err) {
    return nova::ops_rpc(ops_of(srv), "bogus.method", "", out, err);
  });
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err
        == "nova rpc: -32601 Method not found\n"
           "data: {\"available_methods\":[\"hub.info\"]}\n");
  for (const auto* bad : {"{not json", "42", "\"x\""}) {
    auto b = run([&](auto& out, auto& err) {
      return nova::ops_rpc(ops_of(srv), "hub.info", bad, out, err);
    });
    CHECK(b.code == 2);
    CHECK(contains(b.err, "PARAMS"));
  }
  CHECK(srv.requests().size() == 1);
  nova::ops_options bad_url;
  bad_url.target.url = "ftp://x";
  auto u = run([&](auto& out, auto& err) {
    return nova::ops_rpc(bad_url, "hub.info", "", out, err);
  });
  CHECK(u.code == 2);
  CHECK(contains(u.err, "nova rpc: --url: invalid URL 'ftp://x'"));
}

TEST_CASE("nova presence prints a table of Novas with their age", "[ops]") {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  fake_http_server srv{[now](const fake_http_server::request& req) {
    auto call = json::parse(req.body());
    json novas = json::array();
    if (call["params"].value("status", "") != "away")
      novas.push_back({{"nova_id", "alice"},
                       {"node_id", "n1"},
                       {"status", "online"},
                       {"capabilities", {"echo", "chat"}},
                       {"last_seen", now - 125'000}});
    return result_of(req, json{{"novas", novas}, {"count", novas.size()}});
  }};
  auto r = run([&](auto& out, auto& err) {
    return nova::ops_presence(ops_of(srv), {"echo", ""}, out, err);
  });
  CHECK(r.code == 0);
  CHECK(r.out
        == "ID     NODE  STATUS  CAPABILITIES  LAST SEEN\n"
           "alice  n1    online  echo,chat     2m ago\n");
  CHECK(json::parse(srv.requests().back().body())["params"]
        == json{{"capability", "echo"}});
  auto none = run([&](auto& out, auto& err) {
    return nova::ops_presence(ops_of(srv), {"", "away"}, out, err);
  });
  CHECK(none.out == "no Novas\n");
  auto raw = run([&](auto& out, auto& err) {
    return nova::ops_presence(ops_of(srv, true), {}, out, err);
  });
  CHECK(json::parse(raw.out)["count"] == 1);
}

TEST_CASE("nova tasks enqueue sends each copy and reports progress",
          "[ops]") {
  std::atomic<int> n{0};
  fake_http_server srv{[&n](const fake_http_server::request& req) {
    return result_of(req, json{{"task_id", "t" + std::to_string(++n)}});
  }};
  nova::enqueue_options task;
  task.type = "resize";
  task.payload = R"({"w": 10})";
  task.payload_json = true;
  task.priority = "high";
  task.session = "s1";
  auto one = run([&](auto& out, auto& err) {
    return nova::ops_tasks_enqueue(ops_of(srv), task, out, err);
  });
  CHECK(one.code == 0);
  CHECK(one.out == "t1\n");
  CHECK(one.err.empty());
  auto params = json::parse(srv.requests().back().body())["params"];
  CHECK(params == json{{"type", "resize"},
                       {"payload", {{"w", 10}}},
                       {"priority", "high"},
                       {"session", "s1"}});
  task.count = 20;
  task.progress_from = 10;
  auto many = run([&](auto& out, auto& err) {
    return nova::ops_tasks_enqueue(ops_of(srv, true), task, out, err);
  });
  CHECK(many.code == 0);
  auto j = json::parse(many.out);
  CHECK(j["count"] == 20);
  CHECK(j["task_ids"].size() == 20);
  CHECK(j["task_ids"][19] == "t21");
  CHECK(contains(many.err, "nova tasks enqueue: 2/20 (10%)\n"));
  CHECK(contains(many.err, "nova tasks enqueue: 20/20 (100%)\n"));
  CHECK(srv.requests().size() == 21);
  task.payload_json = false;
  task.count = 1;
  CHECK(run([&](auto& out, auto& err) {
          return nova::ops_tasks_enqueue(ops_of(srv), task, out, err);
        }).code
        == 0);
  CHECK(json::parse(srv.requests().back().body())["params"]["payload"]
        == R"({"w": 10})");
}

TEST_CASE("nova tasks enqueue refuses bad input before sending", "[ops]") {
  fake_http_server srv{[](const fake_http_server::request& req) { return result_of(req, 1); }};
  auto try_enqueue = [&](nova::enqueue_options t) {
    return run([&](auto& out, auto& err) {
      return nova::ops_tasks_enqueue(ops_of(srv), t, out, err);
    });
  };
  nova::enqueue_options t;
  t.type = "x";
  t.payload = "{";
  t.payload_json = true;
  CHECK(try_enqueue(t).code == 2);
  t.payload_json = false;
  t.priority = "asap";
  CHECK(try_enqueue(t).code == 2);
  t.priority = "low";
  t.session = "a.b";
  auto r = try_enqueue(t);
  CHECK(r.code == 2);
  CHECK(contains(r.err, "--session"));
  CHECK(srv.requests().empty());
}

TEST_CASE("nova tasks enqueue stops at the first failure and says how far "
          "it got",
          "[ops]") {
  std::atomic<int> n{0};
  fake_http_server srv{[&n](const fake_http_server::request& req) {
    if (++n == 3)
      return error_of(req, 200, -32603, "Internal error",
                      json{{"reason", "queue_full"}});
    return result_of(req, json{{"task_id", "t"}});
  }};
  nova::enqueue_options t;
  t.type = "x";
  t.count = 5;
  auto r = run([&](auto& out, auto& err) {
    return nova::ops_tasks_enqueue(ops_of(srv), t, out, err);
  });
  CHECK(r.code == 1);
  CHECK(contains(r.err, "-32603 Internal error"));
  CHECK(contains(r.err, "enqueued 2 of 5 before the failure"));
  CHECK(srv.requests().size() == 3);
}

TEST_CASE("nova tasks stats, dead and redrive print for humans", "[ops]") {
  fake_http_server srv{[](const fake_http_server::request& req) {
    auto call = json::parse(req.body());
    auto method = call["method"].get<std::string>();
    if (method == "tasks.stats")
      return result_of(req, json{{"lanes",
                                  {{"urgent", 0},
                                   {"high", 1},
                                   {"normal", 3},
                                   {"low", 0}}},
                                 {"in_flight", 2},
                                 {"dead", 1}});
    if (method == "tasks.dead.list")
      return result_of(req, json{{"tasks",
                                  {{{"id", "t9"},
                                    {"type", "resize"},
                                    {"attempts", 3},
                                    {"last_error", "boom"}}}},
                                 {"count", 1}});
    return result_of(req, json{{"redriven", call["params"].contains("task_id")
                                              ? 1
                                              : 4}});
  }};
  auto stats = run([&](auto& out, auto& err) {
    return nova::ops_tasks_stats(ops_of(srv), out, err);
  });
  CHECK(stats.code == 0);
  CHECK(stats.out
        == "WHAT           COUNT\n"
           "queued urgent  0\n"
           "queued high    1\n"
           "queued normal  3\n"
           "queued low     0\n"
           "dead           1\n"
           "in flight      2\n");
  auto dead = run([&](auto& out, auto& err) {
    return nova::ops_tasks_dead(ops_of(srv), 7, out, err);
  });
  CHECK(dead.out
        == "TASK ID  TYPE    ATTEMPTS  LAST ERROR\n"
           "t9       resize  3         boom\n");
  CHECK(json::parse(srv.requests().back().body())["params"]
        == json{{"limit", 7}});
  auto all = run([&](auto& out, auto& err) {
    return nova::ops_tasks_redrive(ops_of(srv), std::nullopt, out, err);
  });
  CHECK(all.out == "redrove 4 dead task(s)\n");
  auto one = run([&](auto& out, auto& err) {
    return nova::ops_tasks_redrive(ops_of(srv, true), std::string{"t9"}, out,
                                   err);
  });
  CHECK(one.out == "{\"redriven\":1}\n");
}

TEST_CASE("ages are shown in the largest whole unit", "[ops]") {
  constexpr int64_t now = 1'700'000'000'000;
  CHECK(nova::format_age(0, now) == "-");
  CHECK(nova::format_age(now + 5, now) == "now");
  CHECK(nova::format_age(now - 4'999, now) == "4s ago");
  CHECK(nova::format_age(now - 60'000, now) == "1m ago");
  CHECK(nova::format_age(now - 7'200'000, now) == "2h ago");
  CHECK(nova::format_age(now - 3 * 86'400'000LL, now) == "3d ago");
}
