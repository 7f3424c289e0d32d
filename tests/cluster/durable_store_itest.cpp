// Tests of the durable delivery class in the store against real redis-server
// processes, and of the dedup window.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/durable_store.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using nova::dedup_window;
using nova::durable_store;
using nova::envelope;
using nova::errc;
using nova::malformed_entry;
using nova::msg_id;
using nova::redis_pool;
using nova::redis_settings;
using nova::redis_value;
using nova::stored_envelope;
using nova::testing::redis_server;

namespace {

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

void must_ok(const caf::error& err) {
  if (err)
    FAIL(nova::describe(err));
}

redis_settings settings_for(const redis_server& srv) {
  auto s = must(redis_settings::from_url(srv.url()));
  s.connect_timeout = 1s;
  s.command_timeout = 2s;
  s.reconnect_base = 50ms;
  s.reconnect_max = 200ms;
  return s;
}

struct fixture {
  explicit fixture(durable_store::settings s = {})
    : pool(std::make_shared<redis_pool>(
      must(redis_pool::make(settings_for(srv))))),
      store(must(durable_store::make(pool, must(nova::naming::make()), s))) {
    // nop
  }

  std::shared_ptr<durable_store> with(durable_store::settings s) {
    return must(durable_store::make(pool, must(nova::naming::make()), s));
  }

  redis_value cmd(const std::vector<std::string>& argv) {
    return must(pool->command(argv));
  }

  int64_t xlen(const std::string& key) {
    return must(cmd({"XLEN", key}).as_int());
  }

  redis_server srv;
  std::shared_ptr<redis_pool> pool;
  std::shared_ptr<durable_store> store;
};

envelope direct(const std::string& from, const std::string& to,
                const std::string& payload = "hello") {
  envelope e;
  e.id = nova::new_message_id();
  e.from = from;
  e.to = to;
  e.kind = nova::kind::direct;
  e.created_at = nova::now_ms();
  e.subject = "chat.say";
  e.content_type = "text/plain";
  e.payload = payload;
  e.headers["trace"] = "t1";
  return e;
}

envelope event_of(const std::string& subject) {
  envelope e;
  e.id = nova::new_message_id();
  e.from = "shop";
  e.kind = nova::kind::event;
  e.created_at = nova::now_ms();
  e.subject = subject;
  e.payload = subject;
  return e;
}

std::optional<std::string> field(const redis_value& fields,
                                 const std::string& name) {
  for (size_t i = 0; i + 1 < fields.size(); i += 2)
    if (fields[i].str == name)
      return fields[i + 1].str;
  return std::nullopt;
}

std::vector<std::string> entry_ids(const std::vector<stored_envelope>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.entry_id);
  return out;
}

std::vector<std::string> payloads(const std::vector<stored_envelope>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.env.payload);
  return out;
}

} // namespace

TEST_CASE("an appended envelope reads back whole with plain id, from, kind "
          "and subject fields") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto env = direct("alice", "bob");
  auto entry = must(f.store->append(env));
  CHECK(must(f.store->stream_for(env)) == "nova.inbox.bob");
  auto r = f.cmd({"XRANGE", "nova.inbox.bob", "-", "+"});
  REQUIRE(r.size() == 1);
  CHECK(r[0][0].str == entry);
  auto& fields = r[0][1];
  CHECK(field(fields, "id") == env.id.str());
  CHECK(field(fields, "from") == std::string{"alice"});
  CHECK(field(fields, "kind") == std::string{"direct"});
  CHECK(field(fields, "subject") == std::string{"chat.say"});
  auto raw = field(fields, "envelope");
  REQUIRE(raw);
  CHECK(must(nova::decode<envelope>(*raw)) == env);
  CHECK(must(f.store->length("nova.inbox.bob")) == 1);
}

TEST_CASE("an envelope without a subject is stored without a subject field "
          "and reads back whole") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto env = direct("alice", "bob");
  env.subject.clear();
  must(f.store->append(env));
  auto r = f.cmd({"XRANGE", "nova.inbox.bob", "-", "+"});
  REQUIRE(r.size() == 1);
  CHECK_FALSE(field(r[0][1], "subject"));
  CHECK(field(r[0][1], "kind") == std::string{"direct"});
  auto xs = must(f.store->pending_and_new("bob", 10));
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].env == env);
}

TEST_CASE("envelopes of each kind go to the stream of the wire contract") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto b = direct("alice", "");
  b.kind = nova::kind::broadcast;
  auto m = direct("alice", "ops");
  m.kind = nova::kind::multicast;
  CHECK(must(f.store->stream_for(b)) == "nova.broadcast.all");
  CHECK(must(f.store->stream_for(m)) == "nova.group.ops");
  CHECK(must(f.store->stream_for(event_of("orders.created")))
        == "nova.events.orders");
  auto bad = direct("alice", "no spaces");
  auto err = f.store->append(bad);
  REQUIRE(!err);
  CHECK(nova::is(err.error(), errc::invalid_id));
}

TEST_CASE("an oversized payload is refused before anything is appended") {
  NOVA_REQUIRE_REDIS_SERVER();
  durable_store::settings s;
  s.max_payload = 1024;
  fixture f{s};
  must(f.store->append(direct("alice", "bob", std::string(1024, 'x'))));
  auto before = f.xlen("nova.inbox.bob");
  auto r = f.store->append(direct("alice", "bob", std::string(1025, 'x')));
  REQUIRE(!r);
  CHECK(nova::is(r.error(), errc::payload_too_large));
  CHECK(f.xlen("nova.inbox.bob") == before);
  // A batch with one oversized envelope sends nothing at all.
  std::vector<envelope> batch{direct("alice", "bob"),
                              direct("alice", "bob", std::string(2000, 'y'))};
  auto rb = f.store->append_batch(batch);
  REQUIRE(!rb);
  CHECK(nova::is(rb.error(), errc::payload_too_large));
  CHECK(f.xlen("nova.inbox.bob") == before);
}

TEST_CASE("a Nova catches up in order and exactly once after acking") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> appended;
  for (int i = 0; i < 5; ++i)
    appended.push_back(
      must(f.store->append(direct("alice", "bob", "m" + std::to_string(i)))));
  // The backlog from before the first read is delivered.
  auto got = must(f.store->pending_and_new("bob", 100));
  CHECK(entry_ids(got) == appended);
  CHECK(payloads(got)
        == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"});
  CHECK(must(f.store->ack("bob", entry_ids(got))) == 5);
  CHECK(must(f.store->pending_and_new("bob", 100)).empty());
  // Acking again changes nothing.
  CHECK(must(f.store->ack("bob", entry_ids(got))) == 0);
}

TEST_CASE("unacked entries come back as pending before new ones") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  for (int i = 0; i < 3; ++i)
    must(f.store->append(direct("alice", "bob", "a" + std::to_string(i))));
  auto first = must(f.store->pending_and_new("bob", 100));
  REQUIRE(first.size() == 3);
  CHECK(must(f.store->ack("bob", {first[0].entry_id})) == 1);
  must(f.store->append(direct("alice", "bob", "b0")));
  // A count smaller than the pending list takes the oldest pending only.
  auto one = must(f.store->pending_and_new("bob", 1));
  CHECK(payloads(one) == std::vector<std::string>{"a1"});
  auto again = must(f.store->pending_and_new("bob", 100));
  CHECK(payloads(again) == std::vector<std::string>{"a1", "a2", "b0"});
  CHECK(again[0].entry_id == first[1].entry_id);
  CHECK(again[1].entry_id == first[2].entry_id);
  CHECK(must(f.store->ack("bob", entry_ids(again))) == 3);
  CHECK(must(f.store->pending_and_new("bob", 100)).empty());
}

TEST_CASE("acks passed to a read are settled before it reads, pending or "
          "new") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  for (int i = 0; i < 2; ++i)
    must(f.store->append(direct("alice", "bob", "a" + std::to_string(i))));
  auto first = must(f.store->pending_and_new("bob", 100));
  REQUIRE(first.size() == 2);
  must(f.store->append(direct("alice", "bob", "b0")));
  // Only new entries: the acked ones are gone from the pending list.
  auto next = must(f.store->pending_and_new("bob", 100, nullptr, false,
                                            {first[0].entry_id}));
  CHECK(payloads(next) == std::vector<std::string>{"b0"});
  // With pending: the ack goes first, so a1 is not handed out again.
  auto rest = must(f.store->pending_and_new("bob", 100, nullptr, true,
                                            {first[1].entry_id}));
  CHECK(payloads(rest) == std::vector<std::string>{"b0"});
  CHECK(must(f.store->ack("bob", entry_ids(rest))) == 1);
  CHECK(must(f.store->pending_and_new("bob", 100)).empty());
}

TEST_CASE("the inbox cursor is kept in the cursors hash and never moves "
          "back") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(must(f.store->append(direct("alice", "bob"))));
  CHECK(f.store->cursors_key() == "nova.durable.cursors");
  auto got = must(f.store->pending_and_new("bob", 100));
  REQUIRE(got.size() == 3);
  // Reading settles nothing.
  CHECK(f.cmd({"HGET", "nova.durable.cursors", "bob"}).is_nil());
  CHECK(must(f.store->ack("bob", {ids[2]})) == 1);
  CHECK(f.cmd({"HGET", "nova.durable.cursors", "bob"}).str == ids[2]);
  // Settling the greatest id settles everything before it; a late ack of
  // older entries changes nothing.
  CHECK(must(f.store->ack("bob", {ids[0], ids[1]})) == 0);
  CHECK(f.cmd({"HGET", "nova.durable.cursors", "bob"}).str == ids[2]);
  CHECK(must(f.store->pending_and_new("bob", 100)).empty());
  CHECK(must(f.store->pending("bob", 100)).empty());
  // Bad ids are refused before anything is written.
  auto bad = f.store->ack("bob", {"not-an-id"});
  REQUIRE(!bad);
  CHECK(nova::is(bad.error(), errc::invalid_argument));
}

TEST_CASE("reads without pending go on after the last entry handed out, "
          "while pending reads start at the cursor") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  for (int i = 0; i < 4; ++i)
    must(f.store->append(direct("alice", "bob", "a" + std::to_string(i))));
  auto first = must(f.store->pending_and_new("bob", 2));
  CHECK(payloads(first) == std::vector<std::string>{"a0", "a1"});
  auto next = must(f.store->pending_and_new("bob", 2, nullptr, false));
  CHECK(payloads(next) == std::vector<std::string>{"a2", "a3"});
  CHECK(must(f.store->pending_and_new("bob", 2, nullptr, false)).empty());
  // Another store (a restarted node) knows nothing handed out: the cursor.
  auto other = f.with({});
  auto again = must(other->pending_and_new("bob", 100, nullptr, false,
                                           {first[1].entry_id}));
  CHECK(payloads(again) == std::vector<std::string>{"a2", "a3"});
  CHECK(payloads(must(f.store->pending("bob", 100)))
        == std::vector<std::string>{"a2", "a3"});
}

TEST_CASE("an inbox read through the consumer group of earlier versions "
          "goes on where the group stood") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(
      must(f.store->append(direct("alice", "bob", "a" + std::to_string(i)))));
  for (int i = 0; i < 2; ++i)
    must(f.store->append(direct("alice", "carol", "c" + std::to_string(i))));
  // Bob's group: a0..a2 delivered, a0 acked; a1, a2 pending, a3 new.
  f.cmd({"XGROUP", "CREATE", "nova.inbox.bob", "nova.durable", "0"});
  f.cmd({"XREADGROUP", "GROUP", "nova.durable", "bob", "COUNT", "3",
         "STREAMS", "nova.inbox.bob", ">"});
  f.cmd({"XACK", "nova.inbox.bob", "nova.durable", ids[0]});
  CHECK(payloads(must(f.store->pending("bob", 100)))
        == std::vector<std::string>{"a1", "a2", "a3"});
  CHECK(payloads(must(f.store->pending_and_new("bob", 100)))
        == std::vector<std::string>{"a1", "a2", "a3"});
  // Carol's group: everything delivered and acked.
  f.cmd({"XGROUP", "CREATE", "nova.inbox.carol", "nova.durable", "0"});
  auto r = f.cmd({"XREADGROUP", "GROUP", "nova.durable", "carol", "COUNT",
                  "10", "STREAMS", "nova.inbox.carol", ">"});
  for (auto& e : r[0][1].elements)
    f.cmd({"XACK", "nova.inbox.carol", "nova.durable", e[0].str});
  CHECK(must(f.store->pending_and_new("carol", 100)).empty());
  must(f.store->append(direct("alice", "carol", "c2")));
  CHECK(payloads(must(f.store->pending_and_new("carol", 100)))
        == std::vector<std::string>{"c2"});
}

TEST_CASE("ack with delete_on_ack also removes the entries") {
  NOVA_REQUIRE_REDIS_SERVER();
  durable_store::settings s;
  s.delete_on_ack = true;
  fixture f{s};
  must(f.store->append(direct("alice", "bob")));
  must(f.store->append(direct("alice", "bob")));
  auto got = must(f.store->pending_and_new("bob", 10));
  REQUIRE(got.size() == 2);
  CHECK(must(f.store->ack("bob", entry_ids(got))) == 2);
  CHECK(f.xlen("nova.inbox.bob") == 0);
  // Also for acks sent with a read.
  must(f.store->append(direct("alice", "bob")));
  auto more = must(f.store->pending_and_new("bob", 10));
  REQUIRE(more.size() == 1);
  CHECK(must(f.store->pending_and_new("bob", 10, nullptr, false,
                                      entry_ids(more)))
          .empty());
  CHECK(f.xlen("nova.inbox.bob") == 0);
}

TEST_CASE("two Novas' durable inboxes are independent") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  must(f.store->append(direct("carol", "alice", "for-alice-1")));
  must(f.store->append(direct("carol", "bob", "for-bob-1")));
  must(f.store->append(direct("carol", "alice", "for-alice-2")));
  must(f.store->append(direct("carol", "bob", "for-bob-2")));
  must(f.store->append(direct("carol", "bob", "for-bob-3")));
  auto a = must(f.store->pending_and_new("alice", 100));
  CHECK(payloads(a) == std::vector<std::string>{"for-alice-1", "for-alice-2"});
  for (auto& x : a)
    CHECK(x.env.to == "alice");
  CHECK(must(f.store->ack("alice", entry_ids(a))) == 2);
  // Alice's acks do not touch Bob's backlog.
  auto b = must(f.store->pending_and_new("bob", 100));
  CHECK(payloads(b)
        == std::vector<std::string>{"for-bob-1", "for-bob-2", "for-bob-3"});
  CHECK(must(f.store->pending_and_new("alice", 100)).empty());
  CHECK(must(f.store->pending_and_new("bob", 100)).size() == 3);
}

TEST_CASE("a batch of 1000 envelopes is appended in one pipeline, in order") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<envelope> batch;
  for (int i = 0; i < 1000; ++i)
    batch.push_back(direct("alice", "bob", std::to_string(i)));
  auto ids = must(f.store->append_batch(batch));
  REQUIRE(ids.size() == 1000);
  CHECK(f.xlen("nova.inbox.bob") == 1000);
  auto back = must(f.store->replay("nova.inbox.bob", "-", {}, 2000));
  REQUIRE(back.size() == 1000);
  for (size_t i = 0; i < 1000; ++i) {
    CHECK(back[i].entry_id == ids[i]);
    CHECK(back[i].env == batch[i]);
  }
}

TEST_CASE("an appender keeps two batches in flight and hands back their "
          "entry ids in order") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  durable_store::appender out{*f.store};
  std::vector<envelope> first;
  std::vector<envelope> second;
  for (int i = 0; i < 300; ++i)
    first.push_back(direct("alice", "bob", "a" + std::to_string(i)));
  for (int i = 0; i < 5; ++i)
    second.push_back(direct("alice", "carol", "c" + std::to_string(i)));
  must_ok(out.send(first));
  must_ok(out.send(second));
  CHECK(out.in_flight() == 2);
  auto a = must(out.receive());
  auto c = must(out.receive());
  CHECK(out.in_flight() == 0);
  REQUIRE(a.size() == 300);
  REQUIRE(c.size() == 5);
  auto bob = must(f.store->pending_and_new("bob", 1000));
  CHECK(entry_ids(bob) == a);
  CHECK(bob.back().env.payload == "a299");
  CHECK(entry_ids(must(f.store->pending_and_new("carol", 1000))) == c);
  // Nothing in flight: nothing to receive.
  CHECK_FALSE(out.receive());
  // A refused batch sends nothing and leaves the other in flight alone.
  must_ok(out.send(second));
  auto big = direct("alice", "bob", std::string(2 * 1024 * 1024, 'x'));
  CHECK(nova::is(out.send({big}), errc::payload_too_large));
  CHECK(out.in_flight() == 1);
  CHECK(must(out.receive()).size() == 5);
}

TEST_CASE("an appender whose server went away reports it and forgets what "
          "was in flight") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  durable_store::appender out{*f.store};
  std::vector<envelope> batch{direct("alice", "bob", "one")};
  must_ok(out.send(batch)); // connected
  CHECK(must(out.receive()).size() == 1);
  // A hung server: the batch goes out, no reply comes within the timeout.
  f.srv.pause();
  must_ok(out.send(batch));
  auto r = out.receive();
  f.srv.stop();
  REQUIRE_FALSE(r);
  CHECK(nova::is(r.error(), errc::backend_unavailable));
  CHECK(out.in_flight() == 0);
  auto err = out.send(batch);
  CHECK(nova::is(err, errc::backend_unavailable));
  CHECK(out.in_flight() == 0);
  // Back again (empty): the next send reconnects.
  f.srv.start();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  bool written = false;
  while (!written && std::chrono::steady_clock::now() < deadline) {
    written = !out.send(batch) && static_cast<bool>(out.receive());
    if (!written)
      std::this_thread::sleep_for(20ms);
  }
  CHECK(written);
  // The restarted server is empty: only the last write is there.
  CHECK(payloads(must(f.store->pending_and_new("bob", 10)))
        == std::vector<std::string>{"one"});
}

TEST_CASE("approximate trimming keeps about max_len entries") {
  NOVA_REQUIRE_REDIS_SERVER();
  durable_store::settings s;
  s.max_len = 100;
  fixture f{s};
  for (int round = 0; round < 10; ++round) {
    std::vector<envelope> batch;
    for (int i = 0; i < 100; ++i)
      batch.push_back(direct("alice", "bob"));
    must(f.store->append_batch(batch));
  }
  auto n = must(f.store->length("nova.inbox.bob"));
  CHECK(n >= 100);
  CHECK(n < 300);
  // trim() bounds a stream filled by a store with a larger bound.
  auto big = f.with(durable_store::settings{});
  std::vector<envelope> batch;
  for (int i = 0; i < 1000; ++i)
    batch.push_back(direct("alice", "carol"));
  must(big->append_batch(batch));
  CHECK(f.xlen("nova.inbox.carol") == 1000);
  auto removed = must(f.store->trim("nova.inbox.carol"));
  auto left = must(f.store->length("nova.inbox.carol"));
  CHECK(removed + left == 1000);
  CHECK(left >= 100);
  CHECK(left < 300);
}

TEST_CASE("trim with max_age drops entries older than the age") {
  NOVA_REQUIRE_REDIS_SERVER();
  durable_store::settings s;
  s.max_age = 100ms;
  fixture f{s};
  must(f.store->append(direct("alice", "bob", "old1")));
  must(f.store->append(direct("alice", "bob", "old2")));
  std::this_thread::sleep_for(250ms);
  must(f.store->append(direct("alice", "bob", "new")));
  CHECK(must(f.store->trim("nova.inbox.bob")) == 2);
  auto left = must(f.store->replay("nova.inbox.bob", "-"));
  CHECK(payloads(left) == std::vector<std::string>{"new"});
}

TEST_CASE("replay starts from an entry id or a unix time, inclusive") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(
      must(f.store->append(direct("alice", "bob", "old" + std::to_string(i)))));
  std::this_thread::sleep_for(20ms);
  auto t = nova::now_ms();
  std::this_thread::sleep_for(20ms);
  for (int i = 0; i < 2; ++i)
    ids.push_back(
      must(f.store->append(direct("alice", "bob", "new" + std::to_string(i)))));
  auto from_id = must(f.store->replay("nova.inbox.bob", ids[1]));
  CHECK(payloads(from_id)
        == std::vector<std::string>{"old1", "old2", "new0", "new1"});
  auto from_time = must(f.store->replay("nova.inbox.bob", std::to_string(t)));
  CHECK(payloads(from_time) == std::vector<std::string>{"new0", "new1"});
  auto limited = must(f.store->replay("nova.inbox.bob", "-", {}, 2));
  CHECK(payloads(limited) == std::vector<std::string>{"old0", "old1"});
  // Replay does not touch the consumer group.
  CHECK(must(f.store->pending_and_new("bob", 100)).size() == 5);
  auto bad = f.store->replay("nova.inbox.bob", "yesterday");
  REQUIRE(!bad);
  CHECK(nova::is(bad.error(), errc::invalid_argument));
  CHECK(!f.store->replay("other.inbox.bob", "-"));
}

TEST_CASE("replay with a subject pattern returns only matching events") {
  NOVA_REQUIRE_REDIS_SERVER();
  durable_store::settings s;
  s.page = 3; // several pages while filtering
  fixture f{s};
  for (auto subject :
       {"orders.created.eu", "orders.shipped", "orders.created.us",
        "orders.cancelled", "orders.created.eu.vip", "orders.shipped.late"})
    must(f.store->append(event_of(subject)));
  auto stream = must(f.store->names().event_stream("orders"));
  auto created = must(f.store->replay(stream, "-", "orders.created.>"));
  CHECK(payloads(created)
        == std::vector<std::string>{"orders.created.eu", "orders.created.us",
                                    "orders.created.eu.vip"});
  auto one_level = must(f.store->replay(stream, "-", "orders.*"));
  CHECK(payloads(one_level)
        == std::vector<std::string>{"orders.shipped", "orders.cancelled"});
  auto first_two = must(f.store->replay(stream, "-", "orders.>", 2));
  CHECK(payloads(first_two)
        == std::vector<std::string>{"orders.created.eu", "orders.shipped"});
  auto bad = f.store->replay(stream, "-", "orders.>.x");
  CHECK(!bad);
}

TEST_CASE("a malformed inbox entry is reported and moved to the dead stream "
          "with its reason") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto good1 = must(f.store->append(direct("alice", "bob", "good1")));
  auto bad_entry = f.cmd({"XADD", "nova.inbox.bob", "*", "envelope",
                          std::string{"\x0a\xff\xff", 3}, "id", "x1", "from",
                          "mallory", "kind", "direct"})
                     .str;
  auto good2 = must(f.store->append(direct("alice", "bob", "good2")));
  std::vector<malformed_entry> bad;
  auto got = must(f.store->pending_and_new("bob", 100, &bad));
  CHECK(payloads(got) == std::vector<std::string>{"good1", "good2"});
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].stream == "nova.inbox.bob");
  CHECK(bad[0].entry_id == bad_entry);
  CHECK(!bad[0].reason.empty());
  CHECK(f.store->malformed() == 1);
  must_ok(f.store->move_to_dead(bad[0].stream, bad[0].entry_id,
                                bad[0].reason));
  auto dead = f.cmd({"XRANGE", f.store->dead_stream(), "-", "+"});
  REQUIRE(dead.size() == 1);
  auto& fields = dead[0][1];
  CHECK(field(fields, "reason") == bad[0].reason);
  CHECK(field(fields, "stream") == std::string{"nova.inbox.bob"});
  CHECK(field(fields, "entry") == bad_entry);
  CHECK(field(fields, "from") == std::string{"mallory"});
  CHECK(field(fields, "envelope") == std::string{"\x0a\xff\xff", 3});
  // Gone from the inbox and from the pending list.
  CHECK(f.xlen("nova.inbox.bob") == 2);
  CHECK(must(f.store->ack("bob", {good1, good2})) == 2);
  CHECK(must(f.store->pending_and_new("bob", 100, &bad)).empty());
  CHECK(bad.size() == 1);
  auto again = f.store->move_to_dead("nova.inbox.bob", bad_entry, "again");
  REQUIRE(again);
  CHECK(nova::is(again, errc::not_found));
}

TEST_CASE("catch-up finds the envelope field in any place and reports an "
          "entry without one") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  auto env = direct("alice", "bob", "late field");
  // Written by another tool: plain fields first, the envelope last.
  auto late = f.cmd({"XADD", "nova.inbox.bob", "*", "from", "alice", "kind",
                     "direct", "envelope", nova::encode(env)})
                .str;
  auto none = f.cmd({"XADD", "nova.inbox.bob", "*", "payload", "raw"}).str;
  must(f.store->append(direct("alice", "bob", "after")));
  std::vector<malformed_entry> bad;
  auto got = must(f.store->pending_and_new("bob", 100, &bad));
  CHECK(payloads(got) == std::vector<std::string>{"late field", "after"});
  CHECK(got[0].entry_id == late);
  CHECK(got[0].env == env);
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].entry_id == none);
  CHECK(bad[0].reason == "stream entry has no envelope field");
  // The next read goes on after all three.
  must(f.store->append(direct("alice", "bob", "new")));
  CHECK(payloads(must(f.store->pending_and_new("bob", 100, nullptr, false)))
        == std::vector<std::string>{"new"});
}

TEST_CASE("without a malformed list, catch-up moves bad entries to the dead "
          "stream itself") {
  NOVA_REQUIRE_REDIS_SERVER();
  fixture f;
  f.cmd({"XADD", "nova.inbox.bob", "*", "id", "x2", "from", "mallory"});
  must(f.store->append(direct("alice", "bob", "ok")));
  auto got = must(f.store->pending_and_new("bob", 100));
  CHECK(payloads(got) == std::vector<std::string>{"ok"});
  auto dead = f.cmd({"XRANGE", f.store->dead_stream(), "-", "+"});
  REQUIRE(dead.size() == 1);
  auto reason = field(dead[0][1], "reason");
  REQUIRE(reason);
  CHECK(reason->find("no envelope field") != std::string::npos);
  CHECK(f.xlen("nova.inbox.bob") == 1);
}

TEST_CASE("the dedup window recognises repeats and forgets the oldest beyond "
          "its capacity") {
  dedup_window w{3};
  CHECK(w.capacity() == 3);
  CHECK(!w.seen_before(msg_id{"a"}));
  CHECK(!w.seen_before(msg_id{"b"}));
  CHECK(!w.seen_before(msg_id{"c"}));
  CHECK(w.seen_before(msg_id{"a"}));
  CHECK(w.seen_before(msg_id{"c"}));
  CHECK(w.size() == 3);
  // d evicts a, the oldest.
  CHECK(!w.seen_before(msg_id{"d"}));
  CHECK(w.size() == 3);
  CHECK(!w.contains(msg_id{"a"}));
  CHECK(w.contains(msg_id{"b"}));
  CHECK(w.seen_before(msg_id{"b"}));
  CHECK(w.seen_before(msg_id{"d"}));
  // a comes back as new and evicts b.
  CHECK(!w.seen_before(msg_id{"a"}));
  CHECK(!w.contains(msg_id{"b"}));
  CHECK(w.contains(msg_id{"c"}));
  // Empty ids are never duplicates.
  CHECK(!w.seen_before(msg_id{}));
  CHECK(!w.seen_before(msg_id{}));
  CHECK(w.size() == 3);
  w.clear();
  CHECK(w.size() == 0);
  CHECK(!w.seen_before(msg_id{"c"}));
}

TEST_CASE("the dedup window answers as a ring of the last ids would, over "
          "many random repeats") {
  // The model: the last `cap` distinct ids recorded, oldest first.
  for (size_t cap : {1u, 2u, 7u, 64u, 1000u}) {
    dedup_window w{cap};
    std::deque<std::string> model;
    uint64_t state = 12345 + cap;
    auto next = [&] {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      return state >> 33;
    };
    size_t mismatches = 0;
    for (int i = 0; i < 20'000; ++i) {
      // Few distinct ids: most lookups repeat a recent one or an evicted one.
      auto id = "id-" + std::to_string(next() % (cap * 3 + 5));
      bool expected =
        std::find(model.begin(), model.end(), id) != model.end();
      if (!expected) {
        model.push_back(id);
        if (model.size() > cap)
          model.pop_front();
      }
      if (w.seen_before(msg_id{id}) != expected)
        ++mismatches;
    }
    INFO("capacity " << cap);
    CHECK(mismatches == 0);
    CHECK(w.size() == model.size());
    for (auto& id : model)
      CHECK(w.contains(msg_id{id}));
  }
}

TEST_CASE("the dedup window stays bounded under many ids") {
  dedup_window w{1000};
  for (int i = 0; i < 10'000; ++i)
    CHECK_FALSE(w.seen_before(msg_id{nova::new_message_id()}));
  CHECK(w.size() == 1000);
  dedup_window d; // default capacity
  CHECK(d.capacity() == dedup_window::default_capacity);
}
