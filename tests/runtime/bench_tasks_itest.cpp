// Smoke test of `nova bench tasks`: a tiny count, the JSON shape and that
// every task came back once. The figures themselves are not asserted.
#include <sstream>
#include <vector>

#include <sched.h>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/bench_tasks.hpp"
#include "support/process.hpp"
#include "support/bench_json.hpp"
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
  auto j = nova::testing::one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  nova::testing::require_positive(
    j, {"tasks_per_s", "claim_p50_ms", "claim_p99_ms", "baseline_tasks_per_s",
        "ratio", "goal", "server_cpu_us_per_task", "client_cpu_us_per_task"});
  // The worker nodes' CPU comes from /proc in clock ticks (10 ms): a run
  // this small may not show one.
  REQUIRE(j.contains("workers_cpu_us_per_task"));
  REQUIRE(j["workers_cpu_us_per_task"].is_number());
  CHECK(j["workers_cpu_us_per_task"].get<double>() >= 0);
  CHECK(j["goal"] == 100'000.0);
  CHECK(j["duplicates"] == 0);
  CHECK(j["tasks"] == 1'000);
  CHECK(j["nodes"] == 2);
  CHECK(j["workers_per_node"] == 4);
}

TEST_CASE("bench tasks --pin-server runs redis-server on a CPU of its own and "
          "the nodes on the others, and gives the caller its CPUs back") {
  NOVA_REQUIRE_REDIS_SERVER();
  auto allowed = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> out;
    REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set))
        out.push_back(i);
    return out;
  };
  auto before = allowed();
  nova::tasks_bench_options opts;
  opts.json = true;
  opts.tasks = 1'000;
  opts.no_baseline = true;
  opts.pin_server = true;
  opts.redis_server = nova::testing::redis_server_path();
  opts.self_exe = nova::testing::bin("nova");
  std::ostringstream out;
  auto rc = nova::run_bench_tasks(opts, out);
  auto j = nova::testing::one_object(out.str());
  CHECK(allowed() == before);
  if (before.size() < 2) {
    // One CPU: a clear refusal, no run.
    CHECK(rc == 1);
    REQUIRE(j.contains("error"));
    CHECK(j["error"].get<std::string>().find("--pin-server needs 2 CPUs")
          != std::string::npos);
    return;
  }
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  nova::testing::require_positive(j, {"tasks_per_s"});
  CHECK(j["duplicates"] == 0);
  CHECK(j["server_cpu"] == before.back());
  CHECK(j["node_cpus"]
        == std::vector<int>(before.begin(), before.end() - 1));
}

TEST_CASE("bench tasks --pin-server with --redis-url is refused") {
  nova::tasks_bench_options opts;
  opts.json = true;
  opts.pin_server = true;
  opts.redis_url = "redis://127.0.0.1:1";
  opts.self_exe = nova::testing::bin("nova");
  std::ostringstream out;
  CHECK(nova::run_bench_tasks(opts, out) == 1);
  auto j = nova::testing::one_object(out.str());
  REQUIRE(j.contains("error"));
  CHECK(j["error"].get<std::string>().find("does not go with --redis-url")
        != std::string::npos);
}
