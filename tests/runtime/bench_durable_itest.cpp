// Smoke test of `nova bench durable`: a tiny run, the JSON shape, every
// message handled once. The rates and CPU figures are not asserted: a
// benchmark, not a timed test.
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/bench_durable.hpp"
#include "support/bench_json.hpp"
#include "support/redis_server.hpp"

TEST_CASE("bench durable prints Nova, baseline and CPU figures as one JSON "
          "object",
          "[durable][bench]") {
  NOVA_REQUIRE_REDIS_SERVER();
  nova::durable_bench_options opts;
  opts.json = true;
  opts.messages = 5000;
  opts.redis_server = nova::testing::redis_server_path();
  std::ostringstream out;
  auto rc = nova::run_bench_durable(opts, out);
  auto j = nova::testing::one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  nova::testing::require_positive(j, {"nova_msgs_per_s", "baseline_msgs_per_s",
                                      "ratio", "server_cpu_us_per_msg",
                                      "node_cpu_us_per_msg"});
  CHECK(j["messages"] == 5000);
  CHECK(j["payload_bytes"] == 128);
  CHECK(j["goal"].get<double>() == Approx(0.4));
  // The receiver counted every message once: nothing arrived twice.
  CHECK(j["duplicates"] == 0);
}

TEST_CASE("bench durable reports a missing redis-benchmark as an error",
          "[durable][bench]") {
  nova::durable_bench_options opts;
  opts.json = true;
  opts.messages = 10;
  opts.redis_server = nova::testing::redis_server_path();
  opts.redis_benchmark = "/nonexistent/redis-benchmark";
  std::ostringstream out;
  CHECK(nova::run_bench_durable(opts, out) == 1);
  auto j = nlohmann::json::parse(out.str(), nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  CHECK(j["error"].get<std::string>().find("redis-benchmark")
        != std::string::npos);
}
