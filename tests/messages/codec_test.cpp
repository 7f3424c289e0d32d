#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "messages/codec.hpp"
#include "messages/ids.hpp"
#include "messages/errc.hpp"

using namespace nova;
using json = nlohmann::json;

namespace {

// Bytes with NULs, high bytes and a lone NUL at the end, to catch any
// C-string handling on the way.
const std::string binary_payload{"\0\x01\xff\x7f{\"x\":1}\0", 12};

envelope sample_envelope() {
  envelope x;
  x.id = "01HV5Z3K8Q2R9T6W4Y7B1C0D3E";
  x.from = "alpha";
  x.to = "bridge";
  x.kind = kind::request;
  x.priority = priority::high;
  x.correlation_id = "corr-17";
  x.created_at = 1'700'000'000'123;
  x.subject = "orders.created";
  x.content_type = "application/octet-stream";
  x.payload = binary_payload;
  x.headers = {{"Nova-Trace", "t-1"}, {"empty", ""}, {"b", "2"}};
  return x;
}

task sample_task() {
  task x;
  x.id = "task-1";
  x.session = "s1";
  x.type = "render";
  x.priority = priority::urgent;
  x.payload = binary_payload;
  x.created_by = "alpha";
  x.created_at = 1'700'000'000'456;
  x.attempts = 2;
  x.max_attempts = 5;
  x.last_error = "boom";
  x.headers = {{"k", "v"}};
  return x;
}

task_result sample_result() {
  task_result x;
  x.task_id = "task-1";
  x.session = "s1";
  x.status = task_status::dead;
  x.worker = "w-3";
  x.payload = binary_payload;
  x.error = "gave up";
  x.attempts = 3;
  x.completed_at = 1'700'000'000'789;
  return x;
}

presence sample_presence() {
  presence x;
  x.nova_id = "alpha";
  x.node_id = "node-1";
  x.status = presence_status::busy;
  x.capabilities = {"chat", "search", "chat"};
  x.current_task = "task-1";
  x.last_seen = 1'700'000'001'000;
  x.started_at = 1'700'000'000'000;
  x.groups = {"ops", "eng"};
  return x;
}

event sample_event() {
  event x;
  x.id = "01HV5Z3K8Q2R9T6W4Y7B1C0D3F";
  x.source = "sensor-1";
  x.subject = "orders.created.eu";
  x.domain = "orders";
  x.action = "created";
  x.created_at = 1'700'000'002'000;
  x.content_type = "application/cbor";
  x.payload = binary_payload;
  x.headers = {{"h1", "v1"}, {"h2", "v2"}};
  return x;
}

// A varint-encoded field: key (field << 3 | 0) followed by `value`.
std::string varint_field(int field, int64_t value) {
  std::string out;
  auto put = [&out](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  put(static_cast<uint64_t>(field) << 3);
  put(static_cast<uint64_t>(value));
  return out;
}

template <class T>
void check_decode_failed(const caf::expected<T>& x) {
  REQUIRE_FALSE(x);
  CHECK(is(x.error(), errc::decode_failed));
}

} // namespace

// -- binary round trips -------------------------------------------------------

TEST_CASE("an envelope survives a binary round trip with headers and "
          "binary payload",
          "[codec]") {
  auto x = sample_envelope();
  auto bytes = encode(x);
  CHECK_FALSE(bytes.empty());
  auto y = decode<envelope>(bytes);
  REQUIRE(y);
  CHECK(*y == x);
  CHECK(y->payload.size() == binary_payload.size());
  CHECK(y->headers.at("empty").empty());
}

TEST_CASE("an envelope of every kind and priority survives a binary round "
          "trip",
          "[codec]") {
  for (int k = 1; k <= 9; ++k) {
    for (int p = 1; p <= 4; ++p) {
      envelope x;
      x.id = "m";
      x.kind = static_cast<kind>(k);
      x.priority = static_cast<priority>(p);
      auto y = decode<envelope>(encode(x));
      REQUIRE(y);
      CHECK(y->kind == x.kind);
      CHECK(y->priority == x.priority);
    }
  }
}

TEST_CASE("a task survives a binary round trip", "[codec]") {
  auto x = sample_task();
  auto y = decode<task>(encode(x));
  REQUIRE(y);
  CHECK(*y == x);
}

TEST_CASE("a task result of every status survives a binary round trip",
          "[codec]") {
  for (auto s : {task_status::done, task_status::failed, task_status::dead}) {
    auto x = sample_result();
    x.status = s;
    auto y = decode<task_result>(encode(x));
    REQUIRE(y);
    CHECK(*y == x);
  }
}

TEST_CASE("a presence of every status survives a binary round trip with "
          "capability and group order kept",
          "[codec]") {
  for (int s = 1; s <= 4; ++s) {
    auto x = sample_presence();
    x.status = static_cast<presence_status>(s);
    auto y = decode<presence>(encode(x));
    REQUIRE(y);
    CHECK(*y == x);
  }
}

TEST_CASE("an event survives a binary round trip", "[codec]") {
  auto x = sample_event();
  auto y = decode<event>(encode(x));
  REQUIRE(y);
  CHECK(*y == x);
}

TEST_CASE("default values survive a binary round trip", "[codec]") {
  CHECK(decode<envelope>(encode(envelope{})).value() == envelope{});
  CHECK(decode<task>(encode(task{})).value() == task{});
  CHECK(decode<task_result>(encode(task_result{})).value() == task_result{});
  CHECK(decode<presence>(encode(presence{})).value() == presence{});
  CHECK(decode<event>(encode(event{})).value() == event{});
}

TEST_CASE("unspecified kind, priority and status decode as the defaults",
          "[codec]") {
  // Only the id is set; the enums are left at their UNSPECIFIED zero value.
  v1::Envelope raw;
  raw.set_id("x");
  auto env = decode<envelope>(raw.SerializeAsString());
  REQUIRE(env);
  CHECK(env->id == "x");
  CHECK(env->kind == kind::direct);
  CHECK(env->priority == priority::normal);
  v1::Task raw_task;
  raw_task.set_id("t");
  auto t = decode<task>(raw_task.SerializeAsString());
  REQUIRE(t);
  CHECK(t->priority == priority::normal);
  v1::Presence raw_presence;
  raw_presence.set_nova_id("p");
  auto p = decode<presence>(raw_presence.SerializeAsString());
  REQUIRE(p);
  CHECK(p->status == presence_status::online);
}

TEST_CASE("the binary encoding is protobuf's own", "[codec]") {
  auto x = sample_envelope();
  v1::Envelope raw;
  REQUIRE(raw.ParseFromString(encode(x)));
  CHECK(raw.id() == x.id);
  CHECK(raw.from() == x.from);
  CHECK(raw.to() == x.to);
  CHECK(raw.kind() == v1::KIND_REQUEST);
  CHECK(raw.priority() == v1::PRIORITY_HIGH);
  CHECK(raw.correlation_id() == x.correlation_id);
  CHECK(raw.created_at() == x.created_at);
  CHECK(raw.payload() == x.payload);
  CHECK(raw.headers().size() == 3);
  CHECK(raw.headers().at("Nova-Trace") == "t-1");
  v1::TaskResult raw_result;
  REQUIRE(raw_result.ParseFromString(encode(sample_result())));
  CHECK(raw_result.status() == v1::TaskResult::STATUS_DEAD);
  v1::Presence raw_presence;
  REQUIRE(raw_presence.ParseFromString(encode(sample_presence())));
  CHECK(raw_presence.status() == v1::PRESENCE_STATUS_BUSY);
}

TEST_CASE("a newer peer's unknown fields are ignored when decoding",
          "[codec]") {
  auto bytes = encode(sample_envelope()) + varint_field(99, 7);
  auto y = decode<envelope>(bytes);
  REQUIRE(y);
  CHECK(*y == sample_envelope());
}

// -- binary decode failures ---------------------------------------------------

TEST_CASE("decoding garbage bytes gives decode_failed", "[codec]") {
  const std::string garbage[] = {
    "not a protobuf at all",
    std::string{"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11},
    std::string{"\x0a\x05" "ab", 4}, // length 5, only 2 bytes follow
    std::string{"\x0f", 1},          // wire type 7 does not exist
    std::string{"\x00\x01", 2},      // field number 0
  };
  for (const auto& bytes : garbage) {
    INFO("bytes of size " << bytes.size());
    check_decode_failed(decode<envelope>(bytes));
    check_decode_failed(decode<task>(bytes));
    check_decode_failed(decode<task_result>(bytes));
    check_decode_failed(decode<presence>(bytes));
    check_decode_failed(decode<event>(bytes));
  }
}

TEST_CASE("decoding a truncated message gives decode_failed", "[codec]") {
  auto bytes = encode(sample_envelope());
  check_decode_failed(decode<envelope>(bytes.substr(0, bytes.size() - 1)));
  auto task_bytes = encode(sample_task());
  check_decode_failed(
    decode<task>(task_bytes.substr(0, task_bytes.size() - 1)));
}

TEST_CASE("the decode error says what failed", "[codec]") {
  auto x = decode<envelope>("not a protobuf at all");
  REQUIRE_FALSE(x);
  auto text = describe(x.error());
  CHECK(text.find("decode_failed") != std::string::npos);
  CHECK(text.find("Envelope") != std::string::npos);
}

TEST_CASE("out-of-range enum values on the wire give decode_failed",
          "[codec]") {
  SECTION("envelope kind") {
    check_decode_failed(decode<envelope>(varint_field(4, 10)));
    check_decode_failed(decode<envelope>(varint_field(4, 42)));
    check_decode_failed(decode<envelope>(varint_field(4, -1)));
  }
  SECTION("envelope priority") {
    check_decode_failed(decode<envelope>(varint_field(5, 5)));
    check_decode_failed(decode<envelope>(varint_field(5, -3)));
  }
  SECTION("task priority") {
    check_decode_failed(decode<task>(varint_field(4, 5)));
    check_decode_failed(decode<task>(varint_field(4, 1000)));
  }
  SECTION("task result status") {
    check_decode_failed(decode<task_result>(varint_field(3, 4)));
    check_decode_failed(decode<task_result>(varint_field(3, -1)));
  }
  SECTION("presence status") {
    check_decode_failed(decode<presence>(varint_field(3, 5)));
    check_decode_failed(decode<presence>(varint_field(3, 77)));
  }
}

TEST_CASE("the largest valid enum values decode", "[codec]") {
  auto env = decode<envelope>(varint_field(4, 9) + varint_field(5, 4));
  REQUIRE(env);
  CHECK(env->kind == kind::emergency);
  CHECK(env->priority == priority::urgent);
  auto r = decode<task_result>(varint_field(3, 3));
  REQUIRE(r);
  CHECK(r->status == task_status::dead);
  auto p = decode<presence>(varint_field(3, 4));
  REQUIRE(p);
  CHECK(p->status == presence_status::offline);
}

// -- JSON ---------------------------------------------------------------------

TEST_CASE("an envelope's JSON uses protobuf's canonical mapping", "[codec]") {
  auto x = sample_envelope();
  x.payload = std::string{"hi\0", 3};
  auto text = to_json(x);
  auto j = json::parse(text);
  CHECK(j.at("id") == x.id.str());
  CHECK(j.at("from") == "alpha");
  CHECK(j.at("to") == "bridge");
  CHECK(j.at("kind") == "KIND_REQUEST");
  CHECK(j.at("priority") == "PRIORITY_HIGH");
  CHECK(j.at("correlationId") == "corr-17");
  CHECK(j.at("createdAt") == "1700000000123"); // int64 as a string
  CHECK(j.at("subject") == "orders.created");
  CHECK(j.at("contentType") == "application/octet-stream");
  CHECK(j.at("payload") == "aGkA"); // base64 of "hi\0"
  CHECK(j.at("headers") == json{{"Nova-Trace", "t-1"}, {"empty", ""},
                                {"b", "2"}});
  CHECK_FALSE(j.contains("correlation_id"));
  CHECK_FALSE(j.contains("created_at"));
  CHECK_FALSE(j.contains("content_type"));
}

TEST_CASE("a task's JSON uses lowerCamelCase names", "[codec]") {
  auto j = json::parse(to_json(sample_task()));
  CHECK(j.at("id") == "task-1");
  CHECK(j.at("priority") == "PRIORITY_URGENT");
  CHECK(j.at("createdBy") == "alpha");
  CHECK(j.at("createdAt") == "1700000000456");
  CHECK(j.at("attempts") == 2);
  CHECK(j.at("maxAttempts") == 5);
  CHECK(j.at("lastError") == "boom");
  CHECK(j.at("headers") == json{{"k", "v"}});
}

TEST_CASE("a task result's JSON names its status", "[codec]") {
  auto j = json::parse(to_json(sample_result()));
  CHECK(j.at("taskId") == "task-1");
  CHECK(j.at("status") == "STATUS_DEAD");
  CHECK(j.at("completedAt") == "1700000000789");
  CHECK(j.at("worker") == "w-3");
  CHECK(j.at("error") == "gave up");
}

TEST_CASE("a presence's JSON lists capabilities and groups", "[codec]") {
  auto j = json::parse(to_json(sample_presence()));
  CHECK(j.at("novaId") == "alpha");
  CHECK(j.at("nodeId") == "node-1");
  CHECK(j.at("status") == "PRESENCE_STATUS_BUSY");
  CHECK(j.at("capabilities") == json{"chat", "search", "chat"});
  CHECK(j.at("currentTask") == "task-1");
  CHECK(j.at("lastSeen") == "1700000001000");
  CHECK(j.at("startedAt") == "1700000000000");
  CHECK(j.at("groups") == json{"ops", "eng"});
}

TEST_CASE("an event's JSON carries the payload as base64", "[codec]") {
  auto x = sample_event();
  x.payload = std::string{"\0\x01\xff", 3};
  auto j = json::parse(to_json(x));
  CHECK(j.at("source") == "sensor-1");
  CHECK(j.at("domain") == "orders");
  CHECK(j.at("action") == "created");
  CHECK(j.at("contentType") == "application/cbor");
  CHECK(j.at("payload") == "AAH/");
}

TEST_CASE("every type survives a JSON round trip", "[codec]") {
  CHECK(from_json<envelope>(to_json(sample_envelope())).value()
        == sample_envelope());
  CHECK(from_json<task>(to_json(sample_task())).value() == sample_task());
  CHECK(from_json<task_result>(to_json(sample_result())).value()
        == sample_result());
  CHECK(from_json<presence>(to_json(sample_presence())).value()
        == sample_presence());
  CHECK(from_json<event>(to_json(sample_event())).value() == sample_event());
}

TEST_CASE("from_json accepts the original snake_case field names",
          "[codec]") {
  auto x = from_json<envelope>(R"({
    "id": "m1",
    "from": "alpha",
    "to": "bridge",
    "kind": "KIND_TASK",
    "priority": "PRIORITY_LOW",
    "correlation_id": "c9",
    "created_at": "1700000000000",
    "content_type": "text/plain",
    "payload": "aGkA",
    "headers": {"k": "v"}
  })");
  REQUIRE(x);
  CHECK(x->id == "m1");
  CHECK(x->kind == kind::task);
  CHECK(x->priority == priority::low);
  CHECK(x->correlation_id == "c9");
  CHECK(x->created_at == 1'700'000'000'000);
  CHECK(x->content_type == "text/plain");
  CHECK(x->payload == std::string("hi\0", 3));
  CHECK(x->headers == headers{{"k", "v"}});
  auto t = from_json<task>(
    R"({"id":"t1","max_attempts":4,"last_error":"e","created_by":"me"})");
  REQUIRE(t);
  CHECK(t->max_attempts == 4);
  CHECK(t->last_error == "e");
  CHECK(t->created_by == "me");
  auto p = from_json<presence>(
    R"({"nova_id":"a","node_id":"n","current_task":"t","status":"PRESENCE_STATUS_AWAY"})");
  REQUIRE(p);
  CHECK(p->nova_id == "a");
  CHECK(p->node_id == "n");
  CHECK(p->current_task == "t");
  CHECK(p->status == presence_status::away);
}

TEST_CASE("from_json accepts int64 as numbers and ignores unknown fields",
          "[codec]") {
  auto x = from_json<envelope>(
    R"({"id":"m2","createdAt":1700000000001,"fromTheFuture":{"a":[1,2]}})");
  REQUIRE(x);
  CHECK(x->id == "m2");
  CHECK(x->created_at == 1'700'000'000'001);
  CHECK(x->kind == kind::direct);
  CHECK(x->priority == priority::normal);
}

TEST_CASE("from_json of malformed JSON gives decode_failed", "[codec]") {
  for (const char* bad : {"", "not json", "{", R"({"id": )", "[1, 2]",
                          R"({"id": "x" "from": "y"})",
                          R"({"createdAt": "soon"})", R"({"id": 5})",
                          R"({"headers": [1, 2]})"}) {
    INFO(bad);
    check_decode_failed(from_json<envelope>(bad));
  }
  check_decode_failed(from_json<task>(R"({"attempts": -1})"));
  check_decode_failed(from_json<task>(R"({"attempts": 1.5})"));
}

TEST_CASE("from_json of an out-of-range numeric enum gives decode_failed",
          "[codec]") {
  check_decode_failed(from_json<envelope>(R"({"kind": 42})"));
  check_decode_failed(from_json<envelope>(R"({"priority": 5})"));
  check_decode_failed(from_json<presence>(R"({"status": 9})"));
  check_decode_failed(from_json<task_result>(R"({"status": 4})"));
}

TEST_CASE("from_json of an unknown enum name gives decode_failed instead "
          "of the default",
          "[codec]") {
  check_decode_failed(from_json<envelope>(R"({"kind": "KIND_BOGUS"})"));
  check_decode_failed(from_json<envelope>(R"({"kind": "kind_task"})"));
  check_decode_failed(from_json<envelope>(R"({"priority": "PRIORITY_MAX"})"));
  check_decode_failed(
    from_json<envelope>(R"({"id": "m", "correlation_id": "c", "kind": "X"})"));
  check_decode_failed(from_json<task>(R"({"priority": "URGENT"})"));
  check_decode_failed(from_json<task_result>(R"({"status": "STATUS_LOST"})"));
  check_decode_failed(from_json<presence>(R"({"status": "ASLEEP"})"));
  auto x = from_json<envelope>(R"({"kind": "X"})");
  REQUIRE_FALSE(x);
  CHECK(describe(x.error()).find("'X'") != std::string::npos);
}

TEST_CASE("from_json ignores unknown fields whose values look like enum "
          "names",
          "[codec]") {
  auto x = from_json<envelope>(
    R"({"kind": "KIND_EVENT", "mood": "KIND_BOGUS", "payload": "AAH/"})");
  REQUIRE(x);
  CHECK(x->kind == kind::event);
  CHECK(x->payload == std::string("\0\x01\xff", 3));
}

TEST_CASE("the hand-written envelope encoder writes what protobuf writes",
          "[codec]") {
  envelope x;
  x.id = "01HZX3Q6V9K2M4N8P0R2T4W6Y8";
  x.from = "alpha";
  x.to = "bridge";
  x.kind = kind::request;
  x.priority = priority::urgent;
  x.correlation_id = "corr-1";
  x.created_at = 1700000000123;
  x.subject = "billing.paid";
  x.content_type = "application/json";
  x.payload = std::string(300, 'p') + std::string{"\0\x01", 2};
  x.headers = {{"a", "1"}};
  CHECK(encode(x) == to_proto(x).SerializeAsString());
  x.headers = {{"a", "1"}, {"b", ""}, {"", "c"}, {"long", std::string(200, 'v')}};
  v1::Envelope parsed;
  REQUIRE(parsed.ParseFromString(encode(x)));
  auto back = from_proto(parsed);
  REQUIRE(back);
  CHECK(*back == x);
  envelope empty;
  CHECK(encode(empty) == to_proto(empty).SerializeAsString());
}

TEST_CASE("encode_to appends the same bytes and decode_into reads them "
          "into a given envelope",
          "[codec]") {
  envelope x;
  x.id = next_message_id();
  x.from = "alpha";
  x.to = "beta";
  x.payload = std::string(100, 'q');
  x.headers = {{"k", "v"}};
  std::string out = "prefix";
  encode_to(x, out);
  CHECK(out == "prefix" + encode(x));
  envelope y;
  REQUIRE_FALSE(decode_into(std::string_view{out}.substr(6), y));
  CHECK(y == x);
  envelope z;
  auto err = decode_into("\xff\xff", z);
  REQUIRE(err);
  CHECK(is(err, errc::decode_failed));
}

TEST_CASE("the envelope decoder skips unknown fields and refuses truncated "
          "or garbled bytes",
          "[codec]") {
  envelope x;
  x.id = next_message_id();
  x.from = "alpha";
  x.payload = "hello";
  x.headers = {{"k", "v"}};
  auto bytes = encode(x);
  // A field from a newer peer (number 99, a string) is skipped.
  std::string newer = bytes;
  newer += static_cast<char>((99 << 3 | 2) & 0x7f | 0x80);
  newer += static_cast<char>((99 << 3 | 2) >> 7);
  newer += static_cast<char>(3);
  newer += "new";
  auto y = decode<envelope>(newer);
  REQUIRE(y);
  CHECK(*y == x);
  // Every truncation of a valid encoding either decodes or fails cleanly.
  for (size_t n = 0; n < bytes.size(); ++n)
    static_cast<void>(decode<envelope>(bytes.substr(0, n)));
  CHECK(!decode<envelope>(bytes.substr(0, bytes.size() - 1)));
  // Pseudo-random garbage never crashes and never yields a bad kind.
  uint64_t seed = 42;
  for (int i = 0; i < 20000; ++i) {
    std::string junk(static_cast<size_t>(seed % 64), '\0');
    for (auto& c : junk) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<char>(seed >> 56);
    }
    auto r = decode<envelope>(junk);
    if (r)
      CHECK(static_cast<int>(r->kind) >= 1);
  }
}
