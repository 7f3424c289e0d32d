// Tests of the hiredis adapter against real redis-server processes.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

#include <fmt/format.h>

#include "cluster/lua_pack.hpp"
#include "cluster/redis_client.hpp"
#include "messages/errc.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using nova::errc;
using nova::redis_connection;
using nova::redis_pool;
using nova::redis_settings;
using nova::redis_value;
using nova::testing::redis_server;

namespace {

using clock_type = std::chrono::steady_clock;
using strings = std::vector<std::string>;

template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL(nova::describe(x.error()));
  return std::move(*x);
}

redis_settings settings_for(const std::string& url) {
  auto s = must(redis_settings::from_url(url));
  s.connect_timeout = 1s;
  s.command_timeout = 2s;
  s.reconnect_base = 50ms;
  s.reconnect_max = 200ms;
  return s;
}

redis_connection connect(const redis_server& srv) {
  return must(redis_connection::connect(settings_for(srv.url())));
}

redis_value run(redis_connection& conn, const strings& argv) {
  return must(conn.command(argv));
}

std::string text_of(const caf::error& err) {
  return nova::describe(err);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// "calls=N" of one command in INFO commandstats, or -1.
int64_t calls_of(redis_connection& conn, const std::string& name) {
  auto info = must(run(conn, {"INFO", "commandstats"}).as_string());
  auto key = "cmdstat_" + name + ":calls=";
  auto pos = info.find(key);
  if (pos == std::string::npos)
    return -1;
  return std::stoll(info.substr(pos + key.size()));
}

// Retries `f` until it succeeds or `timeout` passes.
template <class F>
bool eventually(F f, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (f())
      return true;
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
}

} // namespace

TEST_CASE("a redis URL gives host, port, user, password and database") {
  auto a = must(redis_settings::from_url("redis://127.0.0.1:6380"));
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 6380);
  CHECK(a.password.empty());
  CHECK(a.user.empty());
  CHECK(a.db == 0);
  auto b = must(redis_settings::from_url("redis://store.local"));
  CHECK(b.host == "store.local");
  CHECK(b.port == 6379);
  auto c = must(redis_settings::from_url("redis://:s3cret@db.example:7000/2"));
  CHECK(c.host == "db.example");
  CHECK(c.port == 7000);
  CHECK(c.password == "s3cret");
  CHECK(c.user.empty());
  CHECK(c.db == 2);
  auto d = must(redis_settings::from_url("redis://alice:s3cret@h"));
  CHECK(d.user == "alice");
  CHECK(d.password == "s3cret");
  CHECK(d.host == "h");
  auto e = must(redis_settings::from_url("redis://:p%40ss%2Fw%3a@h:1/"));
  CHECK(e.password == "p@ss/w:");
  CHECK(e.db == 0);
  // The user info ends at the last '@'.
  auto f = must(redis_settings::from_url("redis://:p@ss@h:2/15"));
  CHECK(f.password == "p@ss");
  CHECK(f.host == "h");
  CHECK(f.port == 2);
  CHECK(f.db == 15);
  auto g = must(redis_settings::from_url("redis://[::1]:6390/3"));
  CHECK(g.host == "::1");
  CHECK(g.port == 6390);
  CHECK(g.db == 3);
  auto h = must(redis_settings::from_url("REDIS://h"));
  CHECK(h.host == "h");
  // Everything the URL does not say keeps its default.
  CHECK(h.pool_size == redis_settings{}.pool_size);
  CHECK(h.command_timeout == redis_settings{}.command_timeout);
}

TEST_CASE("a malformed redis URL is rejected with an error that hides the "
          "password") {
  for (auto bad : {"", "127.0.0.1:6379", "http://h:80", "redis://",
                   "redis://:6379", "redis://h:0", "redis://h:65536",
                   "redis://h:abc", "redis://h:", "redis://h/x", "redis://h/-1",
                   "redis://h/1/2", "redis://h/99999999999", "redis://alice@h",
                   "redis://:@h", "redis://h?db=1", "redis://a:b:c",
                   "redis://[::1", "redis://[::1]x", "redis://h :1",
                   "redis://:bad%zzescape@h", "redis://:trailing%4@h"}) {
    INFO(bad);
    auto r = redis_settings::from_url(bad);
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::invalid_argument));
  }
  auto leaky = redis_settings::from_url("redis://:topsecret@h:abc");
  REQUIRE_FALSE(leaky);
  auto text = text_of(leaky.error());
  INFO(text);
  CHECK(contains(text, "port 'abc'"));
  CHECK_FALSE(contains(text, "topsecret"));
  auto tls = redis_settings::from_url("rediss://:pw@h:6380");
  REQUIRE_FALSE(tls);
  CHECK(nova::is(tls.error(), errc::unsupported));
  CHECK_FALSE(contains(text_of(tls.error()), ":pw@"));
}

TEST_CASE("a connection answers PING and keeps binary values with NUL bytes "
          "intact") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  CHECK(conn.ok());
  auto pong = run(conn, {"PING"});
  CHECK(pong.t == redis_value::type::status);
  CHECK(pong.str == "PONG");
  CHECK(must(conn.ping()) < 1s);
  std::string key{"bin\0key", 7};
  std::string value{"\0\r\n$3\r\nxyz\0", 12};
  for (int i = 0; i < 256; ++i)
    value.push_back(static_cast<char>(i));
  CHECK(must(run(conn, {"SET", key, value}).as_string()) == "OK");
  auto got = run(conn, {"GET", key});
  CHECK(got.t == redis_value::type::string);
  CHECK(got.str.size() == value.size());
  CHECK(got.str == value);
  CHECK(run(conn, {"STRLEN", key}).integer == 268);
  CHECK(run(conn, {"GET", "missing"}).is_nil());
  CHECK(run(conn, {"EXISTS", std::string{"bin", 3}}).integer == 0);
  // Hashes, sets and sorted sets come back through the same value type.
  run(conn, {"HSET", "h", "a", "1", "b", "2"});
  CHECK(must(run(conn, {"HGET", "h", "b"}).as_int()) == 2);
  run(conn, {"SADD", "s", "x"});
  CHECK(must(run(conn, {"SMEMBERS", "s"}).as_strings()) == strings{"x"});
  run(conn, {"ZADD", "z", "1.5", "m"});
  CHECK(must(run(conn, {"ZSCORE", "z", "m"}).as_double()) == 1.5);
  run(conn, {"PEXPIRE", "h", "60000"});
  auto ttl = must(run(conn, {"PTTL", "h"}).as_int());
  CHECK(ttl > 0);
  CHECK(ttl <= 60000);
}

TEST_CASE("the server's cmsgpack unpacks what lua_pack writes: strings of "
          "every length class, binary bytes, numbers of every width") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  std::vector<std::string> strs;
  for (size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536, 100000})
    strs.push_back(std::string(n, static_cast<char>('a' + n % 26)));
  strs.push_back(std::string{"\0\r\n\xff", 4});
  const std::vector<uint64_t> nums{0,     1,     127,   128,        255,
                                   256,   65535, 65536, 0xffffffff, 0x100000000};
  nova::lua_pack p;
  p.array(strs.size() + nums.size());
  for (auto& x : strs)
    p.str(x);
  for (auto x : nums)
    p.uint(x);
  // Lua numbers come back as integer replies, strings as bulk strings.
  auto r = run(conn, {"EVAL", "return cmsgpack.unpack(ARGV[1])", "0",
                      p.bytes()});
  REQUIRE(r.is_array());
  REQUIRE(r.size() == strs.size() + nums.size());
  for (size_t i = 0; i < strs.size(); ++i) {
    CHECK(r[i].t == redis_value::type::string);
    CHECK(r[i].str == strs[i]);
  }
  for (size_t i = 0; i < nums.size(); ++i) {
    CHECK(r[strs.size() + i].t == redis_value::type::integer);
    CHECK(static_cast<uint64_t>(r[strs.size() + i].integer) == nums[i]);
  }
}

TEST_CASE("a server error reply is a clear error and the connection stays "
          "usable") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  run(conn, {"SET", "word", "hello"});
  auto incr = conn.command({"INCR", "word"});
  REQUIRE_FALSE(incr);
  CHECK(nova::is(incr.error(), errc::invalid_argument));
  auto text = text_of(incr.error());
  INFO(text);
  CHECK(contains(text, "INCR"));
  CHECK(contains(text, "ERR value is not an integer"));
  auto wrong = conn.command({"LPUSH", "word", "x"});
  REQUIRE_FALSE(wrong);
  CHECK(nova::is(wrong.error(), errc::invalid_argument));
  CHECK(contains(text_of(wrong.error()), "WRONGTYPE"));
  auto unknown = conn.command({"NO-SUCH-COMMAND"});
  REQUIRE_FALSE(unknown);
  CHECK(nova::is(unknown.error(), errc::invalid_argument));
  auto empty = conn.command({});
  REQUIRE_FALSE(empty);
  CHECK(nova::is(empty.error(), errc::invalid_argument));
  CHECK(conn.ok());
  CHECK(must(run(conn, {"GET", "word"}).as_string()) == "hello");
  CHECK(conn.reconnects() == 0);
  // A value that is not what the caller expects is decode_failed.
  auto not_int = run(conn, {"GET", "word"}).as_int();
  REQUIRE_FALSE(not_int);
  CHECK(nova::is(not_int.error(), errc::decode_failed));
}

TEST_CASE("a pipeline of 1000 XADD returns 1000 ids and keeps error replies "
          "in place") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  std::vector<strings> cmds;
  for (int i = 0; i < 1000; ++i)
    cmds.push_back({"XADD", "nova.test.pipe", "*", "n", std::to_string(i)});
  auto ids = must(conn.pipeline(cmds));
  REQUIRE(ids.size() == 1000);
  for (auto& id : ids) {
    REQUIRE(id.t == redis_value::type::string);
    REQUIRE(contains(id.str, "-"));
  }
  CHECK(ids.front().str < ids.back().str);
  CHECK(run(conn, {"XLEN", "nova.test.pipe"}).integer == 1000);
  auto mixed = must(conn.pipeline({{"SET", "k", "v"},
                                   {"INCR", "k"},
                                   {"GET", "k"},
                                   {"MULTI"},
                                   {"INCR", "n"},
                                   {"INCR", "n"},
                                   {"EXEC"}}));
  REQUIRE(mixed.size() == 7);
  CHECK(mixed[0].str == "OK");
  CHECK(mixed[1].is_error());
  CHECK(nova::is(mixed[1].as_error(), errc::invalid_argument));
  CHECK(mixed[2].str == "v");
  CHECK(mixed[4].str == "QUEUED");
  REQUIRE(mixed[6].is_array());
  CHECK(mixed[6][0].integer == 1);
  CHECK(mixed[6][1].integer == 2);
  CHECK(must(conn.pipeline({})).empty());
  CHECK(conn.ok());
}

TEST_CASE("a consumer group reads, acks, lists pending entries and reclaims "
          "an idle one with XAUTOCLAIM") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  const std::string stream = "nova.tasks.queue.normal";
  const std::string group = "nova.workers";
  CHECK(run(conn, {"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"}).str
        == "OK");
  auto again = conn.command({"XGROUP", "CREATE", stream, group, "0"});
  REQUIRE_FALSE(again);
  CHECK(contains(text_of(again.error()), "BUSYGROUP"));
  auto id1 = must(run(conn, {"XADD", stream, "*", "task", "one"}).as_string());
  auto id2 = must(run(conn, {"XADD", stream, "*", "task", "two"}).as_string());
  auto read = run(conn, {"XREADGROUP", "GROUP", group, "alice", "COUNT", "10",
                         "STREAMS", stream, ">"});
  // [[stream, [[id, [field, value]], ...]]]
  REQUIRE(read.size() == 1);
  CHECK(read[0][0].str == stream);
  auto& entries = read[0][1];
  REQUIRE(entries.size() == 2);
  CHECK(entries[0][0].str == id1);
  CHECK(must(entries[0][1].as_strings()) == strings{"task", "one"});
  CHECK(entries[1][0].str == id2);
  CHECK(run(conn, {"XACK", stream, group, id1}).integer == 1);
  auto summary = run(conn, {"XPENDING", stream, group});
  CHECK(summary[0].integer == 1);
  CHECK(summary[1].str == id2);
  CHECK(summary[3][0][0].str == "alice");
  CHECK(must(summary[3][0][1].as_int()) == 1);
  // Not idle long enough yet: nothing to reclaim.
  auto early = run(conn, {"XAUTOCLAIM", stream, group, "bob", "60000", "0-0",
                          "COUNT", "10"});
  CHECK(early[1].size() == 0);
  std::this_thread::sleep_for(150ms);
  auto claimed = run(conn, {"XAUTOCLAIM", stream, group, "bob", "100", "0-0",
                            "COUNT", "10"});
  // [next cursor, [[id, fields]], [deleted ids]] on redis 7.
  CHECK(claimed[0].str == "0-0");
  REQUIRE(claimed[1].size() == 1);
  CHECK(claimed[1][0][0].str == id2);
  CHECK(must(claimed[1][0][1].as_strings()) == strings{"task", "two"});
  auto detail = run(conn, {"XPENDING", stream, group, "-", "+", "10"});
  REQUIRE(detail.size() == 1);
  CHECK(detail[0][0].str == id2);
  CHECK(detail[0][1].str == "bob");
  CHECK(detail[0][3].integer == 2);
  CHECK(run(conn, {"XACK", stream, group, id2}).integer == 1);
  CHECK(run(conn, {"XPENDING", stream, group})[0].integer == 0);
}

TEST_CASE("a blocking XREADGROUP returns nil after its timeout and wakes for "
          "an entry published meanwhile") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.command_timeout = 500ms;
  auto reader = must(redis_connection::connect(s));
  auto writer = must(redis_connection::connect(s));
  run(reader, {"XGROUP", "CREATE", "nova.inbox.bridge", "g", "$", "MKSTREAM"});
  auto read = [&](int ms) {
    return reader.blocking({"XREADGROUP", "GROUP", "g", "c1", "COUNT", "1",
                            "BLOCK", std::to_string(ms), "STREAMS",
                            "nova.inbox.bridge", ">"},
                           std::chrono::milliseconds(ms));
  };
  // Blocks longer than command_timeout: the socket timeout is extended.
  auto start = clock_type::now();
  auto idle = must(read(800));
  auto elapsed = clock_type::now() - start;
  CHECK(idle.is_nil());
  CHECK(elapsed >= 780ms);
  CHECK(elapsed < 3s);
  std::thread publisher{[&] {
    std::this_thread::sleep_for(200ms);
    static_cast<void>(
      writer.command({"XADD", "nova.inbox.bridge", "*", "body", "hi"}));
  }};
  start = clock_type::now();
  auto got = read(5000);
  elapsed = clock_type::now() - start;
  publisher.join();
  REQUIRE(got);
  REQUIRE(got->is_array());
  CHECK(must((*got)[0][1][0][1].as_strings()) == strings{"body", "hi"});
  CHECK(elapsed < 3s);
  auto zero = reader.blocking({"PING"}, 0ms);
  REQUIRE_FALSE(zero);
  CHECK(nova::is(zero.error(), errc::invalid_argument));
  // The normal timeout is back afterwards: a hung server fails a command in
  // command_timeout, not in the blocking read's.
  srv.pause();
  start = clock_type::now();
  auto hung = reader.command({"PING"});
  elapsed = clock_type::now() - start;
  srv.resume();
  REQUIRE_FALSE(hung);
  CHECK(nova::is(hung.error(), errc::backend_unavailable));
  CHECK(elapsed < 2s);
}

TEST_CASE("eval runs a script by its cached SHA and reloads it after SCRIPT "
          "FLUSH") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  const std::string script = "redis.call('SET', KEYS[1], ARGV[1]) "
                             "return redis.call('INCRBY', KEYS[2], ARGV[2])";
  run(conn, {"CONFIG", "RESETSTAT"});
  CHECK(must(conn.eval(script, {"last", "total"}, {"a", "5"})).integer == 5);
  CHECK(must(conn.eval(script, {"last", "total"}, {"b", "5"})).integer == 10);
  CHECK(calls_of(conn, "script|load") == 1);
  CHECK(calls_of(conn, "evalsha") == 2);
  CHECK(calls_of(conn, "eval") == -1);
  run(conn, {"SCRIPT", "FLUSH"});
  CHECK(must(conn.eval(script, {"last", "total"}, {"c", "5"})).integer == 15);
  CHECK(calls_of(conn, "script|load") == 2);
  CHECK(must(run(conn, {"GET", "last"}).as_string()) == "c");
  auto broken = conn.eval("return redis.call('INCR', KEYS[1])", {"last"}, {});
  REQUIRE_FALSE(broken);
  CHECK(nova::is(broken.error(), errc::invalid_argument));
  CHECK(contains(text_of(broken.error()), "not an integer"));
  auto syntax = conn.eval("this is not lua", {}, {});
  REQUIRE_FALSE(syntax);
  CHECK(nova::is(syntax.error(), errc::invalid_argument));
  CHECK(conn.ok());
}

TEST_CASE("a reply nested more than eight arrays deep is decode_failed "
          "and the next call reconnects") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  auto eight = must(conn.eval("return {{{{{{{{1}}}}}}}}", {}, {}));
  CHECK(eight[0][0][0][0][0][0][0][0].integer == 1);
  auto nine = conn.eval("return {{{{{{{{{1}}}}}}}}}", {}, {});
  REQUIRE_FALSE(nine);
  INFO(text_of(nine.error()));
  CHECK(nova::is(nine.error(), errc::decode_failed));
  CHECK_FALSE(conn.ok());
  CHECK(must(run(conn, {"PING"}).as_string()) == "PONG");
  CHECK(conn.reconnects() == 1);
}

namespace {

// Writes what a visitor is given as one line per piece.
class trace_visitor : public nova::reply_visitor {
public:
  std::vector<std::string> lines;

  void on_array(size_t depth, size_t index, size_t elements) override {
    lines.push_back(fmt::format("{}:{} array {}", depth, index, elements));
  }

  void on_string(size_t depth, size_t index, redis_value::type t,
                 std::string_view bytes) override {
    const char* name = t == redis_value::type::error    ? "error"
                       : t == redis_value::type::status ? "status"
                                                        : "string";
    lines.push_back(fmt::format("{}:{} {} {}", depth, index, name, bytes));
  }

  void on_integer(size_t depth, size_t index, int64_t value) override {
    lines.push_back(fmt::format("{}:{} integer {}", depth, index, value));
  }

  void on_nil(size_t depth, size_t index) override {
    lines.push_back(fmt::format("{}:{} nil", depth, index));
  }
};

} // namespace

TEST_CASE("a pipeline written in RESP hands its last reply to a visitor "
          "piece by piece") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  nova::resp_buffer cmds;
  std::string binary{"a\0b\r\nc", 6};
  cmds.command({"SET", "k", binary});
  cmds.begin(4).arg("HSET").arg("h").arg(uint64_t{42}).arg("v");
  cmds.command({"EVAL", "return {1, 'x', {false, 'y'}, redis.error_reply('no')}",
                "0"});
  CHECK(cmds.commands() == 3);
  std::vector<redis_value> out;
  trace_visitor v;
  REQUIRE_FALSE(conn.pipeline(cmds, out, &v));
  REQUIRE(out.size() == 2);
  CHECK(out[0].t == redis_value::type::status);
  CHECK(out[1].integer == 1);
  CHECK(v.lines
        == strings{"0:0 array 4", "1:0 integer 1", "1:1 string x",
                   "1:2 array 2", "2:0 nil", "2:1 string y", "1:3 error ERR no"});
  CHECK(run(conn, {"GET", "k"}).str == binary);
  CHECK(run(conn, {"HGET", "h", "42"}).str == "v");
  // Without a visitor every reply is a value; the buffer is reusable.
  cmds.clear();
  CHECK(cmds.empty());
  cmds.command({"PING"}).command({"GET", "missing"});
  REQUIRE_FALSE(conn.pipeline(cmds, out));
  REQUIRE(out.size() == 2);
  CHECK(out[0].str == "PONG");
  CHECK(out[1].is_nil());
}

TEST_CASE("a pipeline that is a connection's first use connects and gets "
          "every reply") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  // A pool connects lazily: the handshake happens inside the pipeline.
  auto pool = must(nova::redis_pool::make(settings_for(srv.url())));
  auto r = must(pool.pipeline({{"SET", "a", "1"}, {"INCR", "a"}}));
  REQUIRE(r.size() == 2);
  CHECK(r[0].str == "OK");
  CHECK(r[1].integer == 2);
  auto other = must(nova::redis_pool::make(settings_for(srv.url())));
  nova::resp_buffer cmds;
  cmds.command({"INCR", "a"}).command({"GET", "a"});
  std::vector<redis_value> out;
  REQUIRE_FALSE(other.pipeline(cmds, out));
  REQUIRE(out.size() == 2);
  CHECK(out[0].integer == 3);
  CHECK(out[1].str == "3");
}

TEST_CASE("pipelines sent one after another are received in order") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  nova::resp_buffer one;
  nova::resp_buffer two;
  one.command({"INCR", "n"}).command({"INCR", "n"});
  two.command({"INCR", "n"});
  REQUIRE_FALSE(conn.send(one));
  // The replies of `one` may be waiting on the socket: still no reconnect.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE_FALSE(conn.send(two));
  std::vector<redis_value> out;
  REQUIRE_FALSE(conn.receive(2, out));
  REQUIRE(out.size() == 2);
  CHECK(out[0].integer == 1);
  CHECK(out[1].integer == 2);
  REQUIRE_FALSE(conn.receive(1, out));
  CHECK(out.at(0).integer == 3);
  CHECK(conn.reconnects() == 0);
  // Nothing left to read is an error, not a hang.
  auto err = conn.receive(1, out);
  CHECK(nova::is(err, errc::backend_unavailable));
  CHECK(run(conn, {"GET", "n"}).str == "3");
}

TEST_CASE("a visited reply hiredis cannot parse is decode_failed and the "
          "next call reconnects") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto conn = connect(srv);
  nova::resp_buffer cmds;
  cmds.command({"EVAL", "return {{{{{{{{{1}}}}}}}}}", "0"});
  std::vector<redis_value> out;
  trace_visitor v;
  auto err = conn.pipeline(cmds, out, &v);
  REQUIRE(err);
  INFO(text_of(err));
  CHECK(nova::is(err, errc::decode_failed));
  CHECK_FALSE(conn.ok());
  CHECK(must(run(conn, {"PING"}).as_string()) == "PONG");
  // And the reader builds values again.
  CHECK(run(conn, {"EVAL", "return {1, {2}}", "0"})[1][0].integer == 2);
}

TEST_CASE("the pool serves 8 threads doing 500 INCR each with an exact "
          "count") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.pool_size = 4;
  auto pool = must(redis_pool::connect(s));
  CHECK(pool.size() == 4);
  CHECK(pool.idle() == 4);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        if (!pool.command({"INCR", "counter"}))
          ++failures;
    });
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  CHECK(must(must(pool.command({"GET", "counter"})).as_int()) == 4000);
  CHECK(pool.idle() == 4);
  CHECK(must(pool.ping()) < 1s);
  auto n = pool.with([](redis_connection& c) -> caf::expected<int64_t> {
    auto r = c.command({"INCRBY", "counter", "10"});
    if (!r)
      return std::move(r.error());
    return r->as_int();
  });
  CHECK(must(std::move(n)) == 4010);
  auto sum = must(pool.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])",
                            {"counter"}, {"-10"}));
  CHECK(sum.integer == 4000);
}

TEST_CASE("a pool with every connection leased reports exhaustion within its "
          "wait") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.pool_size = 2;
  auto pool = must(redis_pool::make(s));
  {
    auto a = must(pool.lease());
    auto b = must(pool.lease());
    CHECK(pool.idle() == 0);
    CHECK(must(a->command({"SET", "held", "1"})).str == "OK");
    auto start = clock_type::now();
    auto c = pool.lease(100ms);
    auto elapsed = clock_type::now() - start;
    REQUIRE_FALSE(c);
    CHECK(nova::is(c.error(), errc::backend_unavailable));
    CHECK(contains(text_of(c.error()), "pool exhausted"));
    CHECK(elapsed >= 90ms);
    CHECK(elapsed < 1s);
    // A lease given back wakes a waiter.
    std::thread giver{[&] {
      std::this_thread::sleep_for(100ms);
      auto gone = std::move(b);
    }};
    auto d = pool.lease(2s);
    giver.join();
    REQUIRE(d);
    CHECK(must((*d)->command({"GET", "held"})).str == "1");
  }
  CHECK(pool.idle() == 2);
  // Waiters are served in order: a thread that gives its connection back
  // and asks again at once does not starve one that waits.
  auto single = s;
  single.pool_size = 1;
  auto one = must(redis_pool::make(single));
  std::atomic<bool> done{false};
  std::thread hog{[&] {
    while (!done)
      static_cast<void>(one.lease(1s));
  }};
  std::this_thread::sleep_for(20ms);
  int served = 0;
  for (int i = 0; i < 50; ++i)
    if (one.lease(500ms))
      ++served;
  done = true;
  hog.join();
  CHECK(served == 50);
  auto zero = s;
  zero.pool_size = 0;
  auto none = redis_pool::make(zero);
  REQUIRE_FALSE(none);
  CHECK(nova::is(none.error(), errc::invalid_argument));
}

TEST_CASE("connecting to a closed port is backend_unavailable quickly") {
  auto port = nova::testing::free_port();
  auto s = settings_for(nova::testing::redis_url(port));
  auto start = clock_type::now();
  auto conn = redis_connection::connect(s);
  REQUIRE_FALSE(conn);
  CHECK(clock_type::now() - start < 1s);
  CHECK(nova::is(conn.error(), errc::backend_unavailable));
  auto text = text_of(conn.error());
  INFO(text);
  CHECK(contains(text, "cannot connect to redis at 127.0.0.1:"
                         + std::to_string(port)));
  auto pool = redis_pool::connect(s);
  REQUIRE_FALSE(pool);
  CHECK(nova::is(pool.error(), errc::backend_unavailable));
  // A lazy pool comes up without the server and fails per call.
  auto lazy = must(redis_pool::make(s));
  auto r = lazy.command({"PING"});
  REQUIRE_FALSE(r);
  CHECK(nova::is(r.error(), errc::backend_unavailable));
}

TEST_CASE("after a stopped server the connection backs off instead of "
          "hammering it and reconnects once it is back") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.reconnect_base = 400ms;
  s.reconnect_max = 400ms;
  auto conn = must(redis_connection::connect(s));
  run(conn, {"SET", "k", "v"});
  srv.stop();
  auto first = conn.command({"GET", "k"});
  REQUIRE_FALSE(first);
  CHECK(nova::is(first.error(), errc::backend_unavailable));
  CHECK(contains(text_of(first.error()), "cannot connect"));
  // Within the backoff no attempt is made: the call fails at once.
  auto start = clock_type::now();
  auto second = conn.command({"GET", "k"});
  CHECK(clock_type::now() - start < 50ms);
  REQUIRE_FALSE(second);
  CHECK(nova::is(second.error(), errc::backend_unavailable));
  auto text = text_of(second.error());
  INFO(text);
  CHECK(contains(text, "next attempt in"));
  srv.start();
  // At most reconnect_max later it connects again.
  std::this_thread::sleep_for(450ms);
  CHECK(must(run(conn, {"PING"}).as_string()) == "PONG");
  CHECK(conn.reconnects() == 1);
  CHECK(run(conn, {"GET", "k"}).is_nil());
}

TEST_CASE("a stopped server fails pool commands with backend_unavailable and "
          "the pool recovers after a restart") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.pool_size = 3;
  auto pool = must(redis_pool::connect(s));
  CHECK(must(pool.command({"SET", "k", "v"})).str == "OK");
  srv.stop();
  auto start = clock_type::now();
  for (int i = 0; i < 20; ++i) {
    auto r = pool.command({"GET", "k"});
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::backend_unavailable));
  }
  CHECK(clock_type::now() - start < s.command_timeout);
  srv.start();
  CHECK(eventually([&] { return static_cast<bool>(pool.command({"PING"})); },
                   5s));
  for (int i = 0; i < 20; ++i)
    CHECK(pool.command({"INCR", "after"}));
  CHECK(must(must(pool.command({"GET", "after"})).as_int()) == 20);
  // Every connection recovers, also under concurrent use.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (!eventually([&] { return static_cast<bool>(
                                pool.command({"INCR", "busy"})); },
                        2s))
          ++failures;
    });
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  CHECK(must(must(pool.command({"GET", "busy"})).as_int()) >= 150);
}

TEST_CASE("a hung server fails a command within command_timeout instead of "
          "hanging") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto s = settings_for(srv.url());
  s.command_timeout = 300ms;
  auto conn = must(redis_connection::connect(s));
  srv.pause();
  auto start = clock_type::now();
  auto r = conn.command({"SET", "k", "v"});
  auto elapsed = clock_type::now() - start;
  srv.resume();
  REQUIRE_FALSE(r);
  CHECK(nova::is(r.error(), errc::backend_unavailable));
  auto text = text_of(r.error());
  INFO(text);
  CHECK(contains(text, "no reply to SET within 300 ms"));
  CHECK(elapsed >= 290ms);
  CHECK(elapsed < 2s);
  CHECK_FALSE(conn.ok());
  // A resumed server on a busy machine may need a moment.
  CHECK(eventually([&] { return static_cast<bool>(conn.command({"PING"})); },
                   5s));
}

TEST_CASE("a server that closed the connection before a large write does "
          "not end the process with SIGPIPE") {
  // A fake server: answers the handshake's PING and closes at once, so the
  // pipeline's write goes to a connection already closed by its peer. The
  // first write() is answered by a reset, the next one raises SIGPIPE.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          == 0);
  REQUIRE(::listen(listener, 4) == 0);
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len)
          == 0);
  std::thread fake{[listener] {
    for (int served = 0; served < 2; ++served) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1)
        return;
      int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0)
        return;
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      std::string got;
      char buf[256];
      while (!contains(got, "PING\r\n")) {
        auto n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
          break;
        got.append(buf, static_cast<size_t>(n));
      }
      ::send(fd, "+PONG\r\n", 7, MSG_NOSIGNAL);
      ::close(fd);
    }
  }};
  auto s = settings_for(nova::testing::redis_url(ntohs(addr.sin_port)));
  auto conn = redis_connection::connect(s);
  REQUIRE(conn);
  // The pipeline finds the first connection closed, connects again, and
  // writes to the second one that the fake has closed as well.
  std::string big(32 << 20, 'x');
  auto r = conn->pipeline({{"SET", "big", big}, {"GET", "big"}});
  REQUIRE_FALSE(r);
  INFO(text_of(r.error()));
  CHECK(nova::is(r.error(), errc::backend_unavailable));
  fake.join();
  ::close(listener);
}

TEST_CASE("a password-protected server accepts the right password and "
          "rejects a wrong or missing one") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv{{"--requirepass", "s3cret:@/"}};
  auto base = nova::testing::redis_url(srv.port()).substr(8);
  auto good = must(redis_connection::connect(
    settings_for("redis://:s3cret%3A%40%2F@" + base)));
  CHECK(must(run(good, {"PING"}).as_string()) == "PONG");
  auto acl = must(redis_connection::connect(
    settings_for("redis://default:s3cret%3A%40%2F@" + base)));
  CHECK(must(run(acl, {"PING"}).as_string()) == "PONG");
  auto wrong = redis_connection::connect(
    settings_for("redis://:guess@" + base));
  REQUIRE_FALSE(wrong);
  CHECK(nova::is(wrong.error(), errc::backend_unavailable));
  auto text = text_of(wrong.error());
  INFO(text);
  CHECK(contains(text, "AUTH"));
  CHECK_FALSE(contains(text, "guess"));
  auto anonymous = redis_connection::connect(settings_for(srv.url()));
  REQUIRE_FALSE(anonymous);
  CHECK(nova::is(anonymous.error(), errc::backend_unavailable));
  CHECK(contains(text_of(anonymous.error()), "NOAUTH"));
  auto pool = redis_pool::connect(settings_for(srv.url()));
  REQUIRE_FALSE(pool);
  CHECK(contains(text_of(pool.error()), "NOAUTH"));
}

TEST_CASE("a database chosen in the URL isolates keys") {
  NOVA_REQUIRE_REDIS_SERVER();
  redis_server srv;
  auto db0 = must(redis_connection::connect(settings_for(srv.url())));
  auto db2 = must(redis_connection::connect(settings_for(srv.url() + "/2")));
  auto pool2 = must(redis_pool::connect(settings_for(srv.url() + "/2")));
  run(db2, {"SET", "k", "in-2"});
  CHECK(run(db0, {"GET", "k"}).is_nil());
  CHECK(must(must(pool2.command({"GET", "k"})).as_string()) == "in-2");
  run(db0, {"SET", "k", "in-0"});
  CHECK(must(run(db2, {"GET", "k"}).as_string()) == "in-2");
  CHECK(run(db0, {"DBSIZE"}).integer == 1);
  CHECK(run(db2, {"DBSIZE"}).integer == 1);
  auto far = redis_connection::connect(settings_for(srv.url() + "/99"));
  REQUIRE_FALSE(far);
  CHECK(nova::is(far.error(), errc::backend_unavailable));
  CHECK(contains(text_of(far.error()), "SELECT"));
}

TEST_CASE("the redis fixture leaves no files behind") {
  NOVA_REQUIRE_REDIS_SERVER();
  std::string dir;
  {
    redis_server srv;
    dir = srv.dir();
    auto conn = connect(srv);
    run(conn, {"SET", "k", "v"});
    srv.restart();
    // No persistence: a restart starts empty.
    auto again = connect(srv);
    CHECK(run(again, {"GET", "k"}).is_nil());
    srv.stop();
    CHECK(std::filesystem::is_empty(dir));
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}
