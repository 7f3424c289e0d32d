// Three `nova node` processes on one nats-server, driven from the outside by
// the `nova` CLI as a second client.
#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <memory>

#include <catch2/catch.hpp>

#include "support/nats_server.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using nova::testing::bin;
using nova::testing::nats_server;
using nova::testing::process;

namespace {

std::atomic<int> prefix_counter{0};

std::string fresh_prefix() {
  return "s" + std::to_string(::getpid()) + "x"
         + std::to_string(prefix_counter++);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t occurrences(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

struct cli_result {
  /// -1 when the process did not exit in time.
  int code = -1;
  /// stdout and stderr, interleaved.
  std::string output;
};

/// One nats-server and three nodes:
///   n1: echo:e1, logger:log1 (group team)
///   n2: echo:e2, logger:log2 (group team)
///   n3: worker:w3, logger:log3 (groups team and night)
/// Built-ins get their type as capability, so e1 and e2 share `echo`.
class three_nodes {
public:
  three_nodes() : prefix_(fresh_prefix()) {
    start("n1", {"--spawn", "echo:e1", "--spawn", "logger:log1", "--group",
                 "team"});
    start("n2", {"--spawn", "echo:e2", "--spawn", "logger:log2", "--group",
                 "team"});
    start("n3", {"--spawn", "worker:w3", "--spawn", "logger:log3", "--group",
                 "team", "--group", "night"});
    for (auto& n : nodes_) {
      INFO(n->output());
      REQUIRE(n->wait_for_output("running on the nats bus with 2 Novas", 15s));
    }
    // A node is up before the gateway subscribed its Novas' inboxes; a Nova
    // that answers a request is reachable.
    for (auto id : {"e1", "e2", "log1", "log2", "log3"})
      REQUIRE(answers(id));
  }

  three_nodes(const three_nodes&) = delete;
  three_nodes& operator=(const three_nodes&) = delete;

  [[nodiscard]] const std::string& prefix() const noexcept {
    return prefix_;
  }

  [[nodiscard]] process& node(size_t i) {
    return *nodes_.at(i);
  }

  /// Runs `nova <subcommand> --nats-url ... --prefix ... <args...>`.
  cli_result cli(std::vector<std::string> args,
                 std::chrono::milliseconds timeout = 20s) {
    process p{argv(std::move(args))};
    REQUIRE(p.started());
    auto code = p.wait(timeout);
    return {code ? *code : -1, p.output()};
  }

  /// The command line of a `nova` client process for this cluster.
  std::vector<std::string> argv(std::vector<std::string> args) const {
    args.insert(args.begin() + 1,
                {"--nats-url", srv_.url(), "--prefix", prefix_});
    args.insert(args.begin(), bin("nova"));
    return args;
  }

  /// Waits until every node printed `text`.
  bool all_print(const std::string& text,
                 std::chrono::milliseconds timeout = 10s) {
    return std::all_of(nodes_.begin(), nodes_.end(), [&](auto& n) {
      return n->wait_for_output(text, timeout);
    });
  }

  /// SIGTERM to every node; true if all exit with 0.
  bool stop_all() {
    for (auto& n : nodes_)
      n->signal(SIGTERM);
    bool ok = true;
    for (auto& n : nodes_) {
      auto code = n->wait(20s);
      INFO(n->output());
      CHECK(code == std::optional<int>{0});
      ok = ok && code == std::optional<int>{0};
    }
    return ok;
  }

private:
  void start(const std::string& id, std::vector<std::string> extra) {
    std::vector<std::string> args{bin("nova"),  "node",
                                  "--bus",      "nats",
                                  "--nats-url", srv_.url(),
                                  "--prefix",   prefix_,
                                  "--node-id",  id,
                                  "--heartbeat-ms", "200",
                                  "--threads",  "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    nodes_.push_back(std::make_unique<process>(std::move(args)));
    REQUIRE(nodes_.back()->started());
  }

  bool answers(const std::string& id) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    for (;;) {
      auto r = cli({"request", "--timeout-ms", "1000", id, "probe"});
      if (r.code == 0)
        return true;
      if (std::chrono::steady_clock::now() >= deadline) {
        WARN("nova request " << id << " kept failing: " << r.output);
        return false;
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  nats_server srv_;
  std::string prefix_;
  std::vector<std::unique_ptr<process>> nodes_;
};

} // namespace

TEST_CASE("three node processes: direct, request-reply, broadcast, "
          "multicast, events and JSON work from a second client",
          "[system][cluster]") {
  NOVA_REQUIRE_NATS_SERVER();
  three_nodes c;
  auto& n1 = c.node(0);
  auto& n2 = c.node(1);
  auto& n3 = c.node(2);

  // Direct: printed by the logger on n3 only.
  auto r = c.cli({"send", "log3", "hello-direct"});
  REQUIRE(r.code == 0);
  CHECK(n3.wait_for_output("[log3] direct cli -> log3: hello-direct", 10s));

  // Request-reply.
  r = c.cli({"request", "e1", "hello-request"});
  CHECK(r.code == 0);
  CHECK(r.output == "hello-request\n");

  // Broadcast: every logger.
  REQUIRE(c.cli({"broadcast", "--from", "ops", "hello-all"}).code == 0);
  CHECK(n1.wait_for_output("[log1] broadcast ops -> *: hello-all", 10s));
  CHECK(n2.wait_for_output("[log2] broadcast ops -> *: hello-all", 10s));
  CHECK(n3.wait_for_output("[log3] broadcast ops -> *: hello-all", 10s));

  // Multicast: only the members. Both go through each node's one group
  // subscription in order, so once "team" arrived "night" would have too.
  REQUIRE(c.cli({"multicast", "night", "hello-night"}).code == 0);
  REQUIRE(c.cli({"multicast", "team", "hello-team"}).code == 0);
  CHECK(c.all_print("multicast cli -> team: hello-team"));
  CHECK(n3.wait_for_output("[log3] multicast cli -> night: hello-night", 10s));
  CHECK(!contains(n1.output(), "hello-night"));
  CHECK(!contains(n2.output(), "hello-night"));

  // Events with wildcards: the loggers subscribe to `>`; a tail on
  // events.orders.* sees orders.created but not orders.eu.created.
  process tail{c.argv({"sub", "events.orders.*", "--count", "1",
                       "--timeout-ms", "15000"})};
  REQUIRE(tail.wait_for_output("listening on " + c.prefix()
                                 + ".events.orders.*",
                               10s));
  REQUIRE(c.cli({"pub", "orders.eu.created", "X"}).code == 0);
  REQUIRE(c.cli({"pub", "orders.created", "Y"}).code == 0);
  CHECK(c.all_print("event cli -> * orders.eu.created: X"));
  CHECK(c.all_print("event cli -> * orders.created: Y"));
  auto code = tail.wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(contains(tail.output(), ".events.orders.created event cli -> * "
                                "orders.created Y"));
  CHECK(!contains(tail.output(), "orders.eu.created"));

  // JSON interop from the second client.
  r = c.cli({"request", "--json", "e1", R"({"a":1})"});
  CHECK(r.code == 0);
  CHECK(r.output == "{\"a\":1}\n");
  r = c.cli({"request", "--json", "e2", R"([1,"two",{"three":3}])"});
  CHECK(r.code == 0);
  CHECK(r.output == "[1,\"two\",{\"three\":3}]\n");

  // Nobody by that name anywhere.
  r = c.cli({"request", "e9", "x"});
  CHECK(r.code == 1);
  CHECK(contains(r.output, "no Nova named 'e9' is listening"));

  CHECK(c.stop_all());
  CHECK(contains(n1.output(), "shutting down"));
}

TEST_CASE("three node processes: requests to a capability are spread over "
          "its Novas and each is answered exactly once",
          "[system][cluster]") {
  NOVA_REQUIRE_NATS_SERVER();
  three_nodes c;
  std::array<int, 2> by{0, 0}; // e1, e2
  for (int i = 0; i < 40; ++i) {
    auto payload = "job-" + std::to_string(i);
    auto r = c.cli({"request", "--any", "echo", "--verbose", payload});
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(occurrences(r.output, payload + "\n") == 1);
    CHECK(occurrences(r.output, "reply from ") == 1);
    if (contains(r.output, "reply from e1 "))
      ++by[0];
    else if (contains(r.output, "reply from e2 "))
      ++by[1];
  }
  CHECK(by[0] + by[1] == 40);
  // A queue group picks one member at random: all 40 on one side would
  // happen with probability 2^-39.
  CHECK(by[0] > 0);
  CHECK(by[1] > 0);
  // Sends to a capability reach exactly one of its Novas as well.
  auto delivered = [&c] {
    size_t n = 0;
    for (size_t i = 0; i < 3; ++i)
      n += occurrences(c.node(i).output(), "direct cli -> log");
    return n;
  };
  REQUIRE(c.cli({"send", "--any", "logger", "one-logger"}).code == 0);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (delivered() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  // Give a (wrong) second delivery the time of a broadcast round trip.
  REQUIRE(c.cli({"broadcast", "barrier"}).code == 0);
  CHECK(c.all_print("broadcast cli -> *: barrier"));
  CHECK(delivered() == 1);
  CHECK(c.stop_all());
}
