#include <atomic>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>

#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "support/sink.hpp"
#include "support/test_node.hpp"

using namespace nova;
using namespace std::chrono_literals;
using nova::testing::make_sink;
using nova::testing::recorder;
using nova::testing::test_config;

namespace {

/// Runs `f` inside a fresh Nova once it starts; the Nova records replies and
/// errors of what `f` starts into `out` (as envelopes; errors as payload
/// "error:<describe>").
class script : public agent {
public:
  using body = std::function<void(script&)>;

  script(caf::actor_config& cfg, agent_init init, body f,
         nova::testing::envelope_sink out)
    : agent(cfg, std::move(init)), f_(std::move(f)), out_(std::move(out)) {
    // nop
  }

  void record(envelope e) {
    out_->push(std::move(e));
  }

  void record_error(const caf::error& err) {
    envelope e;
    e.payload = "error:" + describe(err);
    out_->push(std::move(e));
  }

protected:
  void on_start() override {
    f_(*this);
  }

  void on_message(const envelope& msg) override {
    out_->push(msg);
  }

  void on_event(const envelope& msg) override {
    out_->push(msg);
  }

private:
  body f_;
  nova::testing::envelope_sink out_;
};

} // namespace

TEST_CASE("a direct message reaches the named Nova with id, sender and "
          "timestamps set",
          "[agent]") {
  node n{test_config()};
  auto got = make_sink();
  auto errors = make_sink();
  REQUIRE(n.spawn<recorder>("bob", {}, got));
  REQUIRE(n.spawn<script>("alice", {},
                          script::body{[](script& self) {
                            if (auto err = self.send("bob", "hello"))
                              self.record_error(err);
                          }},
                          errors));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "hello");
  CHECK(xs[0].from == "alice");
  CHECK(xs[0].to == "bob");
  CHECK(xs[0].kind == kind::direct);
  CHECK(xs[0].id.size() == 26);
  CHECK(xs[0].correlation_id == xs[0].id);
  CHECK(xs[0].created_at > 0);
  CHECK(errors->size() == 0);
}

TEST_CASE("sending to an unknown Nova is an error to the sender", "[agent]") {
  node n{test_config()};
  auto out = make_sink();
  REQUIRE(n.spawn<script>("alice", {},
                          script::body{[](script& self) {
                            self.record_error(self.send("nobody", "x"));
                          }},
                          out));
  auto xs = out->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload.rfind("error:unknown_nova", 0) == 0);
  CHECK(n.stats().get(counter::rejected_unknown_nova) == 1);
}

TEST_CASE("an invalid recipient id is rejected before anything is sent",
          "[agent]") {
  node n{test_config()};
  auto out = make_sink();
  REQUIRE(n.spawn<script>("alice", {},
                          script::body{[](script& self) {
                            for (auto bad : {"", "a.b", "a b", "x*",
                                             std::string(65, 'a').c_str()})
                              self.record_error(self.send(bad, "x"));
                          }},
                          out));
  auto xs = out->wait_for(5);
  REQUIRE(xs.size() == 5);
  for (const auto& x : xs)
    CHECK(x.payload.rfind("error:invalid_id", 0) == 0);
  CHECK(n.stats().get(counter::sent_direct) == 0);
}

TEST_CASE("a payload over the size limit is refused", "[agent]") {
  auto cfg = test_config();
  cfg.limits.max_payload = 1024;
  node n{cfg};
  auto got = make_sink();
  auto out = make_sink();
  REQUIRE(n.spawn<recorder>("bob", {}, got));
  REQUIRE(n.spawn<script>("alice", {},
                          script::body{[](script& self) {
                            self.record_error(
                              self.send("bob", std::string(1025, 'x')));
                            self.record_error(
                              self.send("bob", std::string(1024, 'x')));
                          }},
                          out));
  auto xs = out->wait_for(2);
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].payload.rfind("error:payload_too_large", 0) == 0);
  CHECK(xs[1].payload == "error:none");
  CHECK(got->wait_for(1).size() == 1);
  CHECK(n.stats().get(counter::rejected_oversized) == 1);
  CHECK(is(n.send("bob", std::string(2000, 'y')), errc::payload_too_large));
}

TEST_CASE("broadcast reaches every Nova and multicast only the group",
          "[agent]") {
  node n{test_config()};
  auto a = make_sink();
  auto b = make_sink();
  auto c = make_sink();
  REQUIRE(n.spawn<recorder>("a", {{}, {"red"}}, a));
  REQUIRE(n.spawn<recorder>("b", {{}, {"red", "blue"}}, b));
  REQUIRE(n.spawn<recorder>("c", {{}, {"blue"}}, c));
  REQUIRE(!n.broadcast("all"));
  REQUIRE(!n.multicast("red", "reds"));
  REQUIRE(a->wait_for(2).size() == 2);
  REQUIRE(b->wait_for(2).size() == 2);
  REQUIRE(c->wait_for(1).size() == 1);
  std::this_thread::sleep_for(50ms); // nothing more may arrive at c
  auto cs = c->items();
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].kind == kind::broadcast);
  auto as = a->items();
  CHECK(as[1].kind == kind::multicast);
  CHECK(as[1].to == "red");
  CHECK(is(n.multicast("no group!", "x"), errc::invalid_id));
}

TEST_CASE("a request gets the reply with the request's correlation id",
          "[agent]") {
  node n{test_config()};
  auto got = make_sink();
  auto out = make_sink();
  REQUIRE(n.spawn<recorder>("echo", {}, got));
  REQUIRE(n.spawn<script>(
    "asker", {},
    script::body{[](script& self) {
      self.request("echo", "ping", 2s).then(
        [&self](const envelope& reply) { self.record(reply); },
        [&self](const caf::error& err) { self.record_error(err); });
    }},
    out));
  auto xs = out->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "re:ping");
  CHECK(xs[0].kind == kind::response);
  CHECK(xs[0].from == "echo");
  CHECK(xs[0].to == "asker");
  auto reqs = got->items();
  REQUIRE(reqs.size() == 1);
  CHECK(xs[0].correlation_id == reqs[0].correlation_id);
  // From outside any Nova too:
  auto r = n.request("echo", "pong", 2s);
  REQUIRE(r);
  CHECK(r->payload == "re:pong");
}

namespace {

class slow : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_request(const envelope& req) override {
    std::this_thread::sleep_for(300ms);
    return req.payload;
  }
};

} // namespace

TEST_CASE("a request without a reply in time fails with request_timeout",
          "[agent]") {
  node n{test_config()};
  auto out = make_sink();
  REQUIRE(n.spawn<slow>("slow", {}));
  REQUIRE(n.spawn<script>(
    "asker", {},
    script::body{[](script& self) {
      self.request("slow", "x", 50ms).then(
        [&self](const envelope& reply) { self.record(reply); },
        [&self](const caf::error& err) { self.record_error(err); });
    }},
    out));
  auto xs = out->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload.rfind("error:request_timeout", 0) == 0);
  CHECK(xs[0].payload.find("'slow'") != std::string::npos);
  auto r = n.request("slow", "x", 50ms);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::request_timeout));
  CHECK(n.stats().get(counter::request_timeouts) >= 2);
}

TEST_CASE("a request to an unknown Nova fails with unknown_nova", "[agent]") {
  node n{test_config()};
  auto out = make_sink();
  REQUIRE(n.spawn<script>(
    "asker", {},
    script::body{[](script& self) {
      self.request("ghost", "x", 1s).then(
        [&self](const envelope& reply) { self.record(reply); },
        [&self](const caf::error& err) { self.record_error(err); });
    }},
    out));
  auto xs = out->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload.rfind("error:unknown_nova", 0) == 0);
  CHECK(is(n.request("ghost", "x", 1s).error(), errc::unknown_nova));
}

TEST_CASE("a Nova without a request handler answers no_handler", "[agent]") {
  node n{test_config()};
  REQUIRE(n.spawn("plain"));
  auto r = n.request("plain", "x", 1s);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::no_handler));
}

namespace {

class thrower : public agent {
public:
  thrower(caf::actor_config& cfg, agent_init init,
          nova::testing::envelope_sink out)
    : agent(cfg, std::move(init)), out_(std::move(out)) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "boom")
      throw std::runtime_error("boom");
    out_->push(msg);
  }

  caf::expected<std::string> on_request(const envelope&) override {
    throw std::logic_error("bad request");
  }

private:
  nova::testing::envelope_sink out_;
};

} // namespace

TEST_CASE("a handler that throws is counted and the Nova keeps working",
          "[agent]") {
  node n{test_config()};
  auto got = make_sink();
  REQUIRE(n.spawn<thrower>("t", {}, got));
  REQUIRE(!n.send("t", "boom"));
  REQUIRE(!n.send("t", "after"));
  auto xs = got->wait_for(1);
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].payload == "after");
  CHECK(n.stats().get(counter::handler_errors) == 1);
  auto r = n.request("t", "x", 1s);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::handler_failed));
  CHECK(describe(r.error()).find("bad request") != std::string::npos);
  CHECK(n.novas() == std::vector<std::string>{"t"});
}

namespace {

/// Blocks its thread on the first message until released, so a test can
/// fill its mailbox in a known order.
class gate_keeper : public agent {
public:
  gate_keeper(caf::actor_config& cfg, agent_init init,
              nova::testing::envelope_sink out,
              std::shared_ptr<std::atomic<bool>> open)
    : agent(cfg, std::move(init)), out_(std::move(out)), open_(open) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "block") {
      while (!open_->load())
        std::this_thread::sleep_for(1ms);
      return;
    }
    out_->push(msg);
  }

  void on_emergency(const envelope& msg) override {
    out_->push(msg);
  }

private:
  nova::testing::envelope_sink out_;
  std::shared_ptr<std::atomic<bool>> open_;
};

} // namespace

TEST_CASE("urgent messages and emergencies are handled before normal ones",
          "[agent]") {
  node n{test_config()};
  auto got = make_sink();
  auto open = std::make_shared<std::atomic<bool>>(false);
  REQUIRE(n.spawn<gate_keeper>("g", {}, got, open));
  REQUIRE(!n.send("g", "block"));
  std::this_thread::sleep_for(20ms); // g is now inside the blocking handler
  for (int i = 0; i < 5; ++i)
    REQUIRE(!n.send("g", "normal"));
  send_options urgent;
  urgent.priority = priority::urgent;
  REQUIRE(!n.send("g", "urgent", urgent));
  REQUIRE(!n.emergency("fire"));
  open->store(true);
  auto xs = got->wait_for(7);
  REQUIRE(xs.size() == 7);
  CHECK(xs[0].payload == "urgent");
  CHECK(xs[1].payload == "fire");
  CHECK(xs[1].kind == kind::emergency);
  for (size_t i = 2; i < 7; ++i)
    CHECK(xs[i].payload == "normal");
}

TEST_CASE("events reach every matching rule and a throwing rule does not "
          "stop the others",
          "[agent][events]") {
  node n{test_config()};
  auto out = make_sink();
  REQUIRE(n.spawn<script>(
    "sub", {},
    script::body{[out](script& self) {
      REQUIRE(!self.subscribe("billing.*", [out](const envelope& e) {
        out->push(e);
      }));
      REQUIRE(!self.subscribe("billing.>", [](const envelope&) {
        throw std::runtime_error("rule failed");
      }));
      REQUIRE(!self.subscribe("billing.invoice.>", [out](const envelope& e) {
        auto copy = e;
        copy.payload = "deep:" + e.payload;
        out->push(copy);
      }));
      REQUIRE(!self.subscribe("shipping.created"));
      CHECK(self.subscribe("bad..pattern"));
      CHECK(self.subscribe("a.>.b"));
    }},
    out));
  REQUIRE(nova::testing::eventually([&] {
    return n.context().directory.subscribers("shipping.created").size() == 1;
  }));
  REQUIRE(!n.publish("billing.paid", "p1"));
  REQUIRE(!n.publish("billing.invoice.created", "p2"));
  REQUIRE(!n.publish("shipping.created", "p3"));
  REQUIRE(!n.publish("other.thing", "p4"));
  auto xs = out->wait_for(3);
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].payload == "p1");
  CHECK(xs[0].subject == "billing.paid");
  CHECK(xs[0].kind == kind::event);
  CHECK(xs[1].payload == "deep:p2");
  CHECK(xs[2].payload == "p3"); // the handler-less rule lands in on_event
  CHECK(n.stats().get(counter::handler_errors) == 2);
  CHECK(is(n.publish("nodot", "x"), errc::invalid_argument));
  CHECK(is(n.publish("a.b c", "x"), errc::invalid_argument));
}

TEST_CASE("send_any and request_any reach one Nova with the capability",
          "[agent]") {
  node n{test_config()};
  auto a = make_sink();
  auto b = make_sink();
  agent_options tr;
  tr.capabilities = {"translate"};
  REQUIRE(n.spawn<recorder>("t1", tr, a));
  REQUIRE(n.spawn<recorder>("t2", tr, b));
  auto out = make_sink();
  REQUIRE(n.spawn<script>(
    "client", {},
    script::body{[](script& self) {
      for (int i = 0; i < 10; ++i)
        if (auto err = self.send_any("translate", "m" + std::to_string(i)))
          self.record_error(err);
      self.record_error(self.send_any("cook", "x"));
      self.request_any("translate", "q", 2s)
        .then([&self](const envelope& r) { self.record(r); },
              [&self](const caf::error& e) { self.record_error(e); });
      self.request_any("cook", "q", 2s)
        .then([&self](const envelope& r) { self.record(r); },
              [&self](const caf::error& e) { self.record_error(e); });
    }},
    out));
  auto xs = out->wait_for(3);
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].payload.rfind("error:unknown_nova", 0) == 0);
  std::vector<std::string> payloads{xs[1].payload, xs[2].payload};
  std::sort(payloads.begin(), payloads.end());
  CHECK(payloads[0] == "error:unknown_nova: no Nova with capability 'cook'");
  CHECK(payloads[1] == "re:q");
  REQUIRE(nova::testing::eventually(
    [&] { return a->size() + b->size() == 11; }));
  // Round robin: both got a share.
  CHECK(a->size() >= 5);
  CHECK(b->size() >= 5);
}
