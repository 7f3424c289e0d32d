#include <csignal>

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
