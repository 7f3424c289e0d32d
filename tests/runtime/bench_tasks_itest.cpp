// Smoke test of `nova bench tasks`: a tiny count, the JSON shape and that
// every task came back once. The figures themselves are not asserted.
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/bench_tasks.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

TEST_CASE("bench tasks prints the task rate, claim latency and raw redis "
          "rate as one JSON object") {
  NOVA_REQUIRE_REDIS_SERVER();
  nova::tasks_bench_options opts;
  opts.json = true;
  opts.tasks = 1'000;
  opts.redis_server = nova::testing::redis_server_path();
  opts.self_exe = nova::testing::bin("nova");
  std::ostringstream out;
  auto rc = nova::run_bench_tasks(opts, out);
  INFO(out.str());
  CHECK(rc == 0);
  REQUIRE(!out.str().empty());
  REQUIRE(out.str().find('\n') == out.str().size() - 1);
  auto j = nlohmann::json::parse(out.str(), nullptr, false);
  REQUIRE(j.is_object());
  CHECK(!j.contains("error"));
  for (auto key : {"tasks_per_s", "claim_p50_ms", "claim_p99_ms",
                   "baseline_tasks_per_s", "ratio", "goal"}) {
    INFO("key " << key);
    REQUIRE(j.contains(key));
    REQUIRE(j[key].is_number());
    CHECK(j[key].get<double>() > 0);
  }
  CHECK(j["goal"] == 100'000.0);
  CHECK(j["duplicates"] == 0);
  CHECK(j["tasks"] == 1'000);
  CHECK(j["nodes"] == 2);
  CHECK(j["workers_per_node"] == 4);
}
