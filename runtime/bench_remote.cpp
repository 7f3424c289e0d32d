#include "runtime/bench_remote.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <nats/nats.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/agent.hpp"
#include "messages/errc.hpp"
#include "runtime/bench_support.hpp"
#include "runtime/node.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using millis = std::chrono::milliseconds;

constexpr uint64_t window = 10'000;
/// Windows a sender may have in flight: the pipe never runs dry between
/// acks, and no receiver queue grows beyond this.
constexpr uint64_t credit = 4;
constexpr size_t payload_bytes = 128;
constexpr size_t threads = 2;
constexpr int rounds = 3;
constexpr double remote_goal = 0.5;
constexpr double p50_goal = 1.3;
constexpr double p99_goal_us = 1000.0;
constexpr double basp_goal = 3.0;

constexpr const char* sender_id = "bench-send";
constexpr const char* receiver_id = "bench-recv";
constexpr const char* requester_id = "bench-req";
constexpr const char* echo_id = "bench-echo";

/// How long a peer serves when nobody closes its standard input.
constexpr auto peer_lifetime = std::chrono::minutes(10);
/// Starting a peer or a server, and the go/ready handshake of one run.
constexpr auto setup_timeout = 10s;
/// What one measured run should take at most, roughly: runs shrink below
/// `messages` or `requests` to fit it, so a slow side does not stretch a
/// benchmark beyond about half a minute.
constexpr auto run_budget = 3s;
/// The request timeout of a single round trip.
constexpr auto request_timeout = 5s;

const std::string& payload() {
  static const std::string x(payload_bytes, 'x');
  return x;
}

bool is_data(std::string_view x) {
  return x.size() == payload_bytes && x[0] == 'x';
}

/// Parses "<verb> <a>[ <b>]" control messages.
bool parse_control(std::string_view x, std::string_view verb, uint64_t& a,
                   uint64_t* b = nullptr) {
  if (x.size() <= verb.size() + 1 || x.substr(0, verb.size()) != verb
      || x[verb.size()] != ' ')
    return false;
  std::istringstream in{std::string{x.substr(verb.size() + 1)}};
  if (!(in >> a))
    return false;
  return b == nullptr || static_cast<bool>(in >> *b);
}

/// A run ends within this time or counts as failed.
millis run_timeout(uint64_t messages) {
  return millis{20'000 + messages / 20};
}

void settle() {
  // Idle CAF workers poll for a while before they sleep; let the side that
  // just ran go quiet before the other one starts.
  std::this_thread::sleep_for(150ms);
}

// -- child processes ----------------------------------------------------------

std::string peer_binary(const remote_bench_options& opts) {
  if (!opts.self_exe.empty())
    return opts.self_exe;
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return {};
  return std::string(buf, static_cast<size_t>(n));
}

bool accepts_tcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  auto ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0;
  ::close(fd);
  return ok;
}

using child = child_process;


/// The processes of one benchmark: a nats-server and the peers. Stops the
/// peers first (stdin closed, then SIGKILL after a grace period), then the
/// server (SIGTERM, then SIGKILL).
class fleet {
public:
  explicit fleet(const remote_bench_options& opts)
    : peer_exe_(peer_binary(opts)) {
    if (peer_exe_.empty() || ::access(peer_exe_.c_str(), X_OK) != 0)
      throw std::runtime_error("the peer executable '" + peer_exe_
                               + "' is missing or not executable");
  }

  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;

  ~fleet() {
    for (auto& p : peers_)
      p->close_stdin();
    auto deadline = steady::now() + 3s;
    for (auto& p : peers_) {
      auto left = std::chrono::duration_cast<millis>(deadline - steady::now());
      if (!p->wait(std::max(left, millis{0})))
        p->kill_now();
    }
    peers_.clear();
    if (server_) {
      server_->signal(SIGTERM);
      if (!server_->wait(2s))
        server_->kill_now();
      server_.reset();
    }
  }

  /// Starts nats-server on a free loopback port; returns its URL.
  std::string start_nats(const remote_bench_options& opts) {
    auto path = require_server_binary(opts.nats_server, "NOVA_NATS_SERVER",
                                      "nats-server");
    auto port = free_loopback_port();
    server_ = std::make_unique<child>(
      std::vector<std::string>{path, "-a", "127.0.0.1", "-p",
                               std::to_string(port), "-m", "0"},
      false);
    auto deadline = steady::now() + setup_timeout;
    while (!accepts_tcp(port)) {
      if (auto code = server_->wait(0ms))
        throw std::runtime_error(fmt::format("nats-server exited with {}:\n{}",
                                             *code, server_->output()));
      if (steady::now() >= deadline)
        throw std::runtime_error("nats-server not ready after 10 s:\n"
                                 + server_->output());
      std::this_thread::sleep_for(10ms);
    }
    return "nats://127.0.0.1:" + std::to_string(port);
  }

  /// Starts `<peer_exe> bench peer <args...>` and waits for its `ready`
  /// line, which it returns.
  std::string start_peer(std::vector<std::string> args) {
    std::vector<std::string> argv{peer_exe_, "bench", "peer"};
    argv.insert(argv.end(), args.begin(), args.end());
    peers_.push_back(std::make_unique<child>(std::move(argv), true));
    try {
      return peers_.back()->wait_for_line("ready", setup_timeout);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("peer '" + args.front() + "': " + e.what());
    }
  }

  /// Empty while every process runs; else which one exited.
  std::string failure() {
    auto exited = [](child& c) {
      auto code = c.wait(0ms);
      return code ? fmt::format("'{}' exited with {}", c.name(), *code)
                  : std::string{};
    };
    if (server_)
      if (auto x = exited(*server_); !x.empty())
        return x;
    for (auto& p : peers_)
      if (auto x = exited(*p); !x.empty())
        return x;
    return {};
  }

  /// The last lines each process printed, for the report of a failed run.
  [[nodiscard]] std::string outputs() const {
    std::string out;
    auto add = [&out](const child& c) {
      auto all = c.output();
      if (all.size() > 1500)
        all = "..." + all.substr(all.size() - 1500);
      if (!all.empty())
        out += "\n--- " + c.name() + " ---\n" + all;
    };
    if (server_)
      add(*server_);
    for (auto& p : peers_)
      add(*p);
    return out;
  }

private:
  std::string peer_exe_;
  std::unique_ptr<child> server_;
  std::vector<std::unique_ptr<child>> peers_;
};

/// A name no other run on the same server uses.
std::string unique_name(const char* what) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}_{}_{}", what, ::getpid(), ++counter);
}

// -- the peers' waiting -------------------------------------------------------


// -- runs ---------------------------------------------------------------------

/// One run, shared by the driver thread and the side that measures: the
/// measuring side reports when it started (the handshake succeeded) and
/// when it finished (elapsed time and, for latency runs, the samples).
class run_slot {
public:
  void reset() {
    std::lock_guard<std::mutex> guard{mtx_};
    started_ = false;
    done_ = false;
    failure_.clear();
    elapsed_ = {};
    samples_.clear();
  }

  void start() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      started_ = true;
    }
    cv_.notify_all();
  }

  void finish(steady::duration elapsed, std::vector<int64_t> samples = {}) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      elapsed_ = elapsed;
      samples_ = std::move(samples);
      done_ = true;
    }
    cv_.notify_all();
  }

  void fail(std::string why) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (done_)
        return;
      failure_ = std::move(why);
      done_ = true;
    }
    cv_.notify_all();
  }

  bool wait_started(millis timeout) {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_for(guard, timeout, [this] { return started_ || done_; });
    return started_ || done_;
  }

  /// True if the run finished in time without a failure.
  bool wait_done(millis timeout) {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_for(guard, timeout, [this] { return done_; });
    return done_ && failure_.empty();
  }

  [[nodiscard]] steady::duration elapsed() {
    std::lock_guard<std::mutex> guard{mtx_};
    return elapsed_;
  }

  [[nodiscard]] std::vector<int64_t> take_samples() {
    std::lock_guard<std::mutex> guard{mtx_};
    return std::move(samples_);
  }

  [[nodiscard]] std::string failure() {
    std::lock_guard<std::mutex> guard{mtx_};
    return failure_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool started_ = false;
  bool done_ = false;
  std::string failure_;
  steady::duration elapsed_{};
  std::vector<int64_t> samples_;
};

/// Repeats `go` until the measuring side reports that it started (its peer
/// answered the handshake), then waits for the end. Returns false with a
/// reason in `why` when either did not happen in time.
bool drive(fleet& procs, run_slot& slot, uint64_t count,
           const std::function<void()>& go, millis timeout, std::string& why) {
  slot.reset();
  auto deadline = steady::now() + setup_timeout;
  for (;;) {
    go();
    if (slot.wait_started(300ms))
      break;
    why = procs.failure();
    if (why.empty() && steady::now() >= deadline)
      why = "the peer did not answer the handshake within 10 s";
    if (!why.empty())
      return false;
  }
  auto end = steady::now() + timeout;
  while (!slot.wait_done(250ms)) {
    why = slot.failure();
    if (why.empty())
      why = procs.failure();
    if (why.empty() && steady::now() >= end)
      why = fmt::format("a run of {} did not finish within {} ms", count,
                        timeout.count());
    if (!why.empty())
      return false;
  }
  return true;
}

double rate(uint64_t count, steady::duration elapsed) {
  auto secs = std::chrono::duration<double>(elapsed).count();
  return secs > 0 ? static_cast<double>(count) / secs : 0.0;
}

// -- raw nats.c ---------------------------------------------------------------

struct nc_deleter {
  void operator()(natsConnection* p) const noexcept {
    natsConnection_Destroy(p);
  }
};

struct opts_deleter {
  void operator()(natsOptions* p) const noexcept {
    natsOptions_Destroy(p);
  }
};

using nc_ptr = std::unique_ptr<natsConnection, nc_deleter>;
using nats_opts_ptr = std::unique_ptr<natsOptions, opts_deleter>;

std::runtime_error nats_failure(const std::string& what, natsStatus s) {
  return std::runtime_error(what + ": " + natsStatus_GetText(s));
}

/// A plain nats.c connection; `send_asap` writes every publish at once
/// instead of buffering until the flusher thread runs.
nc_ptr raw_connect(const std::string& url, bool send_asap) {
  natsOptions* raw_opts = nullptr;
  if (auto s = natsOptions_Create(&raw_opts); s != NATS_OK)
    throw nats_failure("natsOptions_Create", s);
  nats_opts_ptr opts{raw_opts};
  natsOptions_SetURL(opts.get(), url.c_str());
  natsOptions_SetSendAsap(opts.get(), send_asap);
  natsOptions_SetMaxPendingMsgs(opts.get(), 1'000'000);
  natsConnection* raw = nullptr;
  if (auto s = natsConnection_Connect(&raw, opts.get()); s != NATS_OK)
    throw nats_failure("cannot connect to " + url, s);
  return nc_ptr{raw};
}

/// A nats.c subscription calling `f(natsMsg*)` on its delivery thread.
/// The destructor unsubscribes and waits (at most 5 s) for the last call.
template <class F>
class raw_subscription {
public:
  raw_subscription(natsConnection* nc, const std::string& subject, F f)
    : fn_(std::move(f)) {
    if (auto s = natsConnection_Subscribe(&sub_, nc, subject.c_str(),
                                          &raw_subscription::on_msg, this);
        s != NATS_OK)
      throw nats_failure("cannot subscribe to " + subject, s);
    natsSubscription_SetOnCompleteCB(sub_, &raw_subscription::on_complete,
                                     this);
    natsSubscription_SetPendingLimits(sub_, 1'000'000, 1 << 30);
  }

  raw_subscription(const raw_subscription&) = delete;
  raw_subscription& operator=(const raw_subscription&) = delete;

  ~raw_subscription() {
    natsSubscription_Unsubscribe(sub_);
    {
      std::unique_lock<std::mutex> guard{mtx_};
      cv_.wait_for(guard, 5s, [this] { return completed_; });
    }
    natsSubscription_Destroy(sub_);
  }

private:
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg,
                     void* closure) {
    static_cast<raw_subscription*>(closure)->fn_(msg);
    natsMsg_Destroy(msg);
  }

  static void on_complete(void* closure) {
    auto* self = static_cast<raw_subscription*>(closure);
    {
      std::lock_guard<std::mutex> guard{self->mtx_};
      self->completed_ = true;
    }
    self->cv_.notify_all();
  }

  F fn_;
  natsSubscription* sub_ = nullptr;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool completed_ = false;
};

template <class F>
std::unique_ptr<raw_subscription<F>>
raw_subscribe(natsConnection* nc, const std::string& subject, F f) {
  return std::make_unique<raw_subscription<F>>(nc, subject, std::move(f));
}

std::string_view data_of(natsMsg* msg) {
  auto len = natsMsg_GetDataLength(msg);
  return {natsMsg_GetData(msg), static_cast<size_t>(std::max(len, 0))};
}

void raw_publish(natsConnection* nc, const std::string& subject,
                 const std::string& text) {
  natsConnection_Publish(nc, subject.c_str(), text.data(),
                         static_cast<int>(text.size()));
}

/// Sends `count` payloads to a `nats-sink` peer: "run <id> <count>" until
/// it answers "ready <id>", then the data with at most `credit` windows in
/// flight; ends at its "done <id>".
class raw_sender {
public:
  raw_sender(const std::string& url, std::string subject)
    : data_(subject + ".data"),
      conn_(raw_connect(url, false)),
      acks_(std::make_unique<ack_subscription>(
        conn_.get(), subject + ".ack",
        [this](natsMsg* m) { on_ack(data_of(m)); })) {
    if (auto s = natsConnection_FlushTimeout(conn_.get(), 2000); s != NATS_OK)
      throw nats_failure("flush", s);
  }

  /// Msgs/s, or 0 when the run failed (`why` says why).
  double run(fleet& procs, uint64_t id, uint64_t count, millis timeout,
             std::string& why) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      run_ = id;
      ready_ = done_ = false;
      acked_ = 0;
    }
    auto deadline = steady::now() + setup_timeout;
    auto control = fmt::format("run {} {}", id, count);
    for (;;) {
      raw_publish(conn_.get(), data_, control);
      natsConnection_FlushTimeout(conn_.get(), 1000);
      std::unique_lock<std::mutex> guard{mtx_};
      if (cv_.wait_for(guard, 300ms, [this] { return ready_; }))
        break;
      why = procs.failure();
      if (why.empty() && steady::now() >= deadline)
        why = "the nats-sink peer did not answer the handshake within 10 s";
      if (!why.empty())
        return 0;
    }
    auto* nc = conn_.get();
    const auto& p = payload();
    auto t0 = steady::now();
    auto end = t0 + timeout;
    uint64_t sent = 0;
    // Waits for `pred` in slices, so that a dead peer or server ends the run
    // early.
    auto await = [&](auto pred) {
      for (;;) {
        {
          std::unique_lock<std::mutex> guard{mtx_};
          if (cv_.wait_for(guard, 250ms, pred))
            return true;
        }
        why = procs.failure();
        if (why.empty() && steady::now() >= end)
          why = fmt::format("raw run of {} stalled after {} messages", count,
                            sent);
        if (!why.empty())
          return false;
      }
    };
    for (;;) {
      if (sent == count) {
        if (!await([this] { return done_; }))
          return 0;
        break;
      }
      if (!await([&] { return acked_ + credit * window > sent; }))
        return 0;
      uint64_t limit = 0;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        limit = std::min(count, acked_ + credit * window);
      }
      for (; sent < limit; ++sent)
        if (auto s = natsConnection_Publish(nc, data_.c_str(), p.data(),
                                            static_cast<int>(p.size()));
            s != NATS_OK) {
          why = std::string{"nats.c publish: "} + natsStatus_GetText(s);
          return 0;
        }
    }
    return rate(count, steady::now() - t0);
  }

private:
  void on_ack(std::string_view x) {
    uint64_t n = 0;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (parse_control(x, "ack", n))
        acked_ = std::max(acked_, n);
      else if (parse_control(x, "ready", n) && n == run_)
        ready_ = true;
      else if (parse_control(x, "done", n) && n == run_)
        done_ = true;
      else
        return;
    }
    cv_.notify_all();
  }

  std::string data_;
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t run_ = 0;
  bool ready_ = false;
  bool done_ = false;
  uint64_t acked_ = 0;
  nc_ptr conn_;
  using ack_subscription = raw_subscription<std::function<void(natsMsg*)>>;
  std::unique_ptr<ack_subscription> acks_;
};

// -- Nova agents --------------------------------------------------------------

/// Sends the messages of a run to `bench-recv`: "run <id> <count>", then,
/// once answered "ready <id>", the data with at most `credit` windows in
/// flight. A "go <id> <count>" from the driver starts a run.
class bench_sender : public agent {
public:
  bench_sender(caf::actor_config& cfg, agent_init init, run_slot* slot)
    : agent(cfg, std::move(init)), slot_(slot) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    uint64_t id = 0;
    uint64_t n = 0;
    if (parse_control(msg.payload, "ack", n)) {
      if (started_) {
        acked_ = std::max(acked_, n);
        pump();
      }
    } else if (parse_control(msg.payload, "go", id, &n)) {
      if (id == run_ && started_)
        return;
      run_ = id;
      target_ = n;
      started_ = false;
      // The peer may have missed this Nova's presence (it was sent before
      // the peer subscribed): tell it again, so that it can answer.
      set_presence(presence_status::online);
      static_cast<void>(send(to_, fmt::format("run {} {}", id, n)));
    } else if (parse_control(msg.payload, "ready", id)) {
      if (id != run_ || started_)
        return;
      started_ = true;
      sent_ = 0;
      acked_ = 0;
      slot_->start();
      t0_ = steady::now();
      pump();
    } else if (parse_control(msg.payload, "done", id)) {
      if (id == run_ && started_) {
        started_ = false;
        slot_->finish(steady::now() - t0_);
      }
    }
  }

private:
  void pump() {
    auto limit = std::min(target_, acked_ + credit * window);
    for (; sent_ < limit; ++sent_)
      if (auto err = send(to_, payload())) {
        started_ = false;
        slot_->fail("Nova send failed: " + describe(err));
        return;
      }
  }

  run_slot* slot_;
  const std::string to_ = receiver_id;
  uint64_t run_ = 0;
  uint64_t target_ = 0;
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  bool started_ = false;
  steady::time_point t0_;
};

/// Counts the data of a run; acks every window and the last message.
class bench_receiver : public agent {
public:
  using agent::agent;

protected:
  void on_message(const envelope& msg) override {
    if (is_data(msg.payload)) {
      caf::error err;
      if (++count_ == target_)
        err = send(msg.from, fmt::format("done {}", run_));
      else if (count_ % window == 0)
        err = send(msg.from, fmt::format("ack {}", count_));
      if (err)
        spdlog::warn("bench-recv: cannot ack to '{}': {}", msg.from,
                     describe(err));
      return;
    }
    uint64_t id = 0;
    uint64_t n = 0;
    if (parse_control(msg.payload, "run", id, &n)) {
      if (id != run_) {
        run_ = id;
        target_ = n;
        count_ = 0;
      }
      // Fails while this node has not heard of the sender yet; the sender
      // repeats "run" until an answer arrives.
      static_cast<void>(send(msg.from, fmt::format("ready {}", id)));
    }
  }

private:
  uint64_t run_ = 0;
  uint64_t target_ = 0;
  uint64_t count_ = 0;
};

class bench_echo : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_request(const envelope& req) override {
    return req.payload;
  }
};

/// Sends requests to `bench-echo` one at a time and records each round
/// trip; "go <id> <count>" starts a run.
class bench_requester : public agent {
public:
  bench_requester(caf::actor_config& cfg, agent_init init, run_slot* slot)
    : agent(cfg, std::move(init)), slot_(slot) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    uint64_t id = 0;
    uint64_t n = 0;
    if (!parse_control(msg.payload, "go", id, &n) || id == run_)
      return;
    run_ = id;
    target_ = n;
    samples_.clear();
    samples_.reserve(n);
    slot_->start();
    t_start_ = steady::now();
    next();
  }

private:
  void next() {
    if (samples_.size() == target_) {
      slot_->finish(steady::now() - t_start_, std::move(samples_));
      samples_ = {};
      return;
    }
    auto t0 = steady::now();
    request(to_, payload(), request_timeout)
      .then(
        [this, t0](const envelope&) {
          samples_.push_back((steady::now() - t0).count());
          next();
        },
        [this](const caf::error& err) {
          slot_->fail("Nova request failed: " + describe(err));
        });
  }

  run_slot* slot_;
  const std::string to_ = echo_id;
  uint64_t run_ = 0;
  uint64_t target_ = 0;
  std::vector<int64_t> samples_;
  steady::time_point t_start_;
};

/// `quiet` keeps warnings off standard output, where `--json` promises one
/// JSON object and nothing else.
config bench_node_config(std::string node_id, const std::string& url,
                         const std::string& prefix, bool quiet,
                         bool send_asap) {
  config cfg;
  // Like for like: throughput runs buffer publishes as the raw baseline does,
  // latency runs write each at once as the raw baseline does.
  cfg.nats_send_asap = send_asap;
  cfg.node_id = std::move(node_id);
  cfg.bus = bus_kind::nats;
  cfg.nats_url = url;
  cfg.prefix = prefix;
  cfg.threads = threads;
  cfg.log_level = quiet ? "error" : "warn";
  // The heartbeat stays at its default (30 s): a peer forgets a Nova whose
  // heartbeat is half an interval late, and a Nova's heartbeat waits behind
  // its mailbox, which holds up to `credit` windows here.
  cfg.drain_timeout = 2s;
  return cfg;
}

void wait_until_known(node& n, const std::string& id) {
  auto deadline = steady::now() + setup_timeout;
  while (!(n.context().bus && n.context().bus->knows(id))) {
    if (steady::now() >= deadline)
      throw std::runtime_error("the peer's Nova '" + id
                               + "' did not show up within 10 s");
    std::this_thread::sleep_for(10ms);
  }
}

/// Starts this process's bench node with its Nova `local_id`, then the peer
/// process `peer_role` on the same prefix, and waits until the peer's Nova
/// `peer_id` is known. This node comes first: it hears the presence the
/// peer's Nova announces when it comes up.
template <class Agent>
std::unique_ptr<node> start_pair(fleet& procs, const std::string& url,
                                 bool quiet, bool send_asap,
                                 const std::string& local_id, run_slot* slot,
                                 const char* peer_role,
                                 const std::string& peer_id) {
  auto prefix = unique_name("novabench");
  auto n = std::make_unique<node>(bench_node_config("bench-local", url, prefix,
                                                    quiet, send_asap));
  if (!n->spawn<Agent>(local_id, {}, slot))
    throw std::runtime_error("cannot spawn the Nova '" + local_id + "'");
  procs.start_peer({peer_role, url, prefix});
  wait_until_known(*n, peer_id);
  return n;
}

/// This process's Nova side of a throughput benchmark: a node with
/// `bench-send`, talking to a `nova-sink` peer.
class nova_throughput {
public:
  nova_throughput(fleet& procs, const std::string& url, bool quiet)
    : procs_(procs) {
    node_ = start_pair<bench_sender>(procs, url, quiet, false, sender_id,
                                     &slot_, "nova-sink", receiver_id);
  }

  ~nova_throughput() {
    node_->shutdown();
  }

  double run(uint64_t id, uint64_t count, std::string& why) {
    auto go = [&] {
      static_cast<void>(node_->send(sender_id,
                                    fmt::format("go {} {}", id, count)));
    };
    if (!drive(procs_, slot_, count, go, run_timeout(count), why))
      return 0;
    return rate(count, slot_.elapsed());
  }

private:
  fleet& procs_;
  run_slot slot_;
  std::unique_ptr<node> node_;
};

// -- CAF remoting (BASP) ------------------------------------------------------

using bgo_atom = caf::atom_constant<caf::atom("bgo")>;
using brun_atom = caf::atom_constant<caf::atom("brun")>;
using bready_atom = caf::atom_constant<caf::atom("bready")>;
using back_atom = caf::atom_constant<caf::atom("back")>;
using bdone_atom = caf::atom_constant<caf::atom("bdone")>;

struct basp_sender_state {
  caf::actor receiver;
  uint64_t run = 0;
  uint64_t target = 0;
  uint64_t sent = 0;
  uint64_t acked = 0;
  bool started = false;
  steady::time_point t0;
};

caf::behavior basp_sender(caf::stateful_actor<basp_sender_state>* self,
                          run_slot* slot) {
  auto pump = [self] {
    auto& st = self->state;
    auto limit = std::min(st.target, st.acked + credit * window);
    for (; st.sent < limit; ++st.sent)
      self->send(st.receiver, payload());
  };
  return {
    [=](bgo_atom, uint64_t id, uint64_t n, caf::actor& receiver) {
      auto& st = self->state;
      if (id == st.run && st.started)
        return;
      st.receiver = std::move(receiver);
      st.run = id;
      st.target = n;
      st.started = false;
      self->send(st.receiver, brun_atom::value, id, n);
    },
    [=](bready_atom, uint64_t id) {
      auto& st = self->state;
      if (id != st.run || st.started)
        return;
      st.started = true;
      st.sent = 0;
      st.acked = 0;
      slot->start();
      st.t0 = steady::now();
      pump();
    },
    [=](back_atom, uint64_t n) {
      auto& st = self->state;
      if (!st.started)
        return;
      st.acked = std::max(st.acked, n);
      pump();
    },
    [=](bdone_atom, uint64_t id) {
      auto& st = self->state;
      if (id == st.run && st.started) {
        st.started = false;
        slot->finish(steady::now() - st.t0);
      }
    },
  };
}

struct basp_receiver_state {
  uint64_t run = 0;
  uint64_t target = 0;
  uint64_t count = 0;
};

caf::behavior basp_receiver(caf::stateful_actor<basp_receiver_state>* self) {
  return {
    [=](const std::string&) {
      auto& st = self->state;
      auto to = caf::actor_cast<caf::actor>(self->current_sender());
      if (++st.count == st.target)
        self->send(to, bdone_atom::value, st.run);
      else if (st.count % window == 0)
        self->send(to, back_atom::value, st.count);
    },
    [=](brun_atom, uint64_t id, uint64_t n) {
      auto& st = self->state;
      if (id != st.run) {
        st.run = id;
        st.target = n;
        st.count = 0;
      }
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 bready_atom::value, id);
    },
  };
}

caf::actor_system_config& basp_config(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", threads);
  return cfg;
}

/// This process's side of the BASP runs: a CAF system with the middleman
/// and a sender talking to the `basp-sink` peer's receiver.
class basp_throughput {
public:
  explicit basp_throughput(fleet& procs)
    : procs_(procs), system_(basp_config(cfg_)) {
    auto line = procs.start_peer({"basp-sink"});
    auto pos = line.find("port=");
    if (pos == std::string::npos)
      throw std::runtime_error("basp-sink printed no port: " + line);
    auto port = static_cast<uint16_t>(std::stoul(line.substr(pos + 5)));
    auto r = system_.middleman().remote_actor("127.0.0.1", port);
    if (!r)
      throw std::runtime_error("remote_actor(127.0.0.1, "
                               + std::to_string(port)
                               + "): " + system_.render(r.error()));
    receiver_ = std::move(*r);
    sender_ = system_.spawn(basp_sender, &slot_);
  }

  ~basp_throughput() {
    caf::anon_send_exit(sender_, caf::exit_reason::user_shutdown);
    sender_ = nullptr;
    receiver_ = nullptr;
  }

  double run(uint64_t id, uint64_t count, std::string& why) {
    auto go = [&] {
      caf::anon_send(sender_, bgo_atom::value, id, count, receiver_);
    };
    if (!drive(procs_, slot_, count, go, run_timeout(count), why))
      return 0;
    return rate(count, slot_.elapsed());
  }

private:
  fleet& procs_;
  run_slot slot_;
  caf::actor_system_config cfg_;
  caf::actor_system system_;
  caf::actor receiver_;
  caf::actor sender_;
};

// -- driving and reporting ----------------------------------------------------

/// One side of a comparison: runs `count` messages or requests with a run
/// id; returns its figure, or 0 with a reason.
using side_fn = std::function<double(uint64_t id, uint64_t count,
                                     std::string& why)>;

/// What one throughput comparison measured.
struct throughput_runs {
  std::vector<double> nova;
  std::vector<double> baseline;
  /// Messages per measured run of each side.
  uint64_t nova_count = 0;
  uint64_t baseline_count = 0;
};

/// Up to `count`, as many as `per_s` manage in one run's time budget, at
/// least `floor` (or `count` if smaller).
uint64_t fit(uint64_t count, double per_s, uint64_t floor) {
  auto budget = std::chrono::duration<double>(run_budget).count();
  auto n = static_cast<uint64_t>(per_s * budget);
  return std::clamp(n, std::min(count, floor), count);
}

/// Warms both sides up, then runs each `rounds` times, alternating, with
/// as many messages as fit the run budget at the warm-up rate (at most
/// `count`). Stops at the first failed run; `out` holds what completed.
bool alternate(const side_fn& nova, const side_fn& baseline, uint64_t count,
               throughput_runs& out, std::string& why) {
  auto warmup = std::min(count, std::max(window, count / 10));
  uint64_t id = 0;
  auto warm_nova = nova(++id, warmup, why);
  if (warm_nova <= 0)
    return false;
  settle();
  auto warm_base = baseline(++id, warmup, why);
  if (warm_base <= 0)
    return false;
  constexpr uint64_t floor = credit * window;
  out.nova_count = fit(count, warm_nova, floor);
  out.baseline_count = fit(count, warm_base, floor);
  for (int i = 0; i < rounds; ++i) {
    settle();
    auto x = nova(++id, out.nova_count, why);
    if (x <= 0)
      return false;
    out.nova.push_back(x);
    settle();
    auto y = baseline(++id, out.baseline_count, why);
    if (y <= 0)
      return false;
    out.baseline.push_back(y);
  }
  return true;
}

double best(const std::vector<double>& xs) {
  return xs.empty() ? 0.0 : *std::max_element(xs.begin(), xs.end());
}

void print_error(const remote_bench_options& opts, std::ostream& out,
                 const std::string& bench, const std::string& why) {
  if (opts.json)
    out << nlohmann::json{{"error", bench + ": " + why}}.dump() << '\n';
  else
    out << bench << ": " << why << '\n';
}

/// Runs `body`, turning setup exceptions into an error report and exit 1.
int guarded_bench(const remote_bench_options& opts, std::ostream& out,
                  const std::string& bench, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    print_error(opts, out, bench, e.what());
    return 1;
  }
}

int report_throughput(const remote_bench_options& opts, std::ostream& out,
                      const std::string& title, const std::string& baseline,
                      double goal, const throughput_runs& runs, bool ok,
                      const std::string& why) {
  auto nova_rate = best(runs.nova);
  auto base_rate = best(runs.baseline);
  auto ratio = base_rate > 0 ? nova_rate / base_rate : 0.0;
  if (opts.json) {
    nlohmann::json j{{"nova_msgs_per_s", nova_rate},
                     {"baseline_msgs_per_s", base_rate},
                     {"ratio", ratio},
                     {"goal", goal},
                     {"messages", opts.messages},
                     {"nova_messages", runs.nova_count},
                     {"baseline_messages", runs.baseline_count},
                     {"payload_bytes", payload_bytes},
                     {"window", window}};
    if (!ok)
      j["error"] = why;
    out << j.dump() << '\n';
    return ok ? 0 : 1;
  }
  out << fmt::format("{}: up to {} messages of {} bytes per run (as many as "
                     "fit {} s at the warm-up rate), windows of {}, at most "
                     "{} in flight, best of {}\n",
                     title, opts.messages, payload_bytes,
                     std::chrono::duration_cast<std::chrono::seconds>(
                       run_budget)
                       .count(),
                     window, credit * window, rounds);
  for (size_t i = 0; i < runs.nova.size(); ++i)
    out << fmt::format("  run {}: nova {:>12.0f} msgs/s   baseline {:>12.0f} "
                       "msgs/s\n",
                       i + 1, runs.nova[i],
                       i < runs.baseline.size() ? runs.baseline[i] : 0.0);
  out << fmt::format("nova:     {:>12.0f} msgs/s ({} messages per run)\n",
                     nova_rate, runs.nova_count);
  out << fmt::format("baseline: {:>12.0f} msgs/s ({} messages per run; {})\n",
                     base_rate, runs.baseline_count, baseline);
  out << fmt::format("ratio:    {:.3f} (nova / baseline); goal >= {:.1f}: {}\n",
                     ratio, goal, ratio >= goal ? "met" : "missed");
  if (!ok)
    out << "a run did not complete (" << why
        << "); the figures are incomplete\n";
  return ok ? 0 : 1;
}

// -- latency ------------------------------------------------------------------

struct latency {
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double requests_per_s = 0;
};

double percentile_us(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty())
    return 0;
  auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<size_t>(std::ceil(q * n));
  auto idx = std::clamp<size_t>(rank, 1, sorted.size()) - 1;
  return static_cast<double>(sorted[idx]) / 1000.0;
}

latency summarize(std::vector<int64_t> ns, steady::duration elapsed) {
  std::sort(ns.begin(), ns.end());
  latency out;
  out.p50_us = percentile_us(ns, 0.50);
  out.p99_us = percentile_us(ns, 0.99);
  out.p999_us = percentile_us(ns, 0.999);
  out.requests_per_s = rate(ns.size(), elapsed);
  return out;
}

/// Raw nats.c request-reply against a `nats-echo` peer; send-asap on.
class raw_requester {
public:
  raw_requester(const std::string& url, std::string subject)
    : subject_(std::move(subject)), conn_(raw_connect(url, true)) {
    // nop
  }

  std::optional<latency> run(uint64_t count, std::string& why) {
    std::vector<int64_t> ns;
    ns.reserve(count);
    const auto& p = payload();
    auto timeout_ms = std::chrono::duration_cast<millis>(request_timeout)
                        .count();
    auto start = steady::now();
    for (uint64_t i = 0; i < count; ++i) {
      natsMsg* reply = nullptr;
      auto t0 = steady::now();
      auto s = natsConnection_Request(&reply, conn_.get(), subject_.c_str(),
                                      p.data(), static_cast<int>(p.size()),
                                      timeout_ms);
      auto t1 = steady::now();
      natsMsg_Destroy(reply);
      if (s != NATS_OK) {
        why = std::string{"nats.c request: "} + natsStatus_GetText(s);
        return std::nullopt;
      }
      ns.push_back((t1 - t0).count());
    }
    return summarize(std::move(ns), steady::now() - start);
  }

private:
  std::string subject_;
  nc_ptr conn_;
};

/// This process's Nova side of the latency benchmark.
class nova_requests {
public:
  nova_requests(fleet& procs, const std::string& url, bool quiet)
    : procs_(procs) {
    node_ = start_pair<bench_requester>(procs, url, quiet, true,
                                        requester_id, &slot_, "nova-echo",
                                        echo_id);
  }

  ~nova_requests() {
    node_->shutdown();
  }

  std::optional<latency> run(uint64_t id, uint64_t count, std::string& why) {
    auto go = [&] {
      static_cast<void>(node_->send(requester_id,
                                    fmt::format("go {} {}", id, count)));
    };
    if (!drive(procs_, slot_, count, go, millis{20'000 + count * 5}, why))
      return std::nullopt;
    return summarize(slot_.take_samples(), slot_.elapsed());
  }

private:
  fleet& procs_;
  run_slot slot_;
  std::unique_ptr<node> node_;
};

// -- peers --------------------------------------------------------------------

int peer_nova(const std::vector<std::string>& args, std::ostream& out,
              bool echo) {
  if (args.size() != 3) {
    out << "usage: bench peer " << args[0] << " <nats-url> <prefix>\n";
    return 2;
  }
  try {
    node n{bench_node_config("bench-peer", args[1], args[2], false, echo)};
    auto hdl = echo ? n.spawn<bench_echo>(echo_id)
                    : n.spawn<bench_receiver>(receiver_id);
    if (!hdl) {
      out << "cannot spawn: " << describe(hdl.error()) << '\n';
      return 2;
    }
    out << "ready " << args[0] << std::endl;
    serve_until_stdin_closes(peer_lifetime);
    n.shutdown();
    return 0;
  } catch (const std::exception& e) {
    out << args[0] << ": " << e.what() << '\n';
    return 2;
  }
}

/// Counts on `<subject>.data`, answers on `<subject>.ack` as `nova-sink`
/// does through Novas.
int peer_nats_sink(const std::vector<std::string>& args, std::ostream& out) {
  if (args.size() != 3) {
    out << "usage: bench peer nats-sink <nats-url> <subject>\n";
    return 2;
  }
  try {
    auto conn = raw_connect(args[1], true);
    auto* nc = conn.get();
    auto ack = args[2] + ".ack";
    uint64_t run = 0;
    uint64_t target = 0;
    uint64_t count = 0;
    // Anything but "run" counts, so that any body may be measured.
    auto sub = raw_subscribe(nc, args[2] + ".data", [&](natsMsg* m) {
      auto x = data_of(m);
      uint64_t id = 0;
      uint64_t n = 0;
      if (parse_control(x, "run", id, &n)) {
        if (id != run) {
          run = id;
          target = n;
          count = 0;
        }
        raw_publish(nc, ack, fmt::format("ready {}", id));
      } else if (++count == target) {
        raw_publish(nc, ack, fmt::format("done {}", run));
      } else if (count % window == 0) {
        raw_publish(nc, ack, fmt::format("ack {}", count));
      }
    });
    if (auto s = natsConnection_FlushTimeout(nc, 2000); s != NATS_OK)
      throw nats_failure("flush", s);
    out << "ready nats-sink" << std::endl;
    serve_until_stdin_closes(peer_lifetime);
    sub.reset();
    return 0;
  } catch (const std::exception& e) {
    out << "nats-sink: " << e.what() << '\n';
    return 2;
  }
}

int peer_nats_echo(const std::vector<std::string>& args, std::ostream& out) {
  if (args.size() != 3) {
    out << "usage: bench peer nats-echo <nats-url> <subject>\n";
    return 2;
  }
  try {
    auto conn = raw_connect(args[1], true);
    auto* nc = conn.get();
    auto sub = raw_subscribe(nc, args[2], [nc](natsMsg* m) {
      if (auto reply = natsMsg_GetReply(m))
        natsConnection_Publish(nc, reply, natsMsg_GetData(m),
                               natsMsg_GetDataLength(m));
    });
    if (auto s = natsConnection_FlushTimeout(nc, 2000); s != NATS_OK)
      throw nats_failure("flush", s);
    out << "ready nats-echo" << std::endl;
    serve_until_stdin_closes(peer_lifetime);
    sub.reset();
    return 0;
  } catch (const std::exception& e) {
    out << "nats-echo: " << e.what() << '\n';
    return 2;
  }
}

int peer_basp_sink(std::ostream& out) {
  caf::actor_system_config cfg;
  caf::actor_system system{basp_config(cfg)};
  auto receiver = system.spawn(basp_receiver);
  auto port = system.middleman().publish(receiver, 0, "127.0.0.1");
  if (!port) {
    out << "basp-sink: cannot publish: " << system.render(port.error())
        << '\n';
    caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
    return 2;
  }
  out << "ready basp-sink port=" << *port << std::endl;
  serve_until_stdin_closes(peer_lifetime);
  caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace

// -- public -------------------------------------------------------------------

int run_bench_remote(const remote_bench_options& opts, std::ostream& out) {
  return guarded_bench(opts, out, "bench remote", [&] {
    auto count = std::max<uint64_t>(opts.messages, 1);
    fleet procs{opts};
    auto url = procs.start_nats(opts);
    auto subject = unique_name("rawbench");
    procs.start_peer({"nats-sink", url, subject});
    raw_sender raw{url, subject};
    nova_throughput nova{procs, url, opts.json};
    throughput_runs runs;
    std::string why;
    auto ok = alternate(
      [&](uint64_t id, uint64_t n, std::string& w) {
        return nova.run(id, n, w);
      },
      [&](uint64_t id, uint64_t n, std::string& w) {
        return raw.run(procs, id, n, run_timeout(n), w);
      },
      count, runs, why);
    if (!ok)
      why += procs.outputs();
    return report_throughput(opts, out, "remote direct send (two processes, "
                                        "one nats-server)",
                             "raw nats.c publish/subscribe", remote_goal,
                             runs, ok, why);
  });
}

int run_bench_basp(const remote_bench_options& opts, std::ostream& out) {
  return guarded_bench(opts, out, "bench basp", [&] {
    auto count = std::max<uint64_t>(opts.messages, 1);
    fleet procs{opts};
    auto url = procs.start_nats(opts);
    basp_throughput basp{procs};
    nova_throughput nova{procs, url, opts.json};
    throughput_runs runs;
    std::string why;
    auto ok = alternate(
      [&](uint64_t id, uint64_t n, std::string& w) {
        return nova.run(id, n, w);
      },
      [&](uint64_t id, uint64_t n, std::string& w) {
        return basp.run(id, n, w);
      },
      count, runs, why);
    if (!ok)
      why += procs.outputs();
    return report_throughput(opts, out, "remote direct send, Nova over NATS "
                                        "vs CAF remote actors",
                             "CAF middleman/BASP over TCP", basp_goal,
                             runs, ok, why);
  });
}

int run_bench_request(const remote_bench_options& opts, std::ostream& out) {
  return guarded_bench(opts, out, "bench request", [&] {
    auto count = std::max<uint64_t>(opts.requests, 1);
    auto warmup = std::min(count, std::max<uint64_t>(200, count / 10));
    fleet procs{opts};
    auto url = procs.start_nats(opts);
    auto subject = unique_name("rawbench") + ".echo";
    procs.start_peer({"nats-echo", url, subject});
    raw_requester raw{url, subject};
    nova_requests nova{procs, url, opts.json};
    std::vector<latency> nova_runs;
    std::vector<latency> raw_runs;
    std::string why;
    uint64_t id = 0;
    uint64_t nova_count = 0;
    uint64_t raw_count = 0;
    auto ok = [&] {
      auto warm_nova = nova.run(++id, warmup, why);
      if (!warm_nova)
        return false;
      settle();
      auto warm_raw = raw.run(warmup, why);
      if (!warm_raw)
        return false;
      nova_count = fit(count, warm_nova->requests_per_s, 1000);
      raw_count = fit(count, warm_raw->requests_per_s, 1000);
      for (int i = 0; i < rounds; ++i) {
        settle();
        auto x = nova.run(++id, nova_count, why);
        if (!x)
          return false;
        nova_runs.push_back(*x);
        settle();
        auto y = raw.run(raw_count, why);
        if (!y)
          return false;
        raw_runs.push_back(*y);
      }
      return true;
    }();
    if (!ok)
      why += procs.outputs();
    auto pick = [](const std::vector<latency>& xs) {
      if (xs.empty())
        return latency{};
      return *std::min_element(xs.begin(), xs.end(),
                               [](const latency& a, const latency& b) {
                                 return a.p50_us < b.p50_us;
                               });
    };
    auto nv = pick(nova_runs);
    auto rw = pick(raw_runs);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    auto p50_ratio = ratio(nv.p50_us, rw.p50_us);
    auto p99_ratio = ratio(nv.p99_us, rw.p99_us);
    if (opts.json) {
      nlohmann::json j{{"nova_p50_us", nv.p50_us},
                       {"nova_p99_us", nv.p99_us},
                       {"nova_p999_us", nv.p999_us},
                       {"nova_requests_per_s", nv.requests_per_s},
                       {"baseline_p50_us", rw.p50_us},
                       {"baseline_p99_us", rw.p99_us},
                       {"baseline_p999_us", rw.p999_us},
                       {"baseline_requests_per_s", rw.requests_per_s},
                       {"p50_ratio", p50_ratio},
                       {"p99_ratio", p99_ratio},
                       {"p999_ratio", ratio(nv.p999_us, rw.p999_us)},
                       {"p50_ratio_goal", p50_goal},
                       {"p99_goal_us", p99_goal_us},
                       {"requests", count},
                       {"messages", count},
                       {"nova_requests", nova_count},
                       {"baseline_requests", raw_count},
                       {"payload_bytes", payload_bytes}};
      if (!ok)
        j["error"] = why;
      out << j.dump() << '\n';
      return ok ? 0 : 1;
    }
    out << fmt::format("remote request-reply (two processes, one "
                       "nats-server): up to {} round trips of {} bytes per "
                       "run (as many as fit {} s at the warm-up rate), one "
                       "at a time, best p50 of {}\n",
                       count, payload_bytes,
                       std::chrono::duration_cast<std::chrono::seconds>(
                         run_budget)
                         .count(),
                       rounds);
    for (size_t i = 0; i < nova_runs.size(); ++i) {
      const auto& a = nova_runs[i];
      auto b = i < raw_runs.size() ? raw_runs[i] : latency{};
      out << fmt::format("  run {}: nova p50 {:>7.1f} p99 {:>7.1f} p999 "
                         "{:>7.1f} us   baseline p50 {:>7.1f} p99 {:>7.1f} "
                         "p999 {:>7.1f} us\n",
                         i + 1, a.p50_us, a.p99_us, a.p999_us, b.p50_us,
                         b.p99_us, b.p999_us);
    }
    out << fmt::format("nova:     p50 {:>8.1f} us  p99 {:>8.1f} us  p999 "
                       "{:>8.1f} us  ({:.0f} req/s, {} per run)\n",
                       nv.p50_us, nv.p99_us, nv.p999_us, nv.requests_per_s,
                       nova_count);
    out << fmt::format("baseline: p50 {:>8.1f} us  p99 {:>8.1f} us  p999 "
                       "{:>8.1f} us  ({:.0f} req/s, {} per run; raw nats.c "
                       "request, send-asap)\n",
                       rw.p50_us, rw.p99_us, rw.p999_us, rw.requests_per_s,
                       raw_count);
    out << fmt::format("p50 ratio: {:.3f} (nova / baseline); goal <= {:.1f}: "
                       "{}\n",
                       p50_ratio, p50_goal,
                       p50_ratio <= p50_goal ? "met" : "missed");
    out << fmt::format("p99 ratio: {:.3f}; nova p99 goal < {:.0f} us: {}\n",
                       p99_ratio, p99_goal_us,
                       nv.p99_us < p99_goal_us ? "met" : "missed");
    if (!ok)
      out << "a run did not complete (" << why
          << "); the figures are incomplete\n";
    return ok ? 0 : 1;
  });
}

int run_bench_peer(const std::vector<std::string>& args, std::ostream& out) {
  if (args.empty()) {
    out << "usage: bench peer <nova-sink|nova-echo|nats-sink|nats-echo|"
           "basp-sink> [args...]\n";
    return 2;
  }
  const auto& role = args[0];
  if (role == "nova-sink")
    return peer_nova(args, out, false);
  if (role == "nova-echo")
    return peer_nova(args, out, true);
  if (role == "nats-sink")
    return peer_nats_sink(args, out);
  if (role == "nats-echo")
    return peer_nats_echo(args, out);
  if (role == "basp-sink")
    return peer_basp_sink(out);
  out << "bench peer: unknown role '" << role << "'\n";
  return 2;
}

} // namespace nova
