#include "runtime/demo.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "messages/errc.hpp"
#include "runtime/node.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr uint64_t seed = 20240917;
constexpr const char* session = "demo";

// Event subjects the Novas publish on, and the rules they subscribe with
// (one per Nova, by index): each subject matches at least one rule.
const std::vector<std::string> subjects = {
  "orders.created",       "orders.shipped",   "billing.invoice.created",
  "billing.paid",         "sensors.temp.alert", "sensors.door.alert",
};
const std::vector<std::string> rules = {"orders.*", "billing.>", "*.created",
                                        "sensors.*.alert"};

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           steady::now().time_since_epoch())
    .count();
}

std::string nova_name(size_t i) {
  return fmt::format("nova-{:02}", i);
}

std::string group_name(size_t g) {
  return fmt::format("group-{}", g);
}

/// What the Novas share with the code that drives them.
struct demo_state {
  size_t novas = 0;
  size_t groups = 0;
  std::atomic<size_t> started{0};
  std::atomic<size_t> bursts_done{0};
  std::atomic<size_t> chains_done{0};
  std::atomic<uint64_t> expected_broadcast{0};
  std::atomic<uint64_t> expected_multicast{0};
  std::atomic<uint64_t> expected_event{0};
  std::atomic<uint64_t> send_errors{0};
  std::atomic<uint64_t> answered{0};
  std::atomic<uint64_t> request_errors{0};
  std::atomic<uint64_t> presence_seen{0};
  std::atomic<uint64_t> offline_seen{0};

  std::mutex mtx;
  std::vector<int64_t> rtt_ns;
  std::vector<int64_t> one_way_ns;

  void record(std::vector<int64_t>& xs, int64_t ns) {
    std::lock_guard<std::mutex> guard{mtx};
    xs.push_back(ns);
  }
};

using state_ptr = std::shared_ptr<demo_state>;

/// How many messages of each kind one Nova sends.
struct traffic_mix {
  size_t direct = 0;
  size_t broadcast = 0;
  size_t multicast = 0;
  size_t event = 0;
  size_t request = 0;

  explicit traffic_mix(size_t n) {
    broadcast = n > 0 ? std::max<size_t>(1, n / 100) : 0;
    multicast = n > 1 ? std::max<size_t>(1, n / 20) : 0;
    event = n > 2 ? std::max<size_t>(1, n / 10) : 0;
    request = n > 3 ? std::max<size_t>(1, n / 10) : 0;
    auto rest = broadcast + multicast + event + request;
    direct = n > rest ? n - rest : 0;
  }
};

struct nova_role {
  size_t index = 0;
  bool watcher = false;
  traffic_mix mix{0};
};

/// One simulated Nova. On the "start" emergency it sends its burst (direct
/// messages with a timestamp, broadcasts, multicasts to a random group,
/// events) in a seeded random order, then a chain of requests, each after
/// the previous reply. Workers also run tasks; the watcher counts presence
/// changes.
class demo_nova : public agent {
public:
  demo_nova(caf::actor_config& cfg, agent_init init, state_ptr st,
            nova_role role)
    : agent(cfg, std::move(init)),
      st_(std::move(st)),
      role_(role),
      rng_(seed + role.index) {
    // nop
  }

protected:
  void on_start() override {
    if (auto err = subscribe(rules[role_.index % rules.size()]))
      st_->send_errors.fetch_add(1);
    if (role_.watcher)
      watch_presence();
    st_->started.fetch_add(1);
  }

  void on_emergency(const envelope& msg) override {
    if (msg.payload != "start" || begun_)
      return;
    begun_ = true;
    if (role_.index % 3 == 0)
      set_presence(presence_status::busy, "traffic");
    burst();
    st_->bursts_done.fetch_add(1);
    requests_left_ = role_.mix.request;
    next_request();
  }

  void on_message(const envelope& msg) override {
    if (msg.payload.rfind("t=", 0) != 0)
      return;
    auto sent = std::stoll(msg.payload.substr(2));
    st_->record(st_->one_way_ns, steady_ns() - sent);
  }

  caf::expected<std::string> on_request(const envelope& req) override {
    return "pong:" + req.payload;
  }

  caf::expected<std::string> on_task(const nova::task& t) override {
    if (t.type == "doomed")
      return make_error(errc::handler_failed,
                        "task '" + t.id + "' is built to fail");
    // A little real work: FNV-1a over the payload, a few rounds.
    uint64_t h = 1469598103934665603ull;
    for (int round = 0; round < 16; ++round)
      for (unsigned char c : t.payload) {
        h ^= c;
        h *= 1099511628211ull;
      }
    return fmt::format("{}:{:016x}", t.type, h);
  }

  void on_presence(const presence& p) override {
    st_->presence_seen.fetch_add(1);
    if (p.status == presence_status::offline)
      st_->offline_seen.fetch_add(1);
  }

private:
  std::string pick_other() {
    std::uniform_int_distribution<size_t> d{0, st_->novas - 2};
    auto j = d(rng_);
    if (j >= role_.index)
      ++j;
    return nova_name(j);
  }

  void count(const caf::error& err) {
    if (err)
      st_->send_errors.fetch_add(1);
  }

  void burst() {
    enum op { op_direct, op_broadcast, op_multicast, op_event };
    std::vector<op> ops;
    ops.insert(ops.end(), role_.mix.direct, op_direct);
    ops.insert(ops.end(), role_.mix.broadcast, op_broadcast);
    ops.insert(ops.end(), role_.mix.multicast, op_multicast);
    ops.insert(ops.end(), role_.mix.event, op_event);
    std::shuffle(ops.begin(), ops.end(), rng_);
    auto& dir = context().directory;
    std::uniform_int_distribution<size_t> pick_group{0, st_->groups - 1};
    std::uniform_int_distribution<size_t> pick_subject{0, subjects.size() - 1};
    for (auto x : ops) {
      switch (x) {
        case op_direct: {
          auto to = pick_other();
          count(send(to, "t=" + std::to_string(steady_ns())));
          break;
        }
        case op_broadcast:
          st_->expected_broadcast.fetch_add(dir.all().size());
          count(broadcast("hello from " + id()));
          break;
        case op_multicast: {
          auto g = group_name(pick_group(rng_));
          st_->expected_multicast.fetch_add(dir.group_members(g).size());
          count(multicast(g, "to " + g + " from " + id()));
          break;
        }
        case op_event: {
          const auto& s = subjects[pick_subject(rng_)];
          st_->expected_event.fetch_add(dir.subscribers(s).size());
          count(publish(s, "{\"source\":\"" + id() + "\"}"));
          break;
        }
      }
    }
  }

  void next_request() {
    if (requests_left_ == 0) {
      if (role_.index % 3 == 0)
        set_presence(presence_status::online);
      else if (role_.index % 3 == 1)
        set_presence(presence_status::away);
      st_->chains_done.fetch_add(1);
      return;
    }
    --requests_left_;
    auto to = pick_other();
    auto t0 = steady::now();
    request(to, "ping-" + std::to_string(requests_left_), 2s)
      .then(
        [this, t0](const envelope&) {
          auto dt = std::chrono::duration_cast<std::chrono::nanoseconds>(
            steady::now() - t0);
          st_->record(st_->rtt_ns, dt.count());
          st_->answered.fetch_add(1);
          next_request();
        },
        [this](const caf::error&) {
          st_->request_errors.fetch_add(1);
          next_request();
        });
  }

  state_ptr st_;
  nova_role role_;
  std::mt19937_64 rng_;
  bool begun_ = false;
  size_t requests_left_ = 0;
};

/// Polls `pred` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  while (!pred()) {
    if (steady::now() >= deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

latency_summary summarize(std::vector<int64_t> xs) {
  latency_summary out;
  out.samples = xs.size();
  if (xs.empty())
    return out;
  std::sort(xs.begin(), xs.end());
  auto at = [&](double q) {
    auto rank = static_cast<size_t>(std::ceil(q * xs.size()));
    return xs[std::min(xs.size() - 1, rank > 0 ? rank - 1 : 0)] / 1000.0;
  };
  out.p50_us = at(0.50);
  out.p99_us = at(0.99);
  out.max_us = xs.back() / 1000.0;
  return out;
}

nlohmann::json to_json(const latency_summary& x) {
  return {{"samples", x.samples},
          {"p50_us", x.p50_us},
          {"p99_us", x.p99_us},
          {"max_us", x.max_us}};
}

void print_json(const demo_summary& s, std::ostream& out) {
  auto kind = [](uint64_t sent, uint64_t received) {
    return nlohmann::json{{"sent", sent}, {"received", received}};
  };
  nlohmann::json j;
  j["novas"] = s.novas;
  j["groups"] = s.groups;
  j["workers"] = s.workers;
  j["messages"] = {
    {"direct", kind(s.sent_direct, s.received_direct)},
    {"broadcast", kind(s.sent_broadcast, s.received_broadcast)},
    {"multicast", kind(s.sent_multicast, s.received_multicast)},
    {"event", kind(s.sent_event, s.received_event)},
    {"request", kind(s.sent_request, s.received_request)},
    {"response", kind(s.sent_response, s.requests_answered)},
    {"emergency", kind(s.sent_emergency, s.received_emergency)},
  };
  j["messages"]["broadcast"]["expected"] = s.expected_broadcast;
  j["messages"]["multicast"]["expected"] = s.expected_multicast;
  j["messages"]["event"]["expected"] = s.expected_event;
  j["request_errors"] = s.request_errors;
  j["latency_us"] = {{"request_round_trip", to_json(s.request_rtt)},
                     {"direct_one_way", to_json(s.direct_one_way)}};
  j["tasks"] = {{"total", s.tasks},
                {"by_priority",
                 {{"urgent", s.tasks_urgent},
                  {"high", s.tasks_high},
                  {"normal", s.tasks_normal},
                  {"low", s.tasks_low}}},
                {"doomed", s.tasks_doomed},
                {"enqueued", s.tasks_enqueued},
                {"done", s.tasks_done},
                {"retried", s.tasks_retried},
                {"dead", s.tasks_dead},
                {"results_collected", s.task_results}};
  j["presence"] = {{"changes", s.presence_changes},
                   {"seen_by_watcher", s.presence_seen},
                   {"offline_seen", s.offline_seen},
                   {"novas_stopped", s.novas_stopped}};
  j["handler_errors"] = s.handler_errors;
  j["completed"] = s.completed;
  j["wall_ms"] = s.wall_ms;
  out << j.dump() << '\n';
}

void print_text(const demo_summary& s, const demo_options& opts,
                std::ostream& out) {
  out << fmt::format("Nova demo: {} Novas in {} groups ({} workers), {} "
                     "messages each, {} tasks\n",
                     s.novas, s.groups, s.workers, opts.messages_per_nova,
                     s.tasks);
  out << fmt::format("  {:<10} {:>8} {:>9} {:>9}\n", "kind", "sent",
                     "received", "expected");
  auto row = [&](const char* name, uint64_t sent, uint64_t received,
                 std::string expected) {
    out << fmt::format("  {:<10} {:>8} {:>9} {:>9}\n", name, sent, received,
                       expected);
  };
  row("direct", s.sent_direct, s.received_direct, std::to_string(s.sent_direct));
  row("broadcast", s.sent_broadcast, s.received_broadcast,
      std::to_string(s.expected_broadcast));
  row("multicast", s.sent_multicast, s.received_multicast,
      std::to_string(s.expected_multicast));
  row("event", s.sent_event, s.received_event,
      std::to_string(s.expected_event));
  row("request", s.sent_request, s.received_request,
      std::to_string(s.sent_request));
  row("response", s.sent_response, s.requests_answered,
      std::to_string(s.sent_request));
  row("emergency", s.sent_emergency, s.received_emergency,
      std::to_string(s.sent_emergency * s.novas));
  auto lat = [&](const char* name, const latency_summary& x) {
    out << fmt::format("  {:<22} p50 {:>9.1f} us  p99 {:>9.1f} us  max "
                       "{:>9.1f} us  ({} samples)\n",
                       name, x.p50_us, x.p99_us, x.max_us, x.samples);
  };
  lat("request round trip", s.request_rtt);
  lat("direct one-way", s.direct_one_way);
  out << fmt::format("  tasks: {} enqueued (urgent {}, high {}, normal {}, "
                     "low {}; {} built to fail)\n",
                     s.tasks_enqueued, s.tasks_urgent, s.tasks_high,
                     s.tasks_normal, s.tasks_low, s.tasks_doomed);
  out << fmt::format("         {} done, {} retried, {} dead letters; {} "
                     "results collected\n",
                     s.tasks_done, s.tasks_retried, s.tasks_dead,
                     s.task_results);
  out << fmt::format("  presence: {} changes, {} seen by the watcher, {} "
                     "Novas stopped and {} reported offline\n",
                     s.presence_changes, s.presence_seen, s.novas_stopped,
                     s.offline_seen);
  out << fmt::format("  handler errors: {}, request errors: {}\n",
                     s.handler_errors, s.request_errors);
  out << fmt::format("  wall time: {:.0f} ms{}\n", s.wall_ms,
                     s.completed ? "" : " (a wait timed out: incomplete)");
}

} // namespace

demo_summary run_demo(const demo_options& opts, std::ostream& out) {
  auto t0 = steady::now();
  demo_summary s;
  s.novas = std::max<size_t>(opts.novas, 4);
  s.groups = std::clamp<size_t>(opts.groups, 1, s.novas);

  config cfg;
  cfg.log_level = "warn";
  cfg.limits.heartbeat_interval = 200ms;
  node n{cfg};

  auto st = std::make_shared<demo_state>();
  st->novas = s.novas;
  st->groups = s.groups;
  traffic_mix mix{opts.messages_per_nova};

  // Nova 0 watches presence; every sixth Nova is a worker (Nova 1 when there
  // are fewer than six); the last two other Novas stop at the end.
  auto is_worker = [&](size_t i) {
    return s.novas < 6 ? i == 1 : i % 6 == 5;
  };
  std::vector<std::string> stoppers;
  for (size_t i = s.novas; i-- > 1 && stoppers.size() < 2;)
    if (!is_worker(i))
      stoppers.push_back(nova_name(i));
  bool ok = true;
  for (size_t i = 0; i < s.novas; ++i) {
    agent_options ao;
    ao.groups = {group_name(i % s.groups)};
    ao.worker = is_worker(i);
    ao.capabilities = {ao.worker ? "worker" : "chat"};
    if (ao.worker)
      ++s.workers;
    nova_role role;
    role.index = i;
    role.watcher = i == 0;
    role.mix = mix;
    ok = n.spawn<demo_nova>(nova_name(i), ao, st, role) && ok;
    // The watcher registers before the others appear, so it sees them all.
    if (i == 0)
      ok = wait_until([&] { return st->started.load() >= 1; }, 2s) && ok;
  }
  // Every Nova has subscribed before anyone publishes.
  ok = wait_until([&] { return st->started.load() == s.novas; }, 2s) && ok;
  ok = !n.emergency("start") && ok;

  // The task queue: mixed priorities, a seeded share built to fail.
  std::mt19937_64 rng{seed};
  std::vector<bool> doomed(opts.tasks, false);
  auto n_doomed = static_cast<size_t>(std::llround(
    std::clamp(opts.task_failure_rate, 0.0, 1.0) * opts.tasks));
  std::fill(doomed.begin(), doomed.begin() + n_doomed, true);
  std::shuffle(doomed.begin(), doomed.end(), rng);
  std::discrete_distribution<int> lane{10, 20, 45, 25}; // urgent..low
  for (size_t k = 0; k < opts.tasks; ++k) {
    auto prio = priority::normal;
    switch (lane(rng)) {
      case 0: prio = priority::urgent; ++s.tasks_urgent; break;
      case 1: prio = priority::high; ++s.tasks_high; break;
      case 2: prio = priority::normal; ++s.tasks_normal; break;
      default: prio = priority::low; ++s.tasks_low; break;
    }
    auto r = n.enqueue(doomed[k] ? "doomed" : "checksum",
                       fmt::format("order-{:05}", k), prio, session);
    if (r)
      ++s.tasks;
    else
      ok = false;
  }
  s.tasks_doomed = n_doomed;

  // Failing tasks need two backoffs (100 ms, 200 ms) before they die.
  if (auto rs = n.collect(session, s.tasks, 4s)) {
    s.task_results = rs->size();
    ok = rs->size() == s.tasks && ok;
  } else {
    ok = false;
  }

  // Traffic: every burst and request chain finished, everything delivered.
  auto& c = n.stats();
  ok = wait_until(
         [&] {
           return st->bursts_done.load() == s.novas
                  && st->chains_done.load() == s.novas
                  && c.get(counter::received_direct)
                       == c.get(counter::sent_direct)
                  && c.get(counter::received_broadcast)
                       == st->expected_broadcast.load()
                  && c.get(counter::received_multicast)
                       == st->expected_multicast.load()
                  && c.get(counter::received_event)
                       == st->expected_event.load();
         },
         3s)
       && ok;

  // Presence: two Novas leave; the monitor reports them offline.
  for (const auto& id : stoppers)
    if (!n.stop(id))
      ++s.novas_stopped;
  ok = wait_until([&] { return st->offline_seen.load() >= s.novas_stopped; },
                  2s)
       && ok;
  // Let the watcher catch up with announcements still in flight.
  wait_until(
    [&] {
      return st->presence_seen.load() >= c.get(counter::presence_changes);
    },
    500ms);

  if (auto dead = n.dead_letters(std::max<size_t>(opts.tasks, 1)))
    s.tasks_dead = dead->size();
  else
    ok = false;

  s.sent_direct = c.get(counter::sent_direct);
  s.received_direct = c.get(counter::received_direct);
  s.sent_broadcast = c.get(counter::sent_broadcast);
  s.received_broadcast = c.get(counter::received_broadcast);
  s.expected_broadcast = st->expected_broadcast.load();
  s.sent_multicast = c.get(counter::sent_multicast);
  s.received_multicast = c.get(counter::received_multicast);
  s.expected_multicast = st->expected_multicast.load();
  s.sent_event = c.get(counter::sent_event);
  s.received_event = c.get(counter::received_event);
  s.expected_event = st->expected_event.load();
  s.sent_request = c.get(counter::sent_request);
  s.received_request = c.get(counter::received_request);
  s.sent_response = c.get(counter::sent_response);
  s.requests_answered = st->answered.load();
  s.request_errors = st->request_errors.load();
  s.sent_emergency = c.get(counter::sent_emergency);
  s.received_emergency = c.get(counter::received_emergency);
  s.tasks_enqueued = c.get(counter::tasks_enqueued);
  s.tasks_done = c.get(counter::tasks_done);
  s.tasks_retried = c.get(counter::tasks_retried);
  s.presence_changes = c.get(counter::presence_changes);
  s.presence_seen = st->presence_seen.load();
  s.offline_seen = st->offline_seen.load();
  s.handler_errors = c.get(counter::handler_errors);
  ok = ok && st->send_errors.load() == 0;
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    s.request_rtt = summarize(st->rtt_ns);
    s.direct_one_way = summarize(st->one_way_ns);
  }

  n.shutdown();
  s.completed = ok;
  s.wall_ms = std::chrono::duration<double, std::milli>(steady::now() - t0)
                .count();
  if (opts.json)
    print_json(s, out);
  else
    print_text(s, opts, out);
  return s;
}

} // namespace nova
