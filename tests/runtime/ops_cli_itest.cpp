// The JSON-RPC subcommands (`nova rpc`, `presence`, `tasks ...`) as a user
// runs them: the real binary against a real `nova node --http` process.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using nova::testing::bin;
using nova::testing::process;

namespace {

/// `nova node --http 127.0.0.1:0` with an echo Nova; `url` is where it
/// bound, read from its log line.
class http_node {
public:
  explicit http_node(std::vector<std::string> extra = {})
    : proc_(argv(std::move(extra))) {
    constexpr const char* marker = "http listening on ";
    if (!proc_.wait_for_output(marker, 20s))
      return;
    auto out = proc_.output();
    auto start = out.find(marker) + std::string{marker}.size();
    url_ = out.substr(start, out.find_first_of(" \r\n", start) - start);
  }

  [[nodiscard]] const std::string& url() const {
    return url_;
  }

  [[nodiscard]] std::string output() const {
    return proc_.output();
  }

private:
  static std::vector<std::string> argv(std::vector<std::string> extra) {
    std::vector<std::string> args{bin("nova"), "node",   "--node-id",
                                  "ops-node",  "--http", "127.0.0.1:0",
                                  "--spawn",   "echo:alice"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  process proc_;
  std::string url_;
};

struct cli_result {
  int code = -1;
  std::string output;
};

/// Runs `nova ARGS... --url URL` to completion.
cli_result nova_cli(const http_node& node, std::vector<std::string> args) {
  args.insert(args.begin(), bin("nova"));
  args.emplace_back("--url");
  args.push_back(node.url());
  process p{args};
  auto code = p.wait(30s);
  REQUIRE(code);
  return {*code, p.output()};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("nova rpc prints a node's result as JSON", "[ops_cli]") {
  http_node node;
  REQUIRE_FALSE(node.url().empty());
  CHECK(node.url().rfind("http://127.0.0.1:", 0) == 0);
  auto pretty = nova_cli(node, {"rpc", "hub.info"});
  CHECK(pretty.code == 0);
  auto info = json::parse(pretty.output);
  CHECK(info["node_id"] == "ops-node");
  CHECK(contains(pretty.output, "\n  \"node_id\": \"ops-node\""));
  auto compact = nova_cli(node, {"rpc", "nova.list", "--json"});
  CHECK(compact.code == 0);
  CHECK(compact.output.find('\n') == compact.output.size() - 1);
  CHECK(json::parse(compact.output)["novas"] == json{"alice"});
  auto reply = nova_cli(node, {"rpc", "nova.request",
                               R"({"to": "alice", "payload": "hello"})"});
  CHECK(reply.code == 0);
  CHECK(json::parse(reply.output)["payload"] == "hello");
}

TEST_CASE("nova rpc reports JSON-RPC errors with exit 1 and bad params with "
          "exit 2",
          "[ops_cli]") {
  http_node node;
  REQUIRE_FALSE(node.url().empty());
  auto bogus = nova_cli(node, {"rpc", "bogus.method"});
  CHECK(bogus.code == 1);
  CHECK(contains(bogus.output, "nova rpc: -32601 "));
  CHECK(contains(bogus.output, "data: {\"available_methods\":"));
  CHECK(contains(bogus.output, "\"hub.info\""));
  auto missing = nova_cli(node, {"rpc", "nova.send", "{}"});
  CHECK(missing.code == 1);
  CHECK(contains(missing.output, "nova rpc: -32602 "));
  auto bad = nova_cli(node, {"rpc", "hub.info", "{oops"});
  CHECK(bad.code == 2);
  CHECK(contains(bad.output, "PARAMS is not valid JSON"));
}

TEST_CASE("nova presence lists the node's Novas as a table or JSON",
          "[ops_cli]") {
  http_node node;
  REQUIRE_FALSE(node.url().empty());
  cli_result table;
  // Presence is written by the first heartbeat; poll until it shows.
  for (int i = 0; i < 100; ++i) {
    table = nova_cli(node, {"presence"});
    if (table.code != 0 || contains(table.output, "alice"))
      break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(table.code == 0);
  CHECK(table.output.rfind("ID ", 0) == 0);
  CHECK(contains(table.output, "LAST SEEN"));
  CHECK(contains(table.output, "alice"));
  CHECK(contains(table.output, "ops-node"));
  CHECK(contains(table.output, "echo"));
  auto raw = nova_cli(node, {"presence", "--json", "--capability", "echo"});
  CHECK(raw.code == 0);
  auto j = json::parse(raw.output);
  CHECK(j["count"] == 1);
  CHECK(j["novas"][0]["nova_id"] == "alice");
  auto none = nova_cli(node, {"presence", "--capability", "nobody"});
  CHECK(none.code == 0);
  CHECK(none.output == "no Novas\n");
}

TEST_CASE("nova tasks enqueues through a node and reads its queue back",
          "[ops_cli]") {
  http_node node;
  REQUIRE_FALSE(node.url().empty());
  auto one = nova_cli(node, {"tasks", "enqueue", "resize", "hello",
                             "--priority", "high"});
  CHECK(one.code == 0);
  CHECK_FALSE(one.output.empty());
  CHECK(one.output.find('\n') == one.output.size() - 1);
  auto many = nova_cli(node, {"tasks", "enqueue", "resize", R"({"w": 1})",
                              "--payload-json", "--count", "150"});
  CHECK(many.code == 0);
  CHECK(contains(many.output, "nova tasks enqueue: 15/150 (10%)\n"));
  CHECK(contains(many.output, "nova tasks enqueue: 150/150 (100%)\n"));
  CHECK(contains(many.output, "enqueued 150 tasks of type resize\n"));
  auto stats = nova_cli(node, {"tasks", "stats", "--json"});
  CHECK(stats.code == 0);
  auto s = json::parse(stats.output);
  CHECK(s["enqueued"] == 151);
  CHECK(s["lanes"]["high"].get<int>() + s["lanes"]["normal"].get<int>()
          + s["in_flight"].get<int>() + s["done"].get<int>()
        == 151);
  auto human = nova_cli(node, {"tasks", "stats"});
  CHECK(human.code == 0);
  CHECK(contains(human.output, "queued high"));
  CHECK(contains(human.output, "enqueued       151\n"));
  auto dead = nova_cli(node, {"tasks", "dead"});
  CHECK(dead.code == 0);
  CHECK(dead.output == "no dead tasks\n");
  auto redrive = nova_cli(node, {"tasks", "redrive"});
  CHECK(redrive.code == 0);
  CHECK(redrive.output == "redrove 0 dead task(s)\n");
}

TEST_CASE("a node with a token refuses the CLI without it", "[ops_cli]") {
  http_node node{{"--http-token", "s3cret"}};
  REQUIRE_FALSE(node.url().empty());
  auto refused = nova_cli(node, {"tasks", "stats"});
  CHECK(refused.code == 1);
  CHECK(contains(refused.output, "401"));
  CHECK(contains(refused.output, "--token"));
  auto wrong = nova_cli(node, {"tasks", "stats", "--token", "guess"});
  CHECK(wrong.code == 1);
  auto allowed = nova_cli(node, {"tasks", "stats", "--token", "s3cret"});
  CHECK(allowed.code == 0);
}

TEST_CASE("the CLI names the URL when no node serves there", "[ops_cli]") {
  std::string url;
  {
    http_node gone;
    REQUIRE_FALSE(gone.url().empty());
    url = gone.url();
  }
  process p{{bin("nova"), "presence", "--url", url}};
  auto code = p.wait(30s);
  REQUIRE(code);
  CHECK(*code == 1);
  CHECK(contains(p.output(), "nova presence: cannot reach " + url));
}
