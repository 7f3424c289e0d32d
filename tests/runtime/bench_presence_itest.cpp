// Smoke test of `nova bench presence`: tiny counts, the JSON shape and the
// operation counts that follow from batching. The CPU figures are not
// asserted: a benchmark, not a timed test.
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/bench_presence.hpp"
#include "support/bench_json.hpp"
#include "support/redis_server.hpp"

TEST_CASE("bench presence prints store and baseline figures as one JSON "
          "object",
          "[presence][bench]") {
  NOVA_REQUIRE_REDIS_SERVER();
  nova::presence_bench_options opts;
  opts.json = true;
  opts.novas = 1000;
  opts.rounds = 2;
  opts.redis_server = nova::testing::redis_server_path();
  std::ostringstream out;
  auto rc = nova::run_bench_presence(opts, out);
  auto j = nova::testing::one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  nova::testing::require_positive(
    j, {"ops_per_heartbeat", "server_commands_per_heartbeat",
        "cpu_ms_per_1000_novas", "baseline_ops_per_heartbeat",
        "baseline_server_commands_per_heartbeat",
        "baseline_cpu_ms_per_1000_novas", "ratio"});
  CHECK(j["novas"] == 1000);
  CHECK(j["rounds"] == 2);
  // Four writes of 250 Novas per round: one script each.
  CHECK(j["ops_per_heartbeat"].get<double>() == Approx(4.0 / 1000));
  CHECK(j["baseline_ops_per_heartbeat"].get<double>() == Approx(2.0));
  CHECK(j["baseline_server_commands_per_heartbeat"].get<double>()
        == Approx(2.0));
}

TEST_CASE("bench presence reports a missing redis-server as an error",
          "[presence][bench]") {
  nova::presence_bench_options opts;
  opts.json = true;
  opts.novas = 10;
  opts.rounds = 1;
  opts.redis_server = "/nonexistent/redis-server";
  std::ostringstream out;
  CHECK(nova::run_bench_presence(opts, out) == 1);
  auto j = nlohmann::json::parse(out.str(), nullptr, false);
  REQUIRE(j.is_object());
  CHECK(j.contains("error"));
}
