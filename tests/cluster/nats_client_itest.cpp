// Tests of the nats.c adapter against real nats-server processes.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/nats_client.hpp"
#include "messages/errc.hpp"
#include "support/nats_server.hpp"

using namespace std::chrono_literals;
using nova::errc;
using nova::nats_client;
using nova::nats_event;
using nova::nats_message;
using nova::nats_settings;
using nova::testing::nats_cluster;
using nova::testing::nats_server;

namespace {

/// Messages received on nats.c threads, waited for with bounded waits.
class collector {
public:
  nats_client::message_handler handler() {
    return [this](nats_message&& m) { push(std::move(m)); };
  }

  void push(nats_message&& m) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      msgs_.push_back(std::move(m));
    }
    cv_.notify_all();
  }

  bool wait_for(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] { return msgs_.size() >= n; });
  }

  std::vector<nats_message> messages() {
    std::lock_guard<std::mutex> guard{mtx_};
    return msgs_;
  }

  size_t size() {
    std::lock_guard<std::mutex> guard{mtx_};
    return msgs_.size();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<nats_message> msgs_;
};

/// Connection events in the order they arrived.
class event_log {
public:
  nats_client::event_handler handler() {
    return [this](nats_event e) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        events_.push_back(e);
      }
      cv_.notify_all();
    };
  }

  bool wait_for(nats_event e, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      return std::find(events_.begin(), events_.end(), e) != events_.end();
    });
  }

  std::vector<nats_event> events() {
    std::lock_guard<std::mutex> guard{mtx_};
    return events_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<nats_event> events_;
};

/// Drop reports from the slow-consumer handler.
class drop_log {
public:
  nats_client::error_handler handler() {
    return [this](const std::string& subject, uint64_t n) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        subjects_.insert(subject);
        total_ += n;
      }
      cv_.notify_all();
    };
  }

  bool wait_for_any(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] { return total_ > 0; });
  }

  uint64_t total() {
    std::lock_guard<std::mutex> guard{mtx_};
    return total_;
  }

  std::set<std::string> subjects() {
    std::lock_guard<std::mutex> guard{mtx_};
    return subjects_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::set<std::string> subjects_;
  uint64_t total_ = 0;
};

/// A latch a handler can block on, never longer than its bound.
class gate {
public:
  void wait(std::chrono::milliseconds bound = 5s) {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_for(guard, bound, [&] { return open_; });
  }

  void open() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      open_ = true;
    }
    cv_.notify_all();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

nats_settings settings_for(const std::string& urls) {
  auto s = nats_settings::from_url(urls);
  REQUIRE(s);
  s->name = "nova-itest";
  s->connect_timeout = 1s;
  s->reconnect_wait = 100ms;
  s->reconnect_jitter = 50ms;
  s->drain_timeout = 500ms;
  return *s;
}

std::unique_ptr<nats_client>
connect(const nats_settings& s, nats_client::event_handler on_event = {},
        nats_client::error_handler on_slow = {}) {
  auto c = nats_client::connect(s, std::move(on_event), std::move(on_slow));
  if (!c)
    FAIL(nova::describe(c.error()));
  return std::move(*c);
}

std::unique_ptr<nats_client> connect(const std::string& urls) {
  return connect(settings_for(urls));
}

/// Publishes on `pub` until `sink` got a message (interest crosses cluster
/// routes asynchronously), at most for `timeout`.
bool publish_until_received(nats_client& pub, const std::string& subject,
                            collector& sink,
                            std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto before = sink.size();
  while (std::chrono::steady_clock::now() < deadline) {
    if (pub.publish(subject, "probe"))
      return false;
    if (sink.wait_for(before + 1, 100ms))
      return true;
  }
  return false;
}

} // namespace

TEST_CASE("a URL list parses into servers and malformed lists are rejected") {
  auto s = nats_settings::from_url("nats://a:4222, nats://u:p@b:4223");
  REQUIRE(s);
  CHECK(s->servers
        == std::vector<std::string>{"nats://a:4222", "nats://u:p@b:4223"});
  CHECK_FALSE(s->tls);
  auto t = nats_settings::from_url("tls://a:4222");
  REQUIRE(t);
  CHECK(t->tls);
  for (auto bad : {"", "nats://a:4222,", "nats://a:4222,,nats://b:1",
                   "http://a:80", "nats://"}) {
    INFO(bad);
    auto r = nats_settings::from_url(bad);
    REQUIRE_FALSE(r);
    CHECK(nova::is(r.error(), errc::invalid_argument));
  }
}

TEST_CASE("a message with headers and a binary payload arrives intact") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  collector got;
  auto sub = client->subscribe("nova.test.roundtrip", got.handler());
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  std::string payload{"head\0middle\0", 12};
  for (int i = 0; i < 256; ++i)
    payload.push_back(static_cast<char>(i));
  nova::headers hdrs{{"Nova-Msg-Id", "m-1"},
                     {"Nova-Correlation-Id", "c-1"},
                     {"Content-Type", "application/octet-stream"}};
  REQUIRE_FALSE(client->publish("nova.test.roundtrip", payload, hdrs,
                                "nova.test.reply"));
  REQUIRE_FALSE(client->publish("nova.test.roundtrip", "plain"));
  REQUIRE(got.wait_for(2));
  auto msgs = got.messages();
  CHECK(msgs[0].subject == "nova.test.roundtrip");
  CHECK(msgs[0].reply == "nova.test.reply");
  CHECK(msgs[0].data.size() == payload.size());
  CHECK(msgs[0].data == payload);
  CHECK(msgs[0].headers == hdrs);
  CHECK_FALSE(msgs[0].no_responders);
  CHECK(msgs[1].data == "plain");
  CHECK(msgs[1].reply.empty());
  CHECK(msgs[1].headers.empty());
}

TEST_CASE("trusted headers arrive as sent and header_keys limits what is "
          "copied") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto all = connect(srv.url());
  auto s = settings_for(srv.url());
  s.header_keys = {"Content-Type", "Nova-Node"};
  auto some = connect(s);
  collector got_all;
  collector got_some;
  auto sub_all = all->subscribe("nova.test.trusted", got_all.handler());
  auto sub_some = some->subscribe("nova.test.trusted", got_some.handler());
  REQUIRE(sub_all);
  REQUIRE(sub_some);
  REQUIRE_FALSE(all->flush(2s));
  REQUIRE_FALSE(some->flush(2s));
  std::string payload{"a\0b", 3};
  nats_client::header_ref refs[] = {{"Nova-Msg-Id", "01J0000000000000000000000A"},
                                    {"Nova-Node", "node-1"},
                                    {"Content-Type", "application/json"}};
  REQUIRE_FALSE(all->publish_trusted("nova.test.trusted", payload, refs, 3,
                                     "nova.test.back"));
  REQUIRE_FALSE(all->publish_trusted("nova.test.trusted", "bare", refs, 0));
  REQUIRE(got_all.wait_for(2));
  REQUIRE(got_some.wait_for(2));
  auto a = got_all.messages();
  CHECK(a[0].data == payload);
  CHECK(a[0].reply == "nova.test.back");
  CHECK(a[0].headers
        == nova::headers{{"Nova-Msg-Id", "01J0000000000000000000000A"},
                         {"Nova-Node", "node-1"},
                         {"Content-Type", "application/json"}});
  CHECK(a[1].data == "bare");
  CHECK(a[1].headers.empty());
  auto b = got_some.messages();
  CHECK(b[0].data == payload);
  CHECK(b[0].headers
        == nova::headers{{"Nova-Node", "node-1"},
                         {"Content-Type", "application/json"}});
  CHECK(b[1].headers.empty());
}

TEST_CASE("a borrowing subscription reads the bytes in place and a burst "
          "reports what is still queued") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  std::mutex mtx;
  std::vector<std::string> seen;
  std::vector<uint64_t> pending;
  std::condition_variable cv;
  auto sub = client->subscribe_borrowed(
    "nova.test.borrow", [&](nats_message&& m) {
      CHECK(m.data.empty());
      std::lock_guard guard{mtx};
      seen.emplace_back(m.bytes());
      pending.push_back(m.pending);
      cv.notify_all();
    });
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i)
    REQUIRE_FALSE(client->publish("nova.test.borrow", std::to_string(i)));
  std::unique_lock guard{mtx};
  REQUIRE(cv.wait_for(guard, 5s, [&] { return seen.size() == n; }));
  for (int i = 0; i < n; ++i)
    CHECK(seen[i] == std::to_string(i));
  // The last message of the run has nothing behind it; each count is at
  // most what is left.
  CHECK(pending.back() == 0);
  for (int i = 0; i < n; ++i)
    CHECK(pending[i] <= static_cast<uint64_t>(n - 1 - i));
}

TEST_CASE("queue-group members split messages so each is handled once") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto member_a = connect(srv.url());
  auto member_b = connect(srv.url());
  auto publisher = connect(srv.url());
  collector got_a;
  collector got_b;
  auto sub_a = member_a->subscribe("nova.test.work", got_a.handler(),
                                   "workers");
  auto sub_b = member_b->subscribe("nova.test.work", got_b.handler(),
                                   "workers");
  REQUIRE(sub_a);
  REQUIRE(sub_b);
  REQUIRE_FALSE(member_a->flush(2s));
  REQUIRE_FALSE(member_b->flush(2s));
  constexpr size_t n = 200;
  for (size_t i = 0; i < n; ++i)
    REQUIRE_FALSE(publisher->publish("nova.test.work", std::to_string(i)));
  REQUIRE_FALSE(publisher->flush(2s));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (got_a.size() + got_b.size() < n
         && std::chrono::steady_clock::now() < deadline)
    got_a.wait_for(got_a.size() + 1, 50ms);
  std::multiset<std::string> seen;
  for (auto& m : got_a.messages())
    seen.insert(m.data);
  for (auto& m : got_b.messages())
    seen.insert(m.data);
  CHECK(seen.size() == n);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == n);
  CHECK(got_a.size() > 0);
  CHECK(got_b.size() > 0);
}

TEST_CASE("a request gets the reply its responder publishes") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto responder = connect(srv.url());
  auto requester = connect(srv.url());
  collector seen;
  auto sub = responder->subscribe(
    "nova.test.echo", [&](nats_message&& m) {
      responder->publish(m.reply, "echo:" + m.data,
                         {{"Nova-Correlation-Id",
                           m.headers["Nova-Correlation-Id"]}});
      seen.push(std::move(m));
    });
  REQUIRE(sub);
  REQUIRE_FALSE(responder->flush(2s));
  auto reply = requester->request("nova.test.echo", "ping",
                                  {{"Nova-Correlation-Id", "corr-7"}}, 2s);
  REQUIRE(reply);
  CHECK(reply->data == "echo:ping");
  CHECK(reply->headers["Nova-Correlation-Id"] == "corr-7");
  CHECK_FALSE(reply->no_responders);
  REQUIRE(seen.wait_for(1));
  CHECK(seen.messages()[0].headers.at("Nova-Correlation-Id") == "corr-7");
  auto plain = requester->request("nova.test.echo", "again", {}, 2s);
  REQUIRE(plain);
  CHECK(plain->data == "echo:again");
}

TEST_CASE("a request times out with request_timeout when the reply is late") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto responder = connect(srv.url());
  auto requester = connect(srv.url());
  gate late;
  auto sub = responder->subscribe("nova.test.slow_echo",
                                  [&](nats_message&& m) {
                                    late.wait();
                                    responder->publish(m.reply, "too late");
                                  });
  REQUIRE(sub);
  REQUIRE_FALSE(responder->flush(2s));
  auto start = std::chrono::steady_clock::now();
  auto reply = requester->request("nova.test.slow_echo", "ping", {}, 200ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  late.open();
  REQUIRE_FALSE(reply);
  CHECK(nova::is(reply.error(), errc::request_timeout));
  CHECK(elapsed >= 150ms);
  CHECK(elapsed < 2s);
}

TEST_CASE("a request without responders fails at once with unknown_nova") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  auto start = std::chrono::steady_clock::now();
  auto reply = client->request("nova.test.nobody", "ping", {}, 5s);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(reply);
  CHECK(nova::is(reply.error(), errc::unknown_nova));
  CHECK(elapsed < 2s);
  auto with_headers = client->request("nova.test.nobody", "ping",
                                      {{"Nova-Msg-Id", "x"}}, 5s);
  REQUIRE_FALSE(with_headers);
  CHECK(nova::is(with_headers.error(), errc::unknown_nova));
  // An asynchronous requester sees the server's status on its inbox.
  collector inbox;
  auto reply_to = client->new_inbox();
  auto sub = client->subscribe(reply_to, inbox.handler());
  REQUIRE(sub);
  REQUIRE_FALSE(client->publish("nova.test.nobody", "ping", {}, reply_to));
  REQUIRE(inbox.wait_for(1));
  auto status = inbox.messages()[0];
  CHECK(status.no_responders);
  CHECK(status.data.empty());
  CHECK(status.headers["Status"] == "503");
}

TEST_CASE("connecting to a closed port without retry is backend_unavailable") {
  NOVA_REQUIRE_NATS_SERVER();
  auto port = nova::testing::free_port();
  auto s = settings_for(nova::testing::loopback_url(port));
  s.retry_on_failed_connect = false;
  auto start = std::chrono::steady_clock::now();
  auto client = nats_client::connect(s);
  REQUIRE_FALSE(client);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(nova::is(client.error(), errc::backend_unavailable));
  auto text = nova::describe(client.error());
  INFO(text);
  CHECK(text.find("cannot connect to NATS") != std::string::npos);
  CHECK(text.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
}

TEST_CASE("with retry on failed connect the client comes up once the server "
          "starts") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv{nats_server::deferred};
  event_log events;
  auto client = connect(settings_for(srv.url()), events.handler());
  CHECK_FALSE(client->connected());
  collector got;
  // Subscribed while down: nats.c sends the subscription on connect.
  auto sub = client->subscribe("nova.test.late", got.handler());
  REQUIRE(sub);
  srv.start();
  REQUIRE(events.wait_for(nats_event::connected));
  CHECK(client->connected());
  CHECK(client->connected_url() == srv.url());
  REQUIRE_FALSE(client->publish("nova.test.late", "hello"));
  REQUIRE(got.wait_for(1));
  CHECK(got.messages()[0].data == "hello");
}

TEST_CASE("after a server restart the client reconnects and subscriptions "
          "survive") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  event_log events;
  auto client = connect(settings_for(srv.url()), events.handler());
  event_log publisher_events;
  auto publisher = connect(settings_for(srv.url()), publisher_events.handler());
  collector got;
  auto sub = client->subscribe("nova.test.survive", got.handler());
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  REQUIRE_FALSE(client->publish("nova.test.survive", "before"));
  REQUIRE(got.wait_for(1));
  srv.stop();
  REQUIRE(events.wait_for(nats_event::disconnected));
  CHECK_FALSE(client->connected());
  srv.start();
  REQUIRE(events.wait_for(nats_event::reconnected));
  auto seen = events.events();
  auto disc = std::find(seen.begin(), seen.end(), nats_event::disconnected);
  auto reco = std::find(seen.begin(), seen.end(), nats_event::reconnected);
  CHECK(disc < reco);
  CHECK(client->reconnects() == 1);
  CHECK(client->connected());
  REQUIRE_FALSE(client->publish("nova.test.survive", "after"));
  REQUIRE_FALSE(client->flush(2s));
  REQUIRE(got.wait_for(2));
  CHECK(got.messages()[1].data == "after");
  // Another connection's publish reaches the re-established subscription.
  REQUIRE(publisher_events.wait_for(nats_event::reconnected));
  REQUIRE(publish_until_received(*publisher, "nova.test.survive", got));
}

TEST_CASE("a cluster client fails over when its server dies and pub/sub goes "
          "on") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_cluster cluster{3};
  REQUIRE(cluster.wait_for_routes(10s));
  event_log events;
  auto client = connect(settings_for(cluster.urls()), events.handler());
  auto first = cluster.index_of(client->connected_url());
  REQUIRE(first < cluster.size());
  auto other = (first + 1) % cluster.size();
  auto publisher = connect(cluster.url(other));
  collector got;
  auto sub = client->subscribe("nova.test.failover", got.handler());
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  REQUIRE(publish_until_received(*publisher, "nova.test.failover", got));
  cluster.kill(first);
  REQUIRE(events.wait_for(nats_event::reconnected));
  auto now = cluster.index_of(client->connected_url());
  CHECK(now < cluster.size());
  CHECK(now != first);
  CHECK(client->reconnects() >= 1);
  REQUIRE(publish_until_received(*publisher, "nova.test.failover", got));
  REQUIRE_FALSE(client->publish("nova.test.failover", "own"));
  REQUIRE_FALSE(client->flush(2s));
}

TEST_CASE("a subscriber that falls behind drops messages and the drops are "
          "reported") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  drop_log drops;
  auto client = connect(settings_for(srv.url()), {}, drops.handler());
  gate release;
  collector handled;
  auto sub = client->subscribe(
    "nova.test.slow",
    [&](nats_message&& m) {
      release.wait();
      handled.push(std::move(m));
    },
    {}, nova::nats_pending_limits{2, 1 << 20});
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  constexpr size_t n = 100;
  for (size_t i = 0; i < n; ++i)
    REQUIRE_FALSE(client->publish("nova.test.slow", std::to_string(i)));
  // The PONG comes after every message: drop counts are final afterwards.
  REQUIRE_FALSE(client->flush(2s));
  REQUIRE(drops.wait_for_any());
  CHECK(drops.subjects() == std::set<std::string>{"nova.test.slow"});
  auto dropped = (*sub)->dropped();
  CHECK(dropped > 0);
  CHECK(dropped < n);
  CHECK(client->slow_consumer_drops() > 0);
  // The counter moves before the handler hears of it.
  CHECK(client->slow_consumer_drops() >= drops.total());
  release.open();
  REQUIRE(handled.wait_for(n - dropped));
  CHECK(handled.size() == n - dropped);
  sub->reset();
  // Drops after the first report are reported when the subscription closes.
  CHECK(drops.total() == dropped);
  CHECK(client->slow_consumer_drops() == dropped);
}

TEST_CASE("invalid subjects, queue groups and headers are invalid_argument") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  auto noop = [](nats_message&&) {};
  for (auto subject : {"", "has space", "tab\there", "a..b", ".a", "a.",
                       "nova.*", "nova.>", "new\nline"}) {
    INFO("publish to '" << subject << "'");
    auto err = client->publish(subject, "x");
    CHECK(nova::is(err, errc::invalid_argument));
    auto req = client->request(subject, "x", {}, 100ms);
    REQUIRE_FALSE(req);
    CHECK(nova::is(req.error(), errc::invalid_argument));
  }
  for (auto subject : {"", "a b", "a..b", "a.>.b", "a.b*"}) {
    INFO("subscribe to '" << subject << "'");
    auto sub = client->subscribe(subject, noop);
    REQUIRE_FALSE(sub);
    CHECK(nova::is(sub.error(), errc::invalid_argument));
  }
  CHECK(client->subscribe("nova.*.x", noop));
  CHECK(client->subscribe("nova.>", noop));
  auto bad_group = client->subscribe("nova.x", noop, "two words");
  REQUIRE_FALSE(bad_group);
  CHECK(nova::is(bad_group.error(), errc::invalid_argument));
  CHECK(nova::is(client->publish("nova.x", "x", {}, "bad reply"),
                 errc::invalid_argument));
  CHECK(nova::is(client->publish("nova.x", "x", {{"Bad Key", "v"}}),
                 errc::invalid_argument));
  CHECK(nova::is(client->publish("nova.x", "x", {{"Key", "a\r\nInjected: 1"}}),
                 errc::invalid_argument));
  CHECK(nova::describe(client->publish("has space", "x")).find("has space")
        != std::string::npos);
}

TEST_CASE("a live connection reports its server, RTT, inboxes and payload "
          "limit") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  CHECK(client->connected());
  CHECK(client->connected_url() == srv.url());
  CHECK_FALSE(client->server_id().empty());
  auto rtt = client->rtt();
  REQUIRE(rtt);
  CHECK(rtt->count() > 0);
  auto a = client->new_inbox();
  auto b = client->new_inbox();
  CHECK(a.rfind("_INBOX.", 0) == 0);
  CHECK(a != b);
  CHECK(client->max_payload() == 1024 * 1024);
  std::string big(static_cast<size_t>(client->max_payload()) + 1, 'x');
  CHECK(nova::is(client->publish("nova.test.big", big),
                 errc::payload_too_large));
  CHECK(client->reconnects() == 0);
  CHECK(client->slow_consumer_drops() == 0);
}

TEST_CASE("destroying a subscription waits for its running handler and stops "
          "further calls") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  std::mutex mtx;
  std::condition_variable cv;
  size_t calls = 0;
  bool returned = false;
  auto sub = client->subscribe("nova.test.busy", [&](nats_message&&) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      ++calls;
    }
    cv.notify_all();
    // Long enough for the destructor to start while this still runs.
    std::this_thread::sleep_for(200ms);
    std::lock_guard<std::mutex> guard{mtx};
    returned = true;
  });
  REQUIRE(sub);
  REQUIRE_FALSE(client->flush(2s));
  for (int i = 0; i < 10; ++i)
    REQUIRE_FALSE(client->publish("nova.test.busy", "x"));
  {
    std::unique_lock<std::mutex> guard{mtx};
    REQUIRE(cv.wait_for(guard, 5s, [&] { return calls > 0; }));
  }
  sub->reset();
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(returned);
  CHECK(calls == 1);
}

TEST_CASE("a handler may destroy its own subscription") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  std::unique_ptr<nova::nats_subscription> holder;
  auto sub = client->subscribe("nova.test.self", [&](nats_message&&) {
    holder.reset();
    {
      std::lock_guard<std::mutex> guard{mtx};
      done = true;
    }
    cv.notify_all();
  });
  REQUIRE(sub);
  holder = std::move(*sub);
  REQUIRE_FALSE(client->flush(2s));
  REQUIRE_FALSE(client->publish("nova.test.self", "bye"));
  std::unique_lock<std::mutex> guard{mtx};
  REQUIRE(cv.wait_for(guard, 5s, [&] { return done; }));
}

TEST_CASE("a subscription may outlive its client") {
  NOVA_REQUIRE_NATS_SERVER();
  nats_server srv;
  auto client = connect(srv.url());
  collector got;
  auto sub = client->subscribe("nova.test.orphan", got.handler());
  REQUIRE(sub);
  REQUIRE_FALSE(client->publish("nova.test.orphan", "x"));
  REQUIRE(got.wait_for(1));
  client.reset();
  CHECK((*sub)->dropped() == 0);
  sub->reset();
  CHECK(got.size() == 1);
}
