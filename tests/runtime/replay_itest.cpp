// Tests of `nova replay` against a real redis-server: the logic function
// (`run_replay`) and the `nova` binary as a process.

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cluster/durable_store.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/replay.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using nova::durable_store;
using nova::envelope;
using nova::replay_options;
using nova::testing::bin;
using nova::testing::process;
using nova::testing::redis_server;

namespace {

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

struct fixture {
  explicit fixture(const std::string& prefix = "nova")
    : pool(std::make_shared<nova::redis_pool>(
      must(nova::redis_pool::make(must(nova::redis_settings::from_url(srv.url())))))),
      store(must(durable_store::make(pool, must(nova::naming::make(prefix))))) {
    // nop
  }

  std::string append(const envelope& e) {
    return must(store->append(e));
  }

  redis_server srv;
  std::shared_ptr<nova::redis_pool> pool;
  std::shared_ptr<durable_store> store;
};

envelope direct(const std::string& to, const std::string& payload,
                const std::string& subject = "chat.say") {
  envelope e;
  e.id = nova::new_message_id();
  e.from = "alice";
  e.to = to;
  e.kind = nova::kind::direct;
  e.created_at = nova::now_ms();
  e.subject = subject;
  e.content_type = "text/plain";
  e.payload = payload;
  return e;
}

envelope event_of(const std::string& subject) {
  envelope e;
  e.id = nova::new_message_id();
  e.from = "shop";
  e.kind = nova::kind::event;
  e.created_at = nova::now_ms();
  e.subject = subject;
  e.payload = "payload of " + subject;
  return e;
}

std::vector<std::string> lines_of(const std::string& x) {
  std::vector<std::string> out;
  std::istringstream in{x};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct run_result {
  int code = -1;
  std::string out;
  std::string err;

  std::vector<std::string> lines() const {
    return lines_of(out);
  }
};

/// `run_replay` against the fixture's server.
run_result replay_with(const fixture& f, replay_options opts) {
  opts.dragonfly_url = f.srv.url();
  std::ostringstream out;
  std::ostringstream err;
  run_result r;
  r.code = nova::run_replay(opts, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

run_result replay(const fixture& f, const std::string& stream) {
  replay_options opts;
  opts.stream = stream;
  return replay_with(f, std::move(opts));
}

/// `nova replay ARGS...`; the process prints stdout and stderr into one log.
run_result nova_replay(std::vector<std::string> args) {
  std::vector<std::string> argv{bin("nova"), "replay"};
  argv.insert(argv.end(), args.begin(), args.end());
  process p{argv};
  REQUIRE(p.started());
  auto code = p.wait(20s);
  REQUIRE(code);
  run_result r;
  r.code = *code;
  r.out = p.output();
  return r;
}

/// The entry ids at the start of readable lines, footer skipped.
std::vector<std::string> entries_of(const run_result& r) {
  std::vector<std::string> out;
  for (auto& line : r.lines())
    if (!line.empty() && line[0] != '-' && line[0] != '{')
      out.push_back(line.substr(0, line.find(' ')));
  return out;
}

} // namespace

TEST_CASE("replay prints an inbox oldest first, one line per envelope, with "
          "a footer",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto a = f.append(direct("bob", "first"));
  auto b = f.append(direct("bob", "second"));
  f.append(direct("carol", "not for bob"));
  auto c = f.append(direct("bob", std::string(120, 'x')));
  auto r = replay(f, "inbox.bob");
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());
  auto lines = r.lines();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].rfind(a + " ", 0) == 0);
  CHECK(contains(lines[0], " direct alice -> bob chat.say first"));
  CHECK(contains(lines[0], "Z direct"));
  CHECK(lines[1].rfind(b + " ", 0) == 0);
  CHECK(lines[2].rfind(c + " ", 0) == 0);
  CHECK(contains(lines[2], std::string(80, 'x') + "..."));
  CHECK_FALSE(contains(lines[2], std::string(81, 'x')));
  CHECK(lines[3] == "-- 3 envelopes from nova.inbox.bob");
  // The full key reads the same stream.
  auto full = replay(f, "nova.inbox.bob");
  CHECK(full.out == r.out);
}

TEST_CASE("replay reads every durable stream of the wire contract",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto bc = direct("", "to all");
  bc.kind = nova::kind::broadcast;
  f.append(bc);
  auto mc = direct("ops", "to ops");
  mc.kind = nova::kind::multicast;
  f.append(mc);
  auto em = direct("", "fire");
  em.kind = nova::kind::emergency;
  em.priority = nova::priority::urgent;
  f.append(em);
  f.append(event_of("billing.paid"));
  auto one = [&](const std::string& stream, const std::string& text) {
    auto r = replay(f, stream);
    INFO(stream << ": " << r.out << r.err);
    CHECK(r.code == 0);
    REQUIRE(r.lines().size() == 2);
    CHECK(contains(r.lines()[0], text));
  };
  one("broadcast.all", "broadcast alice -> * chat.say to all");
  one("group.ops", "multicast alice -> ops chat.say to ops");
  one("emergency", "emergency alice -> * chat.say fire");
  one("events.billing", "event shop -> * billing.paid payload of billing.paid");
  // A stream nobody wrote to is empty, not an error.
  auto none = replay(f, "inbox.nobody");
  CHECK(none.code == 0);
  CHECK(none.out == "-- no envelopes in nova.inbox.nobody\n");
}

TEST_CASE("replay --since takes entry ids, unix ms, ages and ISO times",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto old1 = f.append(direct("bob", "old 1"));
  auto old2 = f.append(direct("bob", "old 2"));
  // Ages have a resolution of seconds: "2s" must tell old from new however
  // slowly the checks below run, so it goes first.
  std::this_thread::sleep_for(2100ms);
  auto boundary = nova::now_ms();
  std::this_thread::sleep_for(5ms);
  auto new1 = f.append(direct("bob", "new 1"));
  auto new2 = f.append(direct("bob", "new 2"));
  auto since = [&](const std::string& when) {
    replay_options o;
    o.stream = "inbox.bob";
    o.since = when;
    auto r = replay_with(f, o);
    INFO(when << ": " << r.out << r.err);
    CHECK(r.code == 0);
    return entries_of(r);
  };
  using ids = std::vector<std::string>;
  auto r = replay_with(f, [] {
    replay_options o;
    o.stream = "inbox.bob";
    o.since = "2s";
    return o;
  }());
  CHECK(entries_of(r) == ids{new1, new2});
  CHECK(contains(r.out, "-- 2 envelopes from nova.inbox.bob since "));
  CHECK(since("-") == ids{old1, old2, new1, new2});
  CHECK(since("start") == ids{old1, old2, new1, new2});
  CHECK(since(old2) == ids{old2, new1, new2});
  CHECK(since(std::to_string(boundary)) == ids{new1, new2});
  CHECK(since(nova::iso_time(boundary)) == ids{new1, new2});
  CHECK(since("1h") == ids{old1, old2, new1, new2});
  CHECK(since("2999-01-01T00:00:00Z").empty());
}

TEST_CASE("replay --subject keeps only envelopes whose subject matches",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto paid = f.append(event_of("billing.paid"));
  auto refund = f.append(event_of("billing.refund"));
  auto eu = f.append(event_of("billing.eu.paid"));
  auto subject = [&](const std::string& pattern) {
    replay_options o;
    o.stream = "events.billing";
    o.subject = pattern;
    auto r = replay_with(f, o);
    INFO(pattern << ": " << r.out << r.err);
    CHECK(r.code == 0);
    return entries_of(r);
  };
  using ids = std::vector<std::string>;
  CHECK(subject("") == ids{paid, refund, eu});
  CHECK(subject("billing.*") == ids{paid, refund});
  CHECK(subject("billing.>") == ids{paid, refund, eu});
  CHECK(subject("billing.*.paid") == ids{eu});
  CHECK(subject("billing.paid") == ids{paid});
  CHECK(subject("orders.>").empty());
}

TEST_CASE("replay --limit cuts the output and says how to continue",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(f.append(direct("bob", "m" + std::to_string(i))));
  replay_options o;
  o.stream = "inbox.bob";
  o.limit = 2;
  auto r = replay_with(f, o);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(entries_of(r) == std::vector<std::string>{ids[0], ids[1]});
  CHECK(r.lines().back()
        == "-- 2 envelopes from nova.inbox.bob; limit 2 reached, continue "
           "with --since "
             + ids[2]);
  o.since = ids[2];
  r = replay_with(f, o);
  CHECK(entries_of(r) == std::vector<std::string>{ids[2], ids[3]});
  CHECK(contains(r.out, "continue with --since " + ids[4]));
  o.since = ids[4];
  r = replay_with(f, o);
  CHECK(entries_of(r) == std::vector<std::string>{ids[4]});
  CHECK_FALSE(contains(r.out, "limit"));
  // A limit that is exactly met has nothing left to continue with.
  o.since = "-";
  o.limit = 5;
  r = replay_with(f, o);
  CHECK(entries_of(r).size() == 5);
  CHECK_FALSE(contains(r.out, "continue"));
  // With a filter the continuation is the next match.
  f.append(event_of("billing.paid"));
  f.append(event_of("billing.refund"));
  auto third = f.append(event_of("billing.paid"));
  replay_options e;
  e.stream = "events.billing";
  e.subject = "billing.paid";
  e.limit = 1;
  r = replay_with(f, e);
  CHECK(contains(r.out, "continue with --since " + third));
}

TEST_CASE("replay --json prints the canonical envelope plus the entry id",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto e1 = direct("bob", "hello");
  e1.headers["trace"] = "t1";
  auto id1 = f.append(e1);
  auto id2 = f.append(direct("bob", std::string("\x00\xff", 2)));
  replay_options o;
  o.stream = "inbox.bob";
  o.json = true;
  auto r = replay_with(f, o);
  REQUIRE(r.code == 0);
  auto lines = r.lines();
  REQUIRE(lines.size() == 2); // no footer
  auto j = nlohmann::json::parse(lines[0]);
  CHECK(j["entry"] == id1);
  CHECK(j["id"] == std::string{std::string_view{e1.id}});
  CHECK(j["from"] == "alice");
  CHECK(j["to"] == "bob");
  CHECK(j["kind"] == "KIND_DIRECT");
  CHECK(j["payload"] == "aGVsbG8=");
  CHECK(j["headers"]["trace"] == "t1");
  auto back = nova::from_json<envelope>(lines[0]);
  REQUIRE(back);
  CHECK(*back == e1);
  CHECK(nlohmann::json::parse(lines[1])["entry"] == id2);
}

TEST_CASE("replay skips undecodable entries and shows binary payloads as a "
          "size",
          "[replay]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto good = f.append(direct("bob", std::string("\x01\x02\x03\xff", 4)));
  // An overlong varint: never valid protobuf.
  must(f.pool->command({"XADD", "nova.inbox.bob", "*", "id", "x", "envelope",
                        std::string(12, '\xff')}));
  must(f.pool->command({"XADD", "nova.inbox.bob", "*", "just", "junk"}));
  auto r = replay(f, "inbox.bob");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(entries_of(r) == std::vector<std::string>{good});
  CHECK(contains(r.out, "chat.say <4 bytes>"));
  CHECK(contains(r.out, "-- 1 envelope from nova.inbox.bob (2 undecodable "
                        "entries skipped)"));
}

TEST_CASE("replay fails cleanly when the store is unreachable", "[replay]") {
  replay_options o;
  o.stream = "inbox.bob";
  o.dragonfly_url = "redis://:s3cret@127.0.0.1:"
                    + std::to_string(nova::testing::free_port());
  std::ostringstream out;
  std::ostringstream err;
  CHECK(nova::run_replay(o, out, err) == 1);
  CHECK(out.str().empty());
  CHECK(contains(err.str(), "nova replay: cannot reach the store at "
                            "redis://:***@127.0.0.1:"));
  CHECK_FALSE(contains(err.str(), "s3cret"));
  CHECK(contains(err.str(), "DRAGONFLY_URL"));
}

TEST_CASE("nova replay prints a stream and exits 0", "[replay][cli]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f{"t1"};
  auto a = f.append(direct("bob", "hello from the cli"));
  auto b = f.append(direct("bob", "second"));
  auto r = nova_replay({"--prefix", "t1", "--dragonfly-url", f.srv.url(),
                        "inbox.bob"});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(entries_of(r) == std::vector<std::string>{a, b});
  CHECK(contains(r.out, "direct alice -> bob chat.say hello from the cli"));
  CHECK(contains(r.out, "-- 2 envelopes from t1.inbox.bob"));
  // The full key, --since, --limit.
  r = nova_replay({"--prefix", "t1", "--dragonfly-url", f.srv.url(),
                   "t1.inbox.bob", "--since", b});
  CHECK(entries_of(r) == std::vector<std::string>{b});
  r = nova_replay({"--prefix=t1", "--dragonfly-url=" + f.srv.url(),
                   "inbox.bob", "--limit", "1", "--since=-"});
  CHECK(r.code == 0);
  CHECK(entries_of(r) == std::vector<std::string>{a});
  CHECK(contains(r.out, "continue with --since " + b));
  r = nova_replay({"--prefix", "t1", "--dragonfly-url", f.srv.url(),
                   "inbox.bob", "--since", "10m"});
  CHECK(entries_of(r) == std::vector<std::string>{a, b});
}

TEST_CASE("nova replay reads DRAGONFLY_URL and NOVA_PREFIX from the "
          "environment",
          "[replay][cli]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f{"envp"};
  auto a = f.append(event_of("billing.paid"));
  f.append(event_of("billing.refund"));
  ::setenv("DRAGONFLY_URL", f.srv.url().c_str(), 1);
  ::setenv("NOVA_PREFIX", "envp", 1);
  auto r = nova_replay({"events.billing", "--subject", "billing.paid"});
  ::unsetenv("DRAGONFLY_URL");
  ::unsetenv("NOVA_PREFIX");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(entries_of(r) == std::vector<std::string>{a});
}

TEST_CASE("nova replay --json prints lines that parse as JSON",
          "[replay][cli]") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> ids;
  for (auto s : {"billing.paid", "billing.refund", "billing.eu.paid"})
    ids.push_back(f.append(event_of(s)));
  auto r = nova_replay({"--dragonfly-url", f.srv.url(), "--json",
                        "nova.events.billing", "--subject", "billing.*"});
  INFO(r.out);
  CHECK(r.code == 0);
  auto lines = r.lines();
  REQUIRE(lines.size() == 2);
  for (size_t i = 0; i < lines.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i], nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    CHECK(j["entry"] == ids[i]);
    CHECK(j["kind"] == "KIND_EVENT");
    CHECK(j["from"] == "shop");
  }
  CHECK(nlohmann::json::parse(lines[1])["subject"] == "billing.refund");
}

TEST_CASE("nova replay explains bad input with exit code 2 and an "
          "unreachable store with 1",
          "[replay][cli]") {
  auto url = "redis://127.0.0.1:" + std::to_string(nova::testing::free_port());
  auto bad = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), {"--dragonfly-url", url});
    auto r = nova_replay(args);
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(contains(r.out, text));
  };
  bad({"inbox.bob", "--since", "yesterday"},
      "nova replay: --since 'yesterday': expected an entry id");
  bad({"inbox.bob", "--since", "2026-11-22T10:00:00"}, "no time zone");
  bad({"inbox.b@b"}, "'b@b' does not match [A-Za-z0-9_-]{1,64}");
  bad({"mailbox.bob"}, "is not a stream of prefix 'nova'");
  bad({"inbox.bob", "--subject", "a..b"}, "--subject 'a..b'");
  bad({"inbox.bob", "--limit", "0"}, "--limit");
  bad({}, "stream is required");
  {
    auto r = nova_replay({"--dragonfly-url", "http://x", "inbox.bob"});
    CHECK(r.code == 2);
    CHECK(contains(r.out, "--dragonfly-url"));
  }
  auto r = nova_replay({"--dragonfly-url", url, "inbox.bob"});
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "nova replay: cannot reach the store at " + url));
}
