#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cluster/naming.hpp"
#include "messages/errc.hpp"

using namespace nova;

namespace {

naming make_naming(std::string prefix) {
  auto n = naming::make(std::move(prefix));
  REQUIRE(n);
  return *n;
}

std::string value_of(const caf::expected<std::string>& x) {
  if (!x)
    FAIL("unexpected error: " << describe(x.error()));
  return *x;
}

// Every identifier the contract forbids, each with a reason.
const std::vector<std::string> bad_ids = {
  "",                     // empty
  std::string(65, 'a'),   // one too long
  "a.b",                  // would add a token
  "*",                    // NATS wildcard
  "a*",                   //
  ">",                    // NATS full wildcard
  "a>",                   //
  "a b",                  // space
  " ",                    //
  "caf\xc3\xa9",          // unicode (UTF-8 "café")
  "\xe2\x98\x85",         // unicode star
  "a/b",                  // path separator
  std::string{"a\0b", 3}, // embedded NUL
  "a\nb",                 // newline
};

// The error of `x`, or no error when it holds a value.
template <class T>
caf::error error_of(const caf::expected<T>& x) {
  return x ? caf::error{} : x.error();
}

bool rejected(const caf::expected<std::string>& x) {
  return !x
         && (is(x.error(), errc::invalid_id)
             || is(x.error(), errc::invalid_argument));
}

} // namespace

TEST_CASE("the default prefix is nova", "[naming]") {
  auto n = naming::make();
  REQUIRE(n);
  CHECK(n->prefix() == "nova");
}

TEST_CASE("every subject and key matches the wire contract with the default "
          "prefix",
          "[naming]") {
  auto n = make_naming("nova");
  CHECK(value_of(n.inbox("bridge")) == "nova.inbox.bridge");
  CHECK(n.broadcast() == "nova.broadcast.all");
  CHECK(value_of(n.group("engineering")) == "nova.group.engineering");
  CHECK(value_of(n.event("orders.created")) == "nova.events.orders.created");
  CHECK(value_of(n.event("orders.created.eu.west"))
        == "nova.events.orders.created.eu.west");
  CHECK(value_of(n.event_stream("orders")) == "nova.events.orders");
  CHECK(n.emergency() == "nova.emergency");
  CHECK(value_of(n.presence("bridge")) == "nova.presence.bridge");
  CHECK(n.presence_updates() == "nova.presence.updates");
  CHECK(n.tasks_available() == "nova.tasks.available");
  CHECK(n.task_lane(priority::urgent) == "nova.tasks.queue.urgent");
  CHECK(n.task_lane(priority::high) == "nova.tasks.queue.high");
  CHECK(n.task_lane(priority::normal) == "nova.tasks.queue.normal");
  CHECK(n.task_lane(priority::low) == "nova.tasks.queue.low");
  CHECK(n.tasks_dead() == "nova.tasks.dead");
  CHECK(n.workers_group() == "nova.workers");
  CHECK(value_of(n.task_results("session-7")) == "nova.tasks.results.session-7");
  CHECK(value_of(n.node_control("node-1", "stats")) == "nova.node.node-1.stats");
}

TEST_CASE("every subject and key uses a custom prefix in place of nova",
          "[naming]") {
  auto n = make_naming("test.run1");
  CHECK(n.prefix() == "test.run1");
  CHECK(value_of(n.inbox("bridge")) == "test.run1.inbox.bridge");
  CHECK(n.broadcast() == "test.run1.broadcast.all");
  CHECK(value_of(n.group("ops")) == "test.run1.group.ops");
  CHECK(value_of(n.event("orders.created.eu"))
        == "test.run1.events.orders.created.eu");
  CHECK(value_of(n.event_stream("orders")) == "test.run1.events.orders");
  CHECK(n.emergency() == "test.run1.emergency");
  CHECK(value_of(n.presence("A_1")) == "test.run1.presence.A_1");
  CHECK(n.presence_updates() == "test.run1.presence.updates");
  CHECK(n.tasks_available() == "test.run1.tasks.available");
  CHECK(n.task_lane(priority::urgent) == "test.run1.tasks.queue.urgent");
  CHECK(n.task_lane(priority::low) == "test.run1.tasks.queue.low");
  CHECK(n.tasks_dead() == "test.run1.tasks.dead");
  CHECK(n.workers_group() == "test.run1.workers");
  CHECK(value_of(n.task_results("s1")) == "test.run1.tasks.results.s1");
  CHECK(value_of(n.node_control("n1", "shutdown"))
        == "test.run1.node.n1.shutdown");
}

TEST_CASE("ids of exactly 64 characters are accepted", "[naming]") {
  auto n = make_naming("nova");
  std::string id(64, 'z');
  CHECK(value_of(n.inbox(id)) == "nova.inbox." + id);
  CHECK(value_of(n.group(id)) == "nova.group." + id);
  CHECK(value_of(n.presence(id)) == "nova.presence." + id);
  CHECK(value_of(n.task_results(id)) == "nova.tasks.results." + id);
  CHECK(value_of(n.event_stream(id)) == "nova.events." + id);
  CHECK(value_of(n.node_control(id, id)) == "nova.node." + id + "." + id);
  CHECK(value_of(n.event(id + "." + id)) == "nova.events." + id + "." + id);
}

TEST_CASE("invalid ids are rejected by every builder that takes one",
          "[naming]") {
  auto n = make_naming("nova");
  for (const auto& bad : bad_ids) {
    INFO("id '" << bad << "' of size " << bad.size());
    CHECK(rejected(n.inbox(bad)));
    CHECK(rejected(n.group(bad)));
    CHECK(rejected(n.event_stream(bad)));
    CHECK(rejected(n.presence(bad)));
    CHECK(rejected(n.task_results(bad)));
    CHECK(rejected(n.node_control(bad, "stats")));
    CHECK(rejected(n.node_control("node-1", bad)));
    if (bad.find('.') != std::string::npos)
      continue; // a dot just adds tokens to an event subject
    CHECK(rejected(n.event(bad + ".created")));
    CHECK(rejected(n.event("orders." + bad)));
    CHECK(rejected(n.event("orders.created." + bad)));
  }
}

TEST_CASE("builders for a single id report invalid_id naming the id",
          "[naming]") {
  auto n = make_naming("nova");
  auto x = n.inbox("a.b");
  REQUIRE_FALSE(x);
  CHECK(is(x.error(), errc::invalid_id));
  CHECK(describe(x.error()).find("'a.b'") != std::string::npos);
  CHECK(is(error_of(n.group("")), errc::invalid_id));
  CHECK(is(error_of(n.presence("x y")), errc::invalid_id));
  CHECK(is(error_of(n.task_results("s*")), errc::invalid_id));
  CHECK(is(error_of(n.event_stream("a>")), errc::invalid_id));
  CHECK(is(error_of(n.node_control("n.1", "stats")), errc::invalid_id));
  CHECK(is(error_of(n.node_control("n1", "st.ats")), errc::invalid_id));
}

TEST_CASE("an event subject needs a domain and an action", "[naming]") {
  auto n = make_naming("nova");
  CHECK(rejected(n.event("orders")));
  CHECK(rejected(n.event("")));
  CHECK(rejected(n.event(".")));
  CHECK(rejected(n.event("orders.")));
  CHECK(rejected(n.event(".created")));
  CHECK(rejected(n.event("orders..created")));
  CHECK(rejected(n.event("orders.*")));
  CHECK(rejected(n.event("orders.>")));
  CHECK(rejected(n.event("*.created")));
}

TEST_CASE("an invalid prefix is rejected", "[naming]") {
  for (std::string bad : {"", ".", "nova.", ".nova", "a..b", "no va", "nova.*",
                          "nova.>", "*", ">", "a/b", "caf\xc3\xa9"}) {
    INFO("prefix '" << bad << "'");
    auto n = naming::make(bad);
    REQUIRE_FALSE(n);
    CHECK(is(n.error(), errc::invalid_argument));
  }
  CHECK_FALSE(naming::make(std::string(65, 'p')));
}

TEST_CASE("a prefix of several valid tokens is accepted", "[naming]") {
  CHECK(naming::make("a"));
  CHECK(naming::make("a.b.c"));
  CHECK(naming::make("test-run_42.x"));
  CHECK(naming::make(std::string(64, 'p') + "." + std::string(64, 'q')));
}

// -- check_subject ------------------------------------------------------------

TEST_CASE("check_subject without wildcards accepts dot-separated ids",
          "[naming]") {
  CHECK_FALSE(check_subject("a", false));
  CHECK_FALSE(check_subject("orders.created", false));
  CHECK_FALSE(check_subject("a.b.c.d-e.f_g", false));
  CHECK_FALSE(check_subject(std::string(64, 'x') + ".y", false));
}

TEST_CASE("check_subject without wildcards rejects wildcards and malformed "
          "tokens",
          "[naming]") {
  for (std::string bad : {"", ".", "a.", ".a", "a..b", "*", ">", "a.*",
                          "a.>", "*.b", "a b", "a.b c", "a/b", "a.caf\xc3\xa9",
                          "a.b*"}) {
    INFO("subject '" << bad << "'");
    auto err = check_subject(bad, false);
    CHECK(is(err, errc::invalid_argument));
  }
  CHECK(is(check_subject("a." + std::string(65, 'x'), false),
           errc::invalid_argument));
}

TEST_CASE("check_subject with wildcards accepts * anywhere and > last",
          "[naming]") {
  for (std::string ok : {"a", "a.b", "*", ">", "a.*", "*.b", "a.*.c", "a.>",
                         "*.>", "*.*.*", "a.*.>"}) {
    INFO("subject '" << ok << "'");
    CHECK_FALSE(check_subject(ok, true));
  }
}

TEST_CASE("check_subject with wildcards rejects > before the end and "
          "partial-token wildcards",
          "[naming]") {
  for (std::string bad : {"", "a.>.b", ">.a", ">.>", "a*", "a.b*", "*a",
                          "a.>>", "a.**", "a..>", "a.*.", ".*", "a >"}) {
    INFO("subject '" << bad << "'");
    CHECK(is(check_subject(bad, true), errc::invalid_argument));
  }
}

// -- subject_matches ----------------------------------------------------------

TEST_CASE("a pattern without wildcards matches only the same subject",
          "[naming]") {
  CHECK(subject_matches("a", "a"));
  CHECK(subject_matches("a.b.c", "a.b.c"));
  CHECK_FALSE(subject_matches("a.b.c", "a.b"));
  CHECK_FALSE(subject_matches("a.b", "a.b.c"));
  CHECK_FALSE(subject_matches("a.b", "a.c"));
  CHECK_FALSE(subject_matches("a", "b"));
}

TEST_CASE("tokens never match partially", "[naming]") {
  CHECK_FALSE(subject_matches("a.b", "a.bc"));
  CHECK_FALSE(subject_matches("a.bc", "a.b"));
  CHECK_FALSE(subject_matches("ab.c", "a.c"));
  CHECK_FALSE(subject_matches("a", "ab"));
  CHECK_FALSE(subject_matches("ab", "a"));
  CHECK_FALSE(subject_matches("orders", "orders.created"));
  CHECK_FALSE(subject_matches("orders.created", "orders"));
}

TEST_CASE("* matches exactly one token", "[naming]") {
  CHECK(subject_matches("a.*", "a.b"));
  CHECK(subject_matches("*", "a"));
  CHECK(subject_matches("*.b", "a.b"));
  CHECK(subject_matches("a.*.c", "a.x.c"));
  CHECK(subject_matches("*.*", "a.b"));
  CHECK_FALSE(subject_matches("a.*", "a"));
  CHECK_FALSE(subject_matches("a.*", "a.b.c"));
  CHECK_FALSE(subject_matches("*", "a.b"));
  CHECK_FALSE(subject_matches("a.*.c", "a.x.d"));
  CHECK_FALSE(subject_matches("a.*.c", "a.c"));
  CHECK_FALSE(subject_matches("*.b", "b"));
  CHECK_FALSE(subject_matches("a.*", "b.c"));
}

TEST_CASE("* never matches an empty token", "[naming]") {
  CHECK_FALSE(subject_matches("a.*", "a."));
  CHECK_FALSE(subject_matches("*.b", ".b"));
  CHECK_FALSE(subject_matches("a.*.c", "a..c"));
  CHECK_FALSE(subject_matches("*", ""));
}

TEST_CASE("> matches one or more trailing tokens", "[naming]") {
  CHECK(subject_matches("a.>", "a.b"));
  CHECK(subject_matches("a.>", "a.b.c"));
  CHECK(subject_matches("a.>", "a.b.c.d.e"));
  CHECK(subject_matches(">", "a"));
  CHECK(subject_matches(">", "a.b.c"));
  CHECK(subject_matches("*.>", "a.b"));
  CHECK(subject_matches("a.*.>", "a.b.c"));
  CHECK_FALSE(subject_matches("a.>", "a"));
  CHECK_FALSE(subject_matches("a.>", "a."));
  CHECK_FALSE(subject_matches("a.>", "b.c"));
  CHECK_FALSE(subject_matches("a.>", "ab.c"));
  CHECK_FALSE(subject_matches("*.>", "a"));
  CHECK_FALSE(subject_matches("a.*.>", "a.b"));
  CHECK_FALSE(subject_matches(">", ""));
}

TEST_CASE("event subscriptions match the events they are meant to",
          "[naming]") {
  CHECK(subject_matches("orders.*", "orders.created"));
  CHECK(subject_matches("orders.>", "orders.created.eu"));
  CHECK(subject_matches("*.created", "orders.created"));
  CHECK_FALSE(subject_matches("orders.*", "orders.created.eu"));
  CHECK_FALSE(subject_matches("orders.*", "billing.created"));
  CHECK_FALSE(subject_matches("*.created", "orders.deleted"));
}
