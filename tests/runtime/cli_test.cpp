#include <csignal>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"

using namespace std::chrono_literals;
using nova::testing::bin;
using nova::testing::process;

TEST_CASE("nova node runs built-in Novas until SIGTERM and exits cleanly",
          "[cli]") {
  process p{{bin("nova"), "node", "--node-id", "cli-node", "--spawn",
             "echo:e1", "--spawn", "worker:w1", "--spawn", "logger"}};
  REQUIRE(p.started());
  REQUIRE(p.wait_for_output("running on the memory bus with 3 Novas", 10s));
  p.signal(SIGTERM);
  auto code = p.wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(p.output().find("shutting down") != std::string::npos);
}

TEST_CASE("nova node explains bad flags and ids instead of starting",
          "[cli]") {
  {
    process p{{bin("nova"), "node", "--spawn", "dragon:x"}};
    auto code = p.wait(10s);
    REQUIRE(code);
    CHECK(*code == 2);
    CHECK(p.output().find("unknown agent type 'dragon'") != std::string::npos);
  }
  {
    process p{{bin("nova"), "node", "--node-id", "bad id"}};
    auto code = p.wait(10s);
    REQUIRE(code);
    CHECK(*code == 2);
    CHECK(p.output().find("invalid_id") != std::string::npos);
  }
  {
    process p{{bin("nova"), "node", "--bus", "pigeon"}};
    auto code = p.wait(10s);
    REQUIRE(code);
    CHECK(*code != 0);
    CHECK(p.output().find("memory|nats") != std::string::npos);
  }
  {
    process p{{bin("nova"), "node", "--spawn", "echo:a.b"}};
    auto code = p.wait(10s);
    REQUIRE(code);
    CHECK(*code == 2);
    CHECK(p.output().find("cannot spawn 'a.b'") != std::string::npos);
  }
}

TEST_CASE("nova demo prints its summary and exits 0", "[cli]") {
  process p{{bin("nova"), "demo", "--novas", "12", "--tasks", "60"}};
  auto code = p.wait(60s);
  REQUIRE(code);
  CHECK(*code == 0);
  auto out = p.output();
  CHECK(out.find("dead letters") != std::string::npos);
  CHECK(out.find("p99") != std::string::npos);
}

TEST_CASE("nova bench local --json prints one object with the ratio",
          "[cli]") {
  process p{{bin("nova"), "bench", "local", "--json", "--messages", "20000"}};
  auto code = p.wait(120s);
  REQUIRE(code);
  CHECK(*code == 0);
  auto j = nlohmann::json::parse(p.output());
  CHECK(j.at("nova_msgs_per_s").get<double>() > 0);
  CHECK(j.at("baseline_msgs_per_s").get<double>() > 0);
  CHECK(j.at("ratio").get<double>() > 0);
}

namespace {

/// The lines of `text` between the line `header` and the next empty line.
std::vector<std::string> section(const std::string& text,
                                 const std::string& header) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == header)
      inside = true;
    else if (inside && line.empty())
      break;
    else if (inside)
      lines.push_back(line);
  }
  return lines;
}

/// CLI11 puts the description at column 30, or on the next line when the
/// name is longer.
bool every_entry_described(const std::vector<std::string>& lines) {
  constexpr size_t column = 30;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.compare(0, column, std::string(column, ' ')) == 0)
      continue; // a continuation
    auto described = line.size() > column
                     && line.find_first_not_of(' ', column)
                          != std::string::npos
                     && line[column - 1] == ' ';
    auto next_continues = i + 1 < lines.size()
                          && lines[i + 1].compare(0, column,
                                                  std::string(column, ' '))
                               == 0;
    if (!described && !next_continues) {
      UNSCOPED_INFO("no description: '" << line << "'");
      return false;
    }
  }
  return true;
}

} // namespace

TEST_CASE("every subcommand explains itself and each of its flags with "
          "--help",
          "[cli]") {
  std::vector<std::vector<std::string>> commands{
    {},
    {"node"},
    {"send"},
    {"request"},
    {"pub"},
    {"broadcast"},
    {"multicast"},
    {"emergency"},
    {"sub"},
    {"rpc"},
    {"presence"},
    {"tasks"},
    {"tasks", "enqueue"},
    {"tasks", "stats"},
    {"tasks", "dead"},
    {"tasks", "redrive"},
    {"replay"},
    {"demo"},
    {"bench"},
    {"bench", "local"},
    {"bench", "remote"},
    {"bench", "request"},
    {"bench", "basp"},
    {"bench", "presence"},
    {"bench", "durable"},
    {"bench", "tasks"},
  };
  for (const auto& path : commands) {
    std::vector<std::string> argv{bin("nova")};
    argv.insert(argv.end(), path.begin(), path.end());
    argv.emplace_back("--help");
    std::string name = "nova";
    for (const auto& x : path)
      name += " " + x;
    INFO(name);
    process p{argv};
    auto code = p.wait(10s);
    REQUIRE(code);
    CHECK(*code == 0);
    auto out = p.output();
    CHECK(out.find("Usage:") != std::string::npos);
    // The first line is the one-line description (the top level's title).
    CHECK(out.substr(0, out.find('\n')).size() > 10);
    CHECK(every_entry_described(section(out, "Options:")));
    CHECK(every_entry_described(section(out, "Positionals:")));
    CHECK(every_entry_described(section(out, "Subcommands:")));
  }
  process tasks{{bin("nova"), "tasks", "--help"}};
  REQUIRE(tasks.wait(10s));
  auto subs = section(tasks.output(), "Subcommands:");
  REQUIRE(subs.size() == 4);
  for (const auto* sub : {"enqueue", "stats", "dead", "redrive"})
    CHECK(tasks.output().find("  " + std::string{sub} + " ")
          != std::string::npos);
}

TEST_CASE("the JSON-RPC subcommands refuse bad input with exit code 2",
          "[cli]") {
  auto run = [](std::vector<std::string> argv) {
    argv.insert(argv.begin(), bin("nova"));
    process p{argv};
    auto code = p.wait(10s);
    REQUIRE(code);
    return std::make_pair(*code, p.output());
  };
  auto [code, out] = run({"rpc", "hub.info", "{oops", "--url",
                          "http://127.0.0.1:1"});
  CHECK(code == 2);
  CHECK(out.find("PARAMS is not valid JSON") != std::string::npos);
  std::tie(code, out) = run({"tasks", "stats", "--url", "https://x:1"});
  CHECK(code == 2);
  CHECK(out.find("only http://") != std::string::npos);
  std::tie(code, out) = run({"tasks"});
  CHECK(code == 2);
  std::tie(code, out) = run({"tasks", "enqueue", "t", "p", "--priority",
                             "asap"});
  CHECK(code == 2);
  std::tie(code, out) = run({"presence", "--status", "sleepy"});
  CHECK(code == 2);
}
