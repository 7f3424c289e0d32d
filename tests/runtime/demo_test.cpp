#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/demo.hpp"

using namespace nova;

TEST_CASE("the demo runs to completion and its summary adds up", "[demo]") {
  demo_options opts;
  opts.novas = 24;
  opts.groups = 3;
  opts.messages_per_nova = 100;
  opts.tasks = 200;
  opts.task_failure_rate = 0.05;
  std::ostringstream out;
  auto s = run_demo(opts, out);
  INFO(out.str());
  REQUIRE(s.completed);
  CHECK(s.novas == 24);
  CHECK(s.workers > 0);
  // Every kind of message was sent, and everything sent arrived.
  CHECK(s.sent_direct > 0);
  CHECK(s.received_direct == s.sent_direct);
  CHECK(s.sent_broadcast > 0);
  CHECK(s.received_broadcast == s.expected_broadcast);
  CHECK(s.received_broadcast == s.sent_broadcast * s.novas);
  CHECK(s.sent_multicast > 0);
  CHECK(s.received_multicast == s.expected_multicast);
  CHECK(s.sent_event > 0);
  CHECK(s.received_event == s.expected_event);
  CHECK(s.received_event > 0);
  CHECK(s.sent_request > 0);
  CHECK(s.received_request == s.sent_request);
  CHECK(s.sent_response == s.sent_request);
  CHECK(s.requests_answered == s.sent_request);
  CHECK(s.request_errors == 0);
  CHECK(s.sent_emergency > 0);
  CHECK(s.received_emergency == s.sent_emergency * s.novas);
  CHECK(s.request_rtt.samples == s.requests_answered);
  CHECK(s.direct_one_way.samples == s.received_direct);
  // Tasks: each one ends done or dead; the doomed ones die after retries.
  CHECK(s.tasks == 200);
  CHECK(s.tasks_urgent + s.tasks_high + s.tasks_normal + s.tasks_low
        == s.tasks);
  CHECK(s.tasks_urgent > 0);
  CHECK(s.tasks_low > 0);
  CHECK(s.tasks_enqueued == s.tasks);
  CHECK(s.tasks_doomed == 10);
  CHECK(s.tasks_dead == s.tasks_doomed);
  CHECK(s.tasks_done + s.tasks_dead == s.tasks);
  CHECK(s.tasks_retried == 2 * s.tasks_dead); // delivery limit 3
  CHECK(s.task_results == s.tasks);
  // Presence: changes announced and watched; the stopped Novas went offline.
  CHECK(s.presence_changes > s.novas);
  CHECK(s.presence_seen > 0);
  CHECK(s.novas_stopped == 2);
  CHECK(s.offline_seen >= s.novas_stopped);
  CHECK(s.handler_errors == 0);
  // The readable summary names every part.
  auto text = out.str();
  for (auto word : {"direct", "broadcast", "multicast", "event", "request",
                    "response", "emergency", "p50", "p99", "dead letters",
                    "presence", "wall time"})
    CHECK(text.find(word) != std::string::npos);
}

TEST_CASE("the demo prints one JSON object when asked to", "[demo]") {
  demo_options opts;
  opts.novas = 8;
  opts.groups = 2;
  opts.messages_per_nova = 40;
  opts.tasks = 20;
  opts.task_failure_rate = 0.1;
  opts.json = true;
  std::ostringstream out;
  auto s = run_demo(opts, out);
  REQUIRE(s.completed);
  auto j = nlohmann::json::parse(out.str());
  REQUIRE(j.is_object());
  CHECK(j["messages"]["direct"]["sent"] == s.sent_direct);
  CHECK(j["tasks"]["dead"] == 2);
  CHECK(j["tasks"]["done"] == 18);
  CHECK(j["latency_us"]["request_round_trip"]["samples"]
        == s.requests_answered);
  CHECK(j["completed"] == true);
}
