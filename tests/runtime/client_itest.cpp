// The `nova` client subcommands (send, request, pub, sub, ...) run as a child
// process against a real nats-server and an in-process node on the NATS bus.
#include <algorithm>
#include <atomic>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "actors/builtin.hpp"
#include "cluster/nats_client.hpp"
#include "messages/codec.hpp"
#include "runtime/node.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::fresh_prefix;
using nova::testing::nats_config;
using nova::testing::bin;
using nova::testing::eventually;
using nova::testing::make_sink;
using nova::testing::nats_server;
using nova::testing::process;
using nova::testing::recorder;

namespace {

/// The command line of a `nova` process.
std::vector<std::string> argv(std::vector<std::string> args) {
  args.insert(args.begin(), bin("nova"));
  return args;
}

struct cli_result {
  /// -1 when the process did not exit in time.
  int code = -1;
  /// stdout and stderr, interleaved.
  std::string output;
};

cli_result nova_cli(std::vector<std::string> args,
                    std::chrono::milliseconds timeout = 20s) {
  process p{argv(std::move(args))};
  REQUIRE(p.started());
  auto code = p.wait(timeout);
  return {code ? *code : -1, p.output()};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// A raw NATS connection for the test's own observations.
std::unique_ptr<nats_client> raw_client(const nats_server& srv) {
  auto settings = nats_settings::from_url(srv.url());
  REQUIRE(settings);
  auto c = nats_client::connect(*settings);
  REQUIRE(c);
  return std::move(*c);
}

/// Spawning returns before the gateway has subscribed a Nova's inbox; the
/// gateway announces the Nova's presence once the server knows them. This
/// watches those announcements.
class presence_watch {
public:
  presence_watch(nats_client& c, const std::string& prefix)
    : seen_(std::make_shared<nova::testing::sink<std::string>>()) {
    auto seen = seen_;
    auto sub = c.subscribe(prefix + ".presence.*", [seen](nats_message&& m) {
      if (auto p = decode<presence>(m.data))
        seen->push(p->nova_id);
    });
    REQUIRE(sub);
    sub_ = std::move(*sub);
    REQUIRE(!c.flush(2s));
  }

  bool wait_for(const std::string& id) {
    return seen_->wait_until(
      [&](const std::vector<std::string>& xs) {
        return std::find(xs.begin(), xs.end(), id) != xs.end();
      },
      5s);
  }

private:
  std::shared_ptr<nova::testing::sink<std::string>> seen_;
  std::unique_ptr<nats_subscription> sub_;
};

/// Records the events matching one routing rule.
class event_rule : public agent {
public:
  event_rule(caf::actor_config& cfg, agent_init init, std::string pattern,
             nova::testing::envelope_sink out)
    : agent(cfg, std::move(init)),
      pattern_(std::move(pattern)),
      out_(std::move(out)) {
    // nop
  }

protected:
  void on_start() override {
    if (auto err = subscribe(pattern_))
      throw std::runtime_error(describe(err));
  }

  void on_event(const envelope& msg) override {
    out_->push(msg);
  }

private:
  std::string pattern_;
  nova::testing::envelope_sink out_;
};

/// Replies after 500 ms.
class sloth : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_request(const envelope& req) override {
    std::this_thread::sleep_for(500ms);
    return req.payload;
  }
};

/// `args` (a subcommand and its arguments) with the flags that point the
/// CLI at one test's cluster.
std::vector<std::string> at(const nats_server& srv, const std::string& pfx,
                            std::vector<std::string> args) {
  args.insert(args.begin() + 1, {"--nats-url", srv.url(), "--prefix", pfx});
  return args;
}


} // namespace

TEST_CASE("nova send delivers a direct message to a Nova, by id or by "
          "capability",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  auto got = make_sink();
  agent_options opts;
  opts.capabilities = {"paint"};
  REQUIRE(n.spawn<recorder>("bob", opts, got));
  REQUIRE(watch.wait_for("bob"));
  auto r = nova_cli(at(srv, pfx, {"send", "bob", "hello bob"}));
  CHECK(r.code == 0);
  CHECK(r.output.empty());
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "hello bob");
  CHECK(xs[0].from == "cli");
  CHECK(xs[0].to == "bob");
  CHECK(xs[0].kind == kind::direct);
  r = nova_cli(at(srv, pfx,
                  {"send", "--any", "paint", "--from", "painter-1",
                   "--priority", "high", "brush"}));
  CHECK(r.code == 0);
  xs = got->wait_for(2);
  REQUIRE(xs.size() == 2);
  CHECK(xs[1].payload == "brush");
  CHECK(xs[1].from == "painter-1");
  CHECK(xs[1].to == "bob");
  CHECK(xs[1].priority == priority::high);
}

TEST_CASE("nova request prints the reply's payload and, verbose, who "
          "replied",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  agent_options opts;
  opts.capabilities = {"echo"};
  REQUIRE(n.spawn<echo_agent>("e1", opts));
  REQUIRE(watch.wait_for("e1"));
  auto r = nova_cli(at(srv, pfx, {"request", "e1", "ping pong"}));
  CHECK(r.code == 0);
  CHECK(r.output == "ping pong\n");
  r = nova_cli(at(srv, pfx, {"request", "--verbose", "--any", "echo", "hi"}));
  CHECK(r.code == 0);
  CHECK(contains(r.output, "hi\n"));
  CHECK(contains(r.output, "reply from e1 (correlation "));
  CHECK(contains(r.output, " ms)"));
}

TEST_CASE("nova request explains what went wrong: nobody listening, a "
          "timeout, an error reply",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  REQUIRE(n.spawn<sloth>("slow"));
  REQUIRE(n.spawn("mute")); // the base agent has no request handler
  REQUIRE(watch.wait_for("slow"));
  REQUIRE(watch.wait_for("mute"));
  auto start = std::chrono::steady_clock::now();
  auto r = nova_cli(at(srv, pfx, {"request", "ghost", "anyone?"}));
  CHECK(r.code == 1);
  CHECK(contains(r.output, "no Nova named 'ghost' is listening"));
  // The server reports "no responders" at once: no waiting for a timeout.
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  r = nova_cli(at(srv, pfx, {"request", "--any", "nobody-has-this", "x"}));
  CHECK(r.code == 1);
  CHECK(contains(r.output, "no Nova with capability 'nobody-has-this' is "
                           "listening"));
  r = nova_cli(at(srv, pfx, {"request", "--timeout-ms", "100", "slow", "x"}));
  CHECK(r.code == 1);
  CHECK(contains(r.output, "no reply from 'slow' within 100 ms"));
  r = nova_cli(at(srv, pfx, {"request", "mute", "x"}));
  CHECK(r.code == 1);
  CHECK(contains(r.output, "'mute' answered with an error: no_handler"));
}

TEST_CASE("invalid ids, groups, subjects and payloads exit with 2 before "
          "anything is sent",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  // Everything published under the prefix, by anyone.
  auto seen = std::make_shared<std::atomic<int>>(0);
  auto sub = raw->subscribe(pfx + ".>", [seen](nats_message&&) { ++*seen; });
  REQUIRE(sub);
  REQUIRE(!raw->flush(2s));
  struct bad_case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<bad_case> cases{
    {{"send", "bad id", "x"}, "recipient 'bad id' does not match"},
    {{"send", "a.b", "x"}, "recipient 'a.b' does not match"},
    {{"send", "bob>", "x"}, "recipient 'bob>' does not match"},
    {{"send", "--any", "cap.*", "x"}, "capability 'cap.*' does not match"},
    {{"send", "--from", "evil.sender", "bob", "x"}, "--from 'evil.sender'"},
    {{"send", "--json", "bob", "{not json"}, "not valid JSON"},
    {{"send", "bob"}, "give the recipient and the payload"},
    {{"send", "--priority", "asap", "bob", "x"}, "asap"},
    {{"request", "*", "x"}, "recipient '*' does not match"},
    {{"request", "--timeout-ms", "0", "bob", "x"}, "timeout-ms"},
    {{"multicast", "red team", "x"}, "group 'red team' does not match"},
    {{"pub", "orders", "x"}, "needs at least <domain>.<action>"},
    {{"pub", "orders.*", "x"}, "token '*' in subject 'orders.*'"},
    {{"pub", "orders..created", "x"}, "does not match"},
    {{"broadcast", "--from", "", "x"}, "--from '' does not match"},
    {{"sub", "inbox..bob"}, "pattern"},
    {{"sub", ">.inbox"}, "'>' must be the last token"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args);
    auto r = nova_cli(at(srv, pfx, c.args));
    CHECK(r.code == 2);
    CHECK(contains(r.output, c.says));
  }
  {
    // A bad prefix is refused too.
    auto r = nova_cli({"send", "--nats-url", srv.url(), "--prefix", "a..b",
                       "bob", "x"});
    CHECK(r.code == 2);
    CHECK(contains(r.output, "--prefix"));
  }
  // Round trip to the server: had anything been published, it arrived now.
  REQUIRE(!raw->flush(2s));
  std::this_thread::sleep_for(50ms); // the subscription's handler thread
  CHECK(seen->load() == 0);
}

TEST_CASE("nova pub reaches a wildcard event rule, and broadcast, "
          "multicast and emergency reach their Novas",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  auto events = make_sink();
  REQUIRE(n.spawn<event_rule>("rules", {}, std::string{"orders.*"}, events));
  auto red = make_sink();
  agent_options in_red;
  in_red.groups = {"red"};
  REQUIRE(n.spawn<recorder>("r1", in_red, red));
  REQUIRE(watch.wait_for("rules"));
  REQUIRE(watch.wait_for("r1"));
  REQUIRE(eventually([&] {
    return n.context().directory.subscribers("orders.new").size() == 1;
  }));
  CHECK(nova_cli(at(srv, pfx, {"pub", "orders.eu.created", "deep"})).code
        == 0);
  CHECK(nova_cli(at(srv, pfx, {"pub", "--from", "shop", "orders.created",
                               "o1"}))
          .code
        == 0);
  auto es = events->wait_for(1);
  REQUIRE(es.size() == 1);
  CHECK(es[0].payload == "o1");
  CHECK(es[0].subject == "orders.created");
  CHECK(es[0].kind == kind::event);
  CHECK(es[0].from == "shop");
  CHECK(nova_cli(at(srv, pfx, {"broadcast", "to all"})).code == 0);
  CHECK(nova_cli(at(srv, pfx, {"multicast", "red", "to reds"})).code == 0);
  CHECK(nova_cli(at(srv, pfx, {"multicast", "blue", "to blues"})).code == 0);
  CHECK(nova_cli(at(srv, pfx, {"emergency", "fire"})).code == 0);
  auto rs = red->wait_for(3);
  REQUIRE(rs.size() == 3);
  std::set<std::string> payloads;
  for (const auto& e : rs)
    payloads.insert(e.payload);
  CHECK(payloads == std::set<std::string>{"to all", "to reds", "fire"});
  for (const auto& e : rs)
    if (e.payload == "fire") {
      CHECK(e.kind == kind::emergency);
      CHECK(e.priority == priority::urgent);
    } else if (e.payload == "to reds") {
      CHECK(e.kind == kind::multicast);
      CHECK(e.to == "red");
    }
  // orders.eu.created does not match orders.*; the rule saw one event only.
  REQUIRE(!raw->flush(2s));
  CHECK(events->size() == 1);
}

TEST_CASE("nova sub prints live traffic, one line per message",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("bob", {}, got));
  REQUIRE(watch.wait_for("bob"));
  process tail{argv(at(srv, pfx,
                  {"sub", "events.orders.*", "--count", "2",
                   "--timeout-ms", "15000"}))};
  REQUIRE(tail.wait_for_output("listening on " + pfx + ".events.orders.*",
                               10s));
  REQUIRE(!n.publish("orders.eu.created", "not for this pattern"));
  REQUIRE(!n.publish("orders.created", "first"));
  REQUIRE(nova_cli(at(srv, pfx, {"pub", "orders.paid", std::string(300, 'x')}))
            .code
          == 0);
  auto code = tail.wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  auto out = tail.output();
  CHECK(!contains(out, "orders.eu.created"));
  CHECK(contains(out, " " + pfx
                        + ".events.orders.created event anonymous -> * "
                          "orders.created first\n"));
  // Payloads are cut at 200 characters.
  CHECK(contains(out, " " + pfx + ".events.orders.paid event cli -> * "
                                  "orders.paid "
                        + std::string(200, 'x') + "...\n"));
  // Presence decoded; a JSON request shown as the gateway reads it.
  process presence_tail{argv(at(srv, pfx,
                           {"sub", "presence.*", "--count", "1",
                            "--timeout-ms", "15000"}))};
  REQUIRE(presence_tail.wait_for_output("listening on", 10s));
  REQUIRE(presence_tail.wait(10s));
  CHECK(contains(presence_tail.output(),
                 ".presence.bob presence bob@node-b online"));
  // --json: one object per line with the canonical envelope.
  process json_tail{argv(at(srv, pfx,
                       {"sub", "inbox.bob", "--json", "--count",
                        "2", "--timeout-ms", "15000"}))};
  REQUIRE(json_tail.wait_for_output("listening on", 10s));
  REQUIRE(nova_cli(at(srv, pfx, {"send", "bob", "plain"})).code == 0);
  REQUIRE(nova_cli(at(srv, pfx, {"send", "--json", "bob", R"({"k":[1,2]})"}))
            .code
          == 0);
  REQUIRE(json_tail.wait(10s));
  std::vector<nlohmann::json> lines;
  std::istringstream in{json_tail.output()};
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{')
      lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["subject"] == pfx + ".inbox.bob");
  CHECK(lines[0]["envelope"]["from"] == "cli");
  CHECK(lines[0]["envelope"]["kind"] == "KIND_DIRECT");
  CHECK(lines[0]["envelope"]["payload"] == "cGxhaW4="); // base64("plain")
  CHECK(lines[1]["envelope"]["from"] == "anonymous");
  CHECK(lines[1]["envelope"]["contentType"] == "application/json");
  // Both also reached bob.
  CHECK(got->wait_for(2).size() == 2);
}

TEST_CASE("nova sub exits with 0 at its timeout and on SIGINT",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  {
    auto start = std::chrono::steady_clock::now();
    auto r = nova_cli(at(srv, pfx, {"sub", "inbox.nobody", "--count", "5",
                                    "--timeout-ms", "300"}));
    CHECK(r.code == 0);
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  }
  {
    process tail{argv(at(srv, pfx, {"sub", ">"}))};
    REQUIRE(tail.wait_for_output("listening on " + pfx + ".>", 10s));
    tail.signal(SIGINT);
    auto code = tail.wait(10s);
    REQUIRE(code);
    CHECK(*code == 0);
  }
}

TEST_CASE("nova request --json sends a JSON body and prints the JSON reply",
          "[cli][client][json]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  REQUIRE(n.spawn<echo_agent>("e1"));
  auto got = make_sink();
  REQUIRE(n.spawn<recorder>("bob", {}, got));
  REQUIRE(watch.wait_for("e1"));
  REQUIRE(watch.wait_for("bob"));
  auto r = nova_cli(at(srv, pfx, {"request", "--json", "e1", R"({"a":1})"}));
  CHECK(r.code == 0);
  CHECK(r.output == "{\"a\":1}\n");
  // A reply that is not JSON comes back as a JSON string.
  r = nova_cli(at(srv, pfx, {"request", "--json", "-v", "bob", "[1,2,3]"}));
  CHECK(r.code == 0);
  CHECK(contains(r.output, "\"re:[1,2,3]\"\n"));
  CHECK(contains(r.output, "reply from bob"));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "[1,2,3]");
  CHECK(xs[0].content_type == "application/json");
  CHECK(xs[0].from == "anonymous");
}

TEST_CASE("the client fails fast with a clear message when NATS is "
          "unreachable",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server down{nats_server::deferred}; // a port nobody listens on
  for (auto cmd : {"send", "request", "sub"}) {
    CAPTURE(cmd);
    std::vector<std::string> args{cmd, "--nats-url", down.url(), "bob"};
    if (std::string{cmd} != "sub")
      args.push_back("x");
    auto start = std::chrono::steady_clock::now();
    auto r = nova_cli(args, 20s);
    CHECK(r.code == 1);
    CHECK(contains(r.output, "cannot reach NATS at " + down.url()));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  // Credentials in the URL are not printed.
  auto r = nova_cli({"send", "--nats-url",
                     "nats://alice:s3cret@127.0.0.1:"
                       + std::to_string(down.port()),
                     "bob", "x"});
  CHECK(r.code == 1);
  CHECK(!contains(r.output, "s3cret"));
  CHECK(contains(r.output, "nats://***@127.0.0.1"));
}

TEST_CASE("the NATS_URL and NOVA_PREFIX environment variables select the "
          "cluster",
          "[cli][client]") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto pfx = fresh_prefix();
  auto raw = raw_client(srv);
  presence_watch watch{*raw, pfx};
  node n{nats_config("node-b", srv.url(), pfx)};
  REQUIRE(n.spawn<echo_agent>("e1"));
  REQUIRE(watch.wait_for("e1"));
  // process passes `environ` on to the child.
  ::setenv("NATS_URL", srv.url().c_str(), 1);
  ::setenv("NOVA_PREFIX", pfx.c_str(), 1);
  auto r = nova_cli({"request", "e1", "from the environment"});
  ::unsetenv("NATS_URL");
  ::unsetenv("NOVA_PREFIX");
  CHECK(r.code == 0);
  CHECK(r.output == "from the environment\n");
}
