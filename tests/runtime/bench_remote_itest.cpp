// Smoke tests of the benchmarks between node processes: tiny counts, the
// JSON shape only. The figures themselves are not asserted: benchmarks, not
// timed tests.
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/bench_remote.hpp"
#include "support/bench_json.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"

namespace {

using nova::testing::one_object;
using nova::testing::require_positive;

nova::remote_bench_options tiny_options() {
  nova::remote_bench_options opts;
  opts.json = true;
  opts.messages = 20'000;
  opts.requests = 500;
  opts.nats_server = nova::testing::nats_server_path();
  opts.self_exe = nova::testing::bin("nova");
  return opts;
}

} // namespace

TEST_CASE("bench remote prints Nova and raw NATS rates as one JSON object") {
  NOVA_REQUIRE_NATS_SERVER();
  std::ostringstream out;
  auto rc = nova::run_bench_remote(tiny_options(), out);
  auto j = one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  require_positive(j, {"nova_msgs_per_s", "baseline_msgs_per_s", "ratio",
                       "messages", "payload_bytes"});
  CHECK(j["messages"] == 20'000);
  CHECK(j["payload_bytes"] == 128);
}

TEST_CASE("bench request prints Nova and raw NATS latencies as one JSON "
          "object") {
  NOVA_REQUIRE_NATS_SERVER();
  std::ostringstream out;
  auto rc = nova::run_bench_request(tiny_options(), out);
  auto j = one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  require_positive(j, {"nova_p50_us", "nova_p99_us", "nova_p999_us",
                       "baseline_p50_us", "baseline_p99_us",
                       "baseline_p999_us", "p50_ratio", "p99_ratio",
                       "requests", "payload_bytes"});
  CHECK(j["requests"] == 500);
  CHECK(j["nova_p50_us"].get<double>() <= j["nova_p99_us"].get<double>());
  CHECK(j["nova_p99_us"].get<double>() <= j["nova_p999_us"].get<double>());
}

TEST_CASE("bench basp prints Nova and CAF remoting rates as one JSON object") {
  NOVA_REQUIRE_NATS_SERVER();
  std::ostringstream out;
  auto rc = nova::run_bench_basp(tiny_options(), out);
  auto j = one_object(out.str());
  CHECK(rc == 0);
  CHECK(!j.contains("error"));
  require_positive(j, {"nova_msgs_per_s", "baseline_msgs_per_s", "ratio",
                       "messages", "payload_bytes"});
}

TEST_CASE("a benchmark without its peer program reports an error as JSON") {
  NOVA_REQUIRE_NATS_SERVER();
  auto opts = tiny_options();
  opts.self_exe = "/nonexistent/nova";
  std::ostringstream out;
  CHECK(nova::run_bench_remote(opts, out) == 1);
  auto j = one_object(out.str());
  CHECK(j.contains("error"));
}

TEST_CASE("bench peer refuses an unknown role") {
  std::ostringstream out;
  CHECK(nova::run_bench_peer({"no-such-role"}, out) == 2);
  CHECK(out.str().find("unknown role") != std::string::npos);
  std::ostringstream usage;
  CHECK(nova::run_bench_peer({}, usage) == 2);
}
