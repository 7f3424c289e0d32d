#include <catch2/catch.hpp>

#include <string>

#include "messages/types.hpp"

using namespace nova;

TEST_CASE("every kind prints its name and parses back", "[types]") {
  const std::pair<kind, const char*> all[] = {
    {kind::direct, "direct"},       {kind::broadcast, "broadcast"},
    {kind::multicast, "multicast"}, {kind::task, "task"},
    {kind::presence, "presence"},   {kind::event, "event"},
    {kind::request, "request"},     {kind::response, "response"},
    {kind::emergency, "emergency"},
  };
  for (auto [k, name] : all) {
    CHECK(std::string{to_string(k)} == name);
    auto parsed = parse_kind(name);
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
}

TEST_CASE("every priority prints its name and parses back", "[types]") {
  const std::pair<priority, const char*> all[] = {
    {priority::low, "low"},
    {priority::normal, "normal"},
    {priority::high, "high"},
    {priority::urgent, "urgent"},
  };
  for (auto [p, name] : all) {
    CHECK(std::string{to_string(p)} == name);
    auto parsed = parse_priority(name);
    REQUIRE(parsed);
    CHECK(*parsed == p);
  }
}

TEST_CASE("every presence status prints its name and parses back",
          "[types]") {
  const std::pair<presence_status, const char*> all[] = {
    {presence_status::online, "online"},
    {presence_status::busy, "busy"},
    {presence_status::away, "away"},
    {presence_status::offline, "offline"},
  };
  for (auto [s, name] : all) {
    CHECK(std::string{to_string(s)} == name);
    auto parsed = parse_presence_status(name);
    REQUIRE(parsed);
    CHECK(*parsed == s);
  }
}

TEST_CASE("every task status prints its name", "[types]") {
  CHECK(std::string{to_string(task_status::done)} == "done");
  CHECK(std::string{to_string(task_status::failed)} == "failed");
  CHECK(std::string{to_string(task_status::dead)} == "dead");
}

TEST_CASE("parsing an unknown name gives nullopt", "[types]") {
  for (const char* bad : {"", "Direct", "DIRECT", "direct ", " direct",
                          "KIND_DIRECT", "unknown", "dir", "directs"})
    CHECK_FALSE(parse_kind(bad));
  for (const char* bad : {"", "Low", "URGENT", "medium", "PRIORITY_LOW",
                          "unknown", "hi"})
    CHECK_FALSE(parse_priority(bad));
  for (const char* bad : {"", "Online", "idle", "OFFLINE", "unknown",
                          "PRESENCE_STATUS_BUSY"})
    CHECK_FALSE(parse_presence_status(bad));
}

TEST_CASE("parsing a name of another enum gives nullopt", "[types]") {
  CHECK_FALSE(parse_kind("urgent"));
  CHECK_FALSE(parse_kind("online"));
  CHECK_FALSE(parse_priority("direct"));
  CHECK_FALSE(parse_presence_status("low"));
}

TEST_CASE("an out-of-range enum value prints as unknown", "[types]") {
  CHECK(std::string{to_string(static_cast<kind>(0))} == "unknown");
  CHECK(std::string{to_string(static_cast<kind>(200))} == "unknown");
  CHECK(std::string{to_string(static_cast<priority>(0))} == "unknown");
  CHECK(std::string{to_string(static_cast<presence_status>(9))}
        == "unknown");
  CHECK(std::string{to_string(static_cast<task_status>(0))} == "unknown");
}

TEST_CASE("an envelope has the documented defaults", "[types]") {
  envelope env;
  CHECK(env.kind == kind::direct);
  CHECK(env.priority == priority::normal);
  CHECK(env.created_at == 0);
  CHECK(env.payload.empty());
  CHECK(env.headers.empty());
}

TEST_CASE("envelopes compare equal only when every field is equal",
          "[types]") {
  envelope a;
  a.id = "01J0000000000000000000000A";
  a.from = "alpha";
  a.to = "bridge";
  a.kind = kind::request;
  a.priority = priority::high;
  a.correlation_id = "c1";
  a.created_at = 42;
  a.subject = "s";
  a.content_type = "text/plain";
  a.payload = "hi";
  a.headers = {{"k", "v"}};
  envelope b = a;
  CHECK(a == b);
  CHECK_FALSE(a != b);
  b.headers["k"] = "w";
  CHECK(a != b);
  b = a;
  b.payload.push_back('\0');
  CHECK(a != b);
  b = a;
  b.priority = priority::urgent;
  CHECK(a != b);
  b = a;
  b.created_at = 43;
  CHECK(a != b);
}

TEST_CASE("to_event splits the subject into domain and action", "[types]") {
  envelope env;
  env.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
  env.from = "sensor-1";
  env.to = "ignored";
  env.kind = kind::event;
  env.subject = "orders.created.eu.west";
  env.created_at = 1'700'000'000'123;
  env.content_type = "application/json";
  env.payload = std::string{"{\"n\":1}\0x", 9};
  env.headers = {{"trace", "abc"}};
  auto ev = to_event(env);
  CHECK(ev.id == env.id);
  CHECK(ev.source == "sensor-1");
  CHECK(ev.subject == "orders.created.eu.west");
  CHECK(ev.domain == "orders");
  CHECK(ev.action == "created");
  CHECK(ev.created_at == env.created_at);
  CHECK(ev.content_type == env.content_type);
  CHECK(ev.payload == env.payload);
  CHECK(ev.headers == env.headers);
}

TEST_CASE("to_event with a two-token subject takes the last token as the "
          "action",
          "[types]") {
  envelope env;
  env.subject = "billing.paid";
  auto ev = to_event(env);
  CHECK(ev.domain == "billing");
  CHECK(ev.action == "paid");
}

TEST_CASE("to_event with a one-token subject has an empty action",
          "[types]") {
  envelope env;
  env.subject = "billing";
  auto ev = to_event(env);
  CHECK(ev.domain == "billing");
  CHECK(ev.action.empty());
}

TEST_CASE("to_envelope makes an event envelope that to_event turns back",
          "[types]") {
  event ev;
  ev.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
  ev.source = "sensor-1";
  ev.subject = "orders.created.eu";
  ev.domain = "orders";
  ev.action = "created";
  ev.created_at = 17;
  ev.content_type = "application/octet-stream";
  ev.payload = std::string{"\0\1\2", 3};
  ev.headers = {{"a", "1"}, {"b", "2"}};
  auto env = to_envelope(ev);
  CHECK(env.kind == kind::event);
  CHECK(env.id == ev.id);
  CHECK(env.from == ev.source);
  CHECK(env.subject == ev.subject);
  CHECK(env.created_at == ev.created_at);
  CHECK(env.content_type == ev.content_type);
  CHECK(env.payload == ev.payload);
  CHECK(env.headers == ev.headers);
  CHECK(to_event(env) == ev);
}
