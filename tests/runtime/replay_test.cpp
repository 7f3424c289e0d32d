// Unit tests of `nova replay`'s parts that need no store: the --since
// parser, stream names, line and JSON formatting, and bad input.

#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "runtime/replay.hpp"

using nova::parse_since;
using nova::replay_options;
using nova::run_replay;

namespace {

// 2026-11-22T10:00:00Z
constexpr int64_t t0 = 1795341600000;

std::string since(const std::string& x, int64_t now = t0) {
  auto r = parse_since(x, now);
  if (!r)
    FAIL("parse_since('" << x << "'): " << nova::describe(r.error()));
  return *r;
}

std::string since_error(const std::string& x) {
  auto r = parse_since(x, t0);
  if (r)
    FAIL("parse_since('" << x << "') accepted it as " << *r);
  CHECK(nova::is(r.error(), nova::errc::invalid_argument));
  return nova::describe(r.error());
}

nova::stored_envelope sample(std::string payload) {
  nova::stored_envelope x;
  x.entry_id = "1795341600123-4";
  x.env.id = "01JXXXXXXXXXXXXXXXXXXXXXXX";
  x.env.from = "alice";
  x.env.to = "bob";
  x.env.kind = nova::kind::direct;
  x.env.created_at = t0 + 250;
  x.env.subject = "chat.say";
  x.env.payload = std::move(payload);
  return x;
}

} // namespace

TEST_CASE("replay --since reads the start, entry ids and unix ms as they are",
          "[replay]") {
  CHECK(since("-") == "-");
  CHECK(since("") == "-");
  CHECK(since("start") == "-");
  CHECK(since("1700000000000-0") == "1700000000000-0");
  CHECK(since("1700000000000-17") == "1700000000000-17");
  CHECK(since("1700000000000") == "1700000000000-0");
  CHECK(since("0") == "0-0");
}

TEST_CASE("replay --since takes an age as now minus that", "[replay]") {
  CHECK(since("30s") == std::to_string(t0 - 30'000) + "-0");
  CHECK(since("10m") == std::to_string(t0 - 600'000) + "-0");
  CHECK(since("2h") == std::to_string(t0 - 7'200'000) + "-0");
  CHECK(since("1d") == std::to_string(t0 - 86'400'000) + "-0");
  CHECK(since("0s") == std::to_string(t0) + "-0");
  // Older than the epoch: from the start of time.
  CHECK(since("100000d") == "0-0");
  CHECK(since("5s", 1000) == "0-0");
}

TEST_CASE("replay --since takes ISO-8601 times with a zone", "[replay]") {
  CHECK(since("2026-11-22T10:00:00Z") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22t10:00:00z") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22 10:00:00Z") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22T10:00Z") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22T10:00:00.250Z") == std::to_string(t0 + 250) + "-0");
  CHECK(since("2026-11-22T10:00:00.5Z") == std::to_string(t0 + 500) + "-0");
  CHECK(since("2026-11-22T10:00:00.123456Z") == std::to_string(t0 + 123) + "-0");
  CHECK(since("2026-11-22T12:00:00+02:00") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22T05:30:00-0430") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22T11:00:00+01") == std::to_string(t0) + "-0");
  CHECK(since("2026-11-22") == std::to_string(t0 - 36'000'000) + "-0");
  CHECK(since("1970-01-01T00:00:00Z") == "0-0");
  CHECK(since("2000-02-29T00:00:00Z") == "951782400000-0");
  CHECK(since("2023-11-14T22:13:20Z") == "1700000000000-0");
}

TEST_CASE("replay --since refuses anything else with a message listing the "
          "forms",
          "[replay]") {
  for (auto bad : {"yesterday", "10x", "s", "-5s", "1.5h", "10 m",
                   "1700000000000-", "-0", "1-2-3", "abc-1", "2026-11-22T",
                   "2026-11-22T10", "2026-11-22T10:00:00",
                   "2026-11-22T10:00:00+2", "2026-11-22T10:00:00Zjunk",
                   "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                   "2026-11-22T24:00:00Z", "2026-11-22T10:60:00Z",
                   "1969-12-31T23:59:59Z", "99999999999999999999",
                   "99999999999999999999-0", "99999999999999999999s"}) {
    INFO(bad);
    auto msg = since_error(bad);
    CHECK(msg.find("--since '") != std::string::npos);
    CHECK(msg.find("2026-11-22T10:00:00Z") != std::string::npos);
  }
  CHECK(since_error("2026-11-22T10:00:00").find("no time zone")
        != std::string::npos);
  CHECK(since_error("2026-02-30").find("no such date") != std::string::npos);
}

TEST_CASE("replay streams are full keys or the part after the prefix",
          "[replay]") {
  auto names = *nova::naming::make("nova");
  auto resolve = [&](const std::string& x) {
    auto r = nova::resolve_replay_stream(names, x);
    if (!r)
      FAIL(x << ": " << nova::describe(r.error()));
    return *r;
  };
  CHECK(resolve("inbox.bob") == "nova.inbox.bob");
  CHECK(resolve("nova.inbox.bob") == "nova.inbox.bob");
  CHECK(resolve("events.billing") == "nova.events.billing");
  CHECK(resolve("nova.events.billing") == "nova.events.billing");
  CHECK(resolve("broadcast.all") == "nova.broadcast.all");
  CHECK(resolve("group.ops") == "nova.group.ops");
  CHECK(resolve("emergency") == "nova.emergency");
  CHECK(resolve("nova.emergency") == "nova.emergency");
  CHECK(resolve("durable.dead") == "nova.durable.dead");
  auto odd = *nova::naming::make("events");
  CHECK(*nova::resolve_replay_stream(odd, "events.billing")
        == "events.events.billing");
  CHECK(*nova::resolve_replay_stream(odd, "events.events.billing")
        == "events.events.billing");
  auto multi = *nova::naming::make("prod.eu");
  CHECK(*nova::resolve_replay_stream(multi, "prod.eu.inbox.bob")
        == "prod.eu.inbox.bob");
  CHECK(*nova::resolve_replay_stream(multi, "inbox.bob")
        == "prod.eu.inbox.bob");
  for (auto bad : {"inbox.b b", "inbox.", "group.a.b", "events.bill.paid",
                   "inbox.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaa"}) {
    INFO(bad);
    auto r = nova::resolve_replay_stream(names, bad);
    REQUIRE(!r);
    CHECK(nova::is(r.error(), nova::errc::invalid_id));
  }
  for (auto bad : {"", "bob", "broadcast.some", "emergency.x", "other.inbox.bob",
                   "presence.bob", "tasks.dead", "nova"}) {
    INFO(bad);
    auto r = nova::resolve_replay_stream(names, bad);
    REQUIRE(!r);
    CHECK(nova::is(r.error(), nova::errc::invalid_argument));
  }
  auto msg = nova::describe(
    nova::resolve_replay_stream(names, "other.inbox.bob").error());
  CHECK(msg.find("inbox.<id>") != std::string::npos);
}

TEST_CASE("a replay line shows entry, time, kind, route, subject and payload",
          "[replay]") {
  CHECK(nova::iso_time(t0 + 250) == "2026-11-22T10:00:00.250Z");
  CHECK(nova::iso_time(0) == "1970-01-01T00:00:00.000Z");
  CHECK(nova::format_replay_line(sample("hello"))
        == "1795341600123-4 2026-11-22T10:00:00.250Z direct alice -> bob "
           "chat.say hello");
  auto ev = sample("x\ny");
  ev.env.kind = nova::kind::broadcast;
  ev.env.to.clear();
  ev.env.subject.clear();
  ev.env.created_at = 0; // the entry id's time then
  CHECK(nova::format_replay_line(ev)
        == "1795341600123-4 2026-11-22T10:00:00.123Z broadcast alice -> * - "
           "x\\ny");
}

TEST_CASE("replay lines cut long payloads and show binary ones as a size",
          "[replay]") {
  auto long_line = nova::format_replay_line(sample(std::string(200, 'a')));
  CHECK(long_line.size() < 200);
  CHECK(long_line.find(std::string(80, 'a') + "...") != std::string::npos);
  CHECK(long_line.find(std::string(81, 'a')) == std::string::npos);
  // Exactly 80 characters: nothing cut.
  auto exact = nova::format_replay_line(sample(std::string(80, 'b')));
  CHECK(exact.find("...") == std::string::npos);
  // Multi-byte characters count as one and are never split.
  std::string umlauts;
  for (int i = 0; i < 100; ++i)
    umlauts += "\xc3\xa4";
  auto u = nova::format_replay_line(sample(umlauts));
  std::string eighty;
  for (int i = 0; i < 80; ++i)
    eighty += "\xc3\xa4";
  CHECK(u.find(eighty + "...") != std::string::npos);
  CHECK(nova::format_replay_line(sample(std::string("\x00\x01\xff", 3)))
          .find("<3 bytes>")
        != std::string::npos);
  CHECK(nova::format_replay_line(sample("\xc3\x28 broken utf-8"))
          .find("<15 bytes>")
        != std::string::npos);
  auto typed = sample("plain ascii");
  typed.env.content_type = "application/octet-stream";
  CHECK(nova::format_replay_line(typed).find("<11 bytes>") != std::string::npos);
  CHECK(nova::format_replay_line(sample("")).find("<0 bytes>")
        != std::string::npos);
}

TEST_CASE("replay JSON is the canonical envelope plus the entry id",
          "[replay]") {
  auto x = sample("hi");
  x.env.headers["trace"] = "t1";
  auto line = nova::format_replay_json(x);
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  CHECK(j["entry"] == "1795341600123-4");
  CHECK(j["from"] == "alice");
  CHECK(j["to"] == "bob");
  CHECK(j["subject"] == "chat.say");
  CHECK(j["payload"] == "aGk=");
  CHECK(j["headers"]["trace"] == "t1");
  auto back = nova::from_json<nova::envelope>(line);
  REQUIRE(back);
  CHECK(*back == x.env);
}

TEST_CASE("run_replay refuses bad input with exit code 2 before connecting",
          "[replay]") {
  auto run = [](replay_options opts) {
    // Nothing listens there; bad input must fail before any connect.
    opts.dragonfly_url = "redis://127.0.0.1:1";
    std::ostringstream out;
    std::ostringstream err;
    auto code = run_replay(opts, out, err);
    CHECK(out.str().empty());
    return std::make_pair(code, err.str());
  };
  replay_options ok;
  ok.stream = "inbox.bob";
  {
    auto o = ok;
    o.since = "yesterday";
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.rfind("nova replay: --since 'yesterday'", 0) == 0);
  }
  {
    auto o = ok;
    o.stream = "inbox.b b";
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.find("'b b'") != std::string::npos);
  }
  {
    auto o = ok;
    o.stream = "whatever";
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.find("is not a stream") != std::string::npos);
  }
  {
    auto o = ok;
    o.subject = "a.>.b";
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.find("--subject 'a.>.b'") != std::string::npos);
  }
  {
    auto o = ok;
    o.limit = 0;
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.find("--limit") != std::string::npos);
  }
  {
    auto o = ok;
    o.prefix = "bad prefix";
    auto [code, msg] = run(o);
    CHECK(code == 2);
    CHECK(msg.find("--prefix") != std::string::npos);
  }
  {
    std::ostringstream out;
    std::ostringstream err;
    auto o = ok;
    o.dragonfly_url = "http://127.0.0.1:6379";
    CHECK(run_replay(o, out, err) == 2);
    CHECK(err.str().find("--dragonfly-url") != std::string::npos);
  }
}
